from __future__ import annotations

import enum
import functools
import importlib.util
import logging
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from . import cachekey, lazy, patcher
from .errors import UsageError
from .inspection import Inspector, LiveInspector, Presence, StaticInspector, SymbolFacts
from .manifest import Backport, Manifest, Target, load_manifest
from .report import BackportResult, Claim, Probe, Report, Status, TargetReport
from .retire import retirement
from .startup import DISABLE_ENV, default_manifest_path, disabled_ids
from .static import StaticIndex, open_tree
from .symbols import ABSENT
from .versions import gate, installed_version

logger = logging.getLogger("backport_tool")


# The optional hooks a backport module may define.
PROBE_HOOK = "upstream_probe"
SELFTEST_HOOK = "selftest"

# Backport modules are loaded once per file, so that apply after revert
# installs the very same replacement objects.
_modules: dict[Path, ModuleType] = {}
_module_lock = threading.RLock()
# The manifest entry of every backport applied in this process, by id.
_backports: dict[str, Backport] = {}


def resolve_manifest(manifest: str | os.PathLike[str] | Manifest | None) -> Manifest:
    if isinstance(manifest, Manifest):
        return manifest
    return load_manifest(default_manifest_path() if manifest is None else Path(manifest))


def warn_unknown_disabled(ids: frozenset[str], known: set[str]) -> None:
    unknown = sorted(ids - known - {"all"})
    if unknown:
        logger.warning(
            "backport-tool: %s names unknown backport id(s) %s. Hint: known ids are %s",
            DISABLE_ENV,
            ", ".join(unknown),
            ", ".join(sorted(known)) or "(none)",
        )


def _disabled(manifest: Manifest) -> frozenset[str]:
    ids = disabled_ids()
    warn_unknown_disabled(ids, {b.id for b in manifest.backports})
    return ids


class Mode(enum.Enum):
    APPLY = "apply"
    CHECK = "check"
    STATIC = "static"  # check against sources read with ast


@dataclass(frozen=True)
class _Problem:
    status: Status
    message: str


# When a backport has several problems, the status names the worst one.
_SEVERITY = (Status.FAILED, Status.MISSING, Status.DRIFT)


class PinMismatch(Exception):
    """The backport module's bytes are not the ones the manifest pins."""


def load_backport_module(backport: Backport) -> ModuleType:
    """Execute (once) and return the backport module of ``backport``.

    With a ``sha256`` pin, the file is hashed first and not executed unless it
    matches.
    """
    # One lock: two threads applying at once must not execute a module twice
    # (two sets of replacement objects would then compete for one target).
    with _module_lock:
        return _load_backport_module(backport)


def _load_backport_module(backport: Backport) -> ModuleType:
    cached = _modules.get(backport.module)
    if cached is not None:
        return cached
    if backport.sha256 is not None:
        actual = backport.module_sha256()
        if actual != backport.sha256:
            raise PinMismatch(
                f"{backport.module_text} has sha256 {actual}, but the manifest pins "
                f"{backport.sha256}; it was modified, so it was not run. If the change is "
                "yours, run `backport-tool lock` to pin the new file"
            )
    name = "_backport_tool_bp_" + backport.id.replace("-", "_")
    spec = importlib.util.spec_from_file_location(name, backport.module)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {backport.module_text}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    _modules[backport.module] = module
    return module


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _versions(target: Target) -> str:
    if not target.recorded_from:
        return "unrecorded versions"
    return "torch " + ", ".join(target.recorded_from)


def _target_report(target: Target, facts: SymbolFacts) -> TargetReport:
    return TargetReport(
        symbol=str(target.symbol),
        presence=facts.presence.value,
        expected_signature=target.signature,
        actual_signature=facts.signature,
        defined_on=facts.defined_on,
        expected_fingerprints=target.fingerprints,
        actual_fingerprint=facts.function.fingerprint if facts.function else None,
    )


def _presence_problem(what: str, facts: SymbolFacts) -> _Problem | None:
    if facts.presence is Presence.MISSING:
        return _Problem(Status.MISSING, f"{what} {facts.symbol}: {facts.message}")
    if facts.presence is Presence.FAILED:
        return _Problem(Status.FAILED, f"{what} {facts.symbol}: {facts.message}")
    return None


def _drift(target: Target, report: TargetReport) -> list[_Problem]:
    problems: list[_Problem] = []
    if report.signature_matches is False:
        problems.append(
            _Problem(
                Status.DRIFT,
                f"target {target.symbol} has signature {report.actual_signature}, "
                f"the backport expects {target.signature}",
            )
        )
    if report.fingerprint_matches is False:
        problems.append(
            _Problem(
                Status.DRIFT,
                f"target {target.symbol} source fingerprint {report.actual_fingerprint} is not "
                f"the recorded {' or '.join(target.fingerprints)} (recorded from "
                f"{_versions(target)}); the code the backport replaces has changed",
            )
        )
    return problems


@dataclass
class _Inspected:
    targets: list[tuple[Target, SymbolFacts]] = field(default_factory=list)
    reports: list[TargetReport] = field(default_factory=list)
    problems: list[_Problem] = field(default_factory=list)
    requires_missing: list[str] = field(default_factory=list)
    requires_unknown: list[str] = field(default_factory=list)


def _inspect(backport: Backport, inspector: Inspector) -> _Inspected:
    out = _Inspected()
    for target in backport.targets:
        facts = inspector.inspect(target.symbol)
        report = _target_report(target, facts)
        out.targets.append((target, facts))
        out.reports.append(report)
        problem = _presence_problem("target", facts)
        if problem is not None:
            out.problems.append(problem)
        out.problems += _drift(target, report)
    for ref in backport.requires:
        facts = inspector.inspect(ref, source=False)
        problem = _presence_problem("required symbol", facts)
        if problem is not None:
            out.problems.append(problem)
            out.requires_missing.append(str(ref))
        elif facts.presence is Presence.UNKNOWN:
            out.requires_unknown.append(str(ref))
    return out


def _probe(module: ModuleType, inspected: _Inspected) -> tuple[Probe | None, str]:
    hook = getattr(module, PROBE_HOOK, None)
    if hook is None:
        return None, ""
    verdicts: list[tuple[bool | None, str]] = []
    for target, facts in inspected.targets:
        if facts.function is None:
            verdicts.append((None, f"no source to read for {target.symbol}"))
            continue
        answer = hook(str(target.symbol), facts.function.source)
        if not (isinstance(answer, tuple) and len(answer) == 2):
            raise TypeError(f"{PROBE_HOOK} must return (bool | None, str), got {answer!r}")
        verdicts.append((answer[0], str(answer[1])))
    why = "; ".join(text for _, text in verdicts if text)
    if any(v is True for v, _ in verdicts):
        return Probe.FIXED, why
    if verdicts and all(v is False for v, _ in verdicts):
        return Probe.NOT_FIXED, why
    return Probe.UNKNOWN, why


def _result(
    backport: Backport,
    status: Status,
    reason: str,
    inspected: _Inspected | None = None,
    probe: Probe | None = None,
    claim: Claim | None = None,
) -> BackportResult:
    if inspected is None:
        return BackportResult(backport.id, status, reason)
    return BackportResult(
        backport.id,
        status,
        reason,
        tuple(inspected.reports),
        upstream_claim=claim,
        probe=probe,
        requires_missing=tuple(inspected.requires_missing),
        requires_unknown=tuple(inspected.requires_unknown),
        requires_total=len(backport.requires),
    )


def _verify_claim(backport: Backport, inspector: Inspector, reason: str) -> BackportResult:
    # The version says upstream has the fix. Ask the code whether it agrees.
    inspected = _inspect(backport, inspector)
    try:
        module = load_backport_module(backport)
        probe, why = _probe(module, inspected)
    except Exception as exc:
        probe, why = Probe.UNKNOWN, f"the probe raised {_describe(exc)}"
    claims = {Probe.FIXED: Claim.CONFIRMED, Probe.NOT_FIXED: Claim.CONTRADICTED}
    claim = claims.get(probe, Claim.UNVERIFIED) if probe is not None else Claim.UNVERIFIED
    notes = [p.message for p in inspected.problems]
    if claim is Claim.CONTRADICTED:
        reason += f"; but the code does not have the fix: {why}"
        same = [t for t in inspected.reports if t.fingerprint_matches]
        if same and len(same) == len(inspected.reports):
            recorded = sorted({v for t in backport.targets for v in t.recorded_from})
            reason += (
                "; the target's source is identical to the one the backport was written for"
                + (f" (torch {', '.join(recorded)})" if recorded else "")
            )
    elif claim is Claim.CONFIRMED:
        reason += f"; the code confirms it: {why}"
    elif probe is None:
        reason += "; unverified: the backport has no content probe"
    else:
        reason += f"; unverified: {why or 'the probe cannot tell'}"
    if notes:
        reason += "; also: " + "; ".join(notes)
    return _result(backport, Status.FIXED_UPSTREAM, reason, inspected, probe, claim)


def _evaluate(
    manifest: Manifest,
    backport: Backport,
    version: Version | None,
    disabled: frozenset[str],
    inspector: Inspector,
    mode: Mode,
) -> BackportResult:
    result = functools.partial(_result, backport)

    if backport.retired:
        return result(Status.RETIRED, f"retired: {backport.retired_reason}")
    if mode is not Mode.STATIC and (backport.id in disabled or "all" in disabled):
        return result(Status.DISABLED, f"disabled by {DISABLE_ENV}")
    if version is None:
        return result(Status.NOT_APPLICABLE, f"{manifest.package} is not installed")
    decision = gate(
        manifest.package, version, backport.applies_to, backport.fixed_in, backport.applies_to_text
    )
    if decision.fixed_upstream:
        # apply runs at startup and must not import torch internals for a
        # backport it refuses anyway; check and static reads verify the claim.
        if mode is Mode.APPLY:
            return result(Status.FIXED_UPSTREAM, decision.reason)
        return _verify_claim(backport, inspector, decision.reason)
    if not decision.eligible:
        return result(Status.NOT_APPLICABLE, decision.reason)
    if inspector.live and patcher.is_applied(backport.id):
        return result(Status.APPLIED, "already applied in this process")

    # Verify what the backport will touch before running any of its code: a
    # renamed upstream symbol then reads as "missing", not as a crash.
    inspected = _inspect(backport, inspector)
    problems = list(inspected.problems)
    patches: list[patcher.Patch] = []
    probe: Probe | None = None
    if not problems:
        try:
            module = load_backport_module(backport)
        except Exception as exc:
            logger.debug("backport-tool: loading %s failed", backport.module, exc_info=True)
            message = (
                str(exc)
                if isinstance(exc, PinMismatch)
                else f"{backport.module_text} raised {_describe(exc)} on import"
            )
            problems.append(_Problem(Status.FAILED, message))
        else:
            try:
                probe, why = _probe(module, inspected)
            except Exception as exc:
                problems.append(_Problem(Status.FAILED, f"{PROBE_HOOK} raised {_describe(exc)}"))
            else:
                if probe is Probe.FIXED:
                    return result(
                        Status.FIXED_UPSTREAM,
                        f"{decision.reason}, but the installed code already has the fix: {why}",
                        inspected,
                        probe,
                    )
            for target, facts in inspected.targets:
                replacement = _replacement(module, backport, target)
                if isinstance(replacement, _Problem):
                    problems.append(replacement)
                elif facts.resolved is not None:
                    patches.append(_plan(target, facts, replacement))

    if problems:
        worst = next(s for s in _SEVERITY if any(p.status is s for p in problems))
        return result(worst, "; ".join(p.message for p in problems), inspected, probe)
    if mode is not Mode.APPLY:
        return result(Status.READY, _verified(backport, inspected), inspected, probe)
    try:
        _backports[backport.id] = backport
        patcher.apply_patches(backport.id, str(manifest.path), tuple(patches))
    except Exception as exc:
        logger.debug("backport-tool: patching %s failed", backport.id, exc_info=True)
        return result(
            Status.FAILED, f"patching failed, nothing changed: {_describe(exc)}", inspected, probe
        )
    return result(
        Status.APPLIED,
        "replaced " + ", ".join(str(t.symbol) for t in backport.targets),
        inspected,
        probe,
    )


def _replacement(module: ModuleType, backport: Backport, target: Target) -> object | _Problem:
    value = getattr(module, target.replacement, ABSENT)
    if value is ABSENT:
        return _Problem(
            Status.FAILED,
            f"{backport.module_text} has no attribute {target.replacement!r} "
            f"(the replacement for {target.symbol})",
        )
    if not callable(value):
        return _Problem(
            Status.FAILED,
            f"{backport.module_text}:{target.replacement} is a {type(value).__name__}, "
            "not callable",
        )
    return value


def _plan(target: Target, facts: SymbolFacts, replacement: object) -> patcher.Patch:
    resolved = facts.resolved
    assert resolved is not None
    # Keep the descriptor kind of the original, or a staticmethod target would
    # start receiving ``self``.
    if isinstance(resolved.raw, (staticmethod, classmethod)) and callable(replacement):
        replacement = type(resolved.raw)(replacement)
    return patcher.Patch(
        str(target.symbol), resolved.owner, resolved.name, resolved.own, replacement
    )


def _verified(backport: Backport, inspected: _Inspected) -> str:
    checks = ["targets found"]
    if any(t.signature for t in backport.targets):
        checks.append("signatures match")
    if any(t.fingerprints for t in backport.targets):
        checks.append("fingerprints match")
    if backport.requires:
        found = len(backport.requires) - len(inspected.requires_unknown)
        checks.append(f"{found} required symbols found")
        if inspected.requires_unknown:
            checks.append(f"{len(inspected.requires_unknown)} not readable from source")
    return "would apply: " + ", ".join(checks)


def _run(manifest: Manifest, mode: Mode, inspector: Inspector, version: Version | None) -> Report:
    disabled = _disabled(manifest) if mode is not Mode.STATIC else frozenset()
    results = tuple(
        _evaluate(manifest, backport, version, disabled, inspector, mode)
        for backport in manifest.backports
    )
    report = Report(
        manifest.package,
        str(version) if version else None,
        str(manifest.path),
        results,
        source=None if inspector.live else inspector.label,
    )
    for item in results:
        level = logging.WARNING if item.status.is_problem else logging.DEBUG
        logger.log(level, "backport-tool: %s: %s (%s)", item.id, item.status.value, item.reason)
    return report


def apply_now(manifest: str | os.PathLike[str] | Manifest | None = None) -> Report:
    """Import, verify and apply every matching backport now (``apply(eager=True)``)."""
    loaded = resolve_manifest(manifest)
    report = _run(loaded, Mode.APPLY, LiveInspector(), installed_version(loaded.package))
    _retag()
    return report


def apply_one(
    manifest: Path, backport_id: str, settled: Callable[[str], bool] | None = None
) -> BackportResult:
    """Verify and apply one backport now; the lazy import hook calls this.

    ``settled`` says which modules are fully imported; symbols of the others are
    verified from their installed sources (see :class:`LiveInspector`).
    """
    loaded = resolve_manifest(manifest)
    result = _evaluate(
        loaded,
        loaded.get(backport_id),
        installed_version(loaded.package),
        disabled_ids(),
        LiveInspector(settled),
        Mode.APPLY,
    )
    _retag()
    return result


def _retag() -> None:
    cachekey.update([(a.id, _backports[a.id].module) for a in patcher.applied()])


def check(
    manifest: str | os.PathLike[str] | Manifest | None = None,
    *,
    source: str | None = None,
    supported: SpecifierSet | None = None,
    selftest: bool = False,
) -> Report:
    """Verify every backport like :func:`apply` would, without patching anything.

    With ``source`` (a wheel, a directory, or ``REPO@REV``), check that version of
    the package instead of the installed one, by parsing its sources; nothing of
    it is imported. A backport refused as fixed upstream gets its claim checked
    against the code (``upstream_claim``).

    With ``supported``, each result's ``retire`` says why the backport can never
    apply to any supported version. With ``selftest``, every ``ready`` backport
    that defines a ``selftest()`` runs it in a subprocess with the patch applied.
    """
    loaded = resolve_manifest(manifest)
    if source is None:
        report = _run(loaded, Mode.CHECK, LiveInspector(), installed_version(loaded.package))
    else:
        if selftest:
            raise UsageError("--selftest runs the installed package; it cannot run a --source")
        tree = open_tree(source)
        version = tree.version(loaded.package)
        if version is None:
            raise UsageError(
                f"cannot tell which {loaded.package} version {source} holds: it has no "
                f"{loaded.package} dist-info, version.txt or {loaded.package}/version.py"
            )
        report = _run(loaded, Mode.STATIC, StaticInspector(StaticIndex(tree)), version)
    results = []
    for backport, result in zip(loaded.backports, report.results, strict=True):
        final = result
        if supported is not None:
            final = replace(final, retire=retirement(backport, supported))
        if selftest and final.status is Status.READY:
            final = _selftest(loaded, backport, final)
        results.append(final)
    return replace(report, results=tuple(results))


def _selftest(manifest: Manifest, backport: Backport, result: BackportResult) -> BackportResult:
    from .selftest import run_selftest  # noqa: PLC0415 - selftest imports this module

    if not hasattr(load_backport_module(backport), SELFTEST_HOOK):
        return result
    outcome = run_selftest(manifest.path, backport.id)
    return replace(
        result,
        selftest="passed" if outcome.passed else "failed",
        selftest_message=outcome.message,
    )


def revert(ids: str | tuple[str, ...] | list[str] | None = None) -> tuple[str, ...]:
    """Restore the exact original objects of the applied backports, and drop the
    pending ones.

    ``ids`` limits it to those backports (default: all). Returns the ids reverted.
    """
    if isinstance(ids, str):
        ids = (ids,)
    if ids is not None and not all(isinstance(i, str) for i in ids):
        raise UsageError("revert() takes backport ids as strings")
    selected = None if ids is None else tuple(ids)
    lazy.cancel(selected)
    reverted = patcher.revert(selected)
    for backport_id in reverted:
        lazy.forget(backport_id)
    _retag()
    return reverted


def applied() -> tuple[patcher.AppliedBackport, ...]:
    """Return the backports currently applied in this process."""
    return patcher.applied()
