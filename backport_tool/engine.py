"""One path from a manifest entry to a patch: the version decision, verification
of every target and required symbol, the content probe, and patching.

``decide`` is the only place that answers "does this backport apply to this
version?"; the startup plan stores its answer as is. ``evaluate`` carries a
backport the rest of the way, for ``apply``, ``check`` and static reads alike.
"""

from __future__ import annotations

import enum
import hashlib
import importlib.util
import logging
import sys
import threading
import types
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType

from packaging.version import Version

from . import fitting, patcher
from .config import DISABLE_ENV, ENABLE_ENV, Switches
from .inspection import Inspector, SymbolFacts
from .manifest import Backport, Manifest, Target
from .report import (
    BackportResult,
    Claim,
    Decision,
    Presence,
    Probe,
    Report,
    Status,
    TargetReport,
)
from .symbols import ABSENT, Resolved, SymbolMissing, resolve_owner
from .versions import gate

logger = logging.getLogger("backport_tool")


# The optional hooks a backport module may define.
PROBE_HOOK = "upstream_probe"
SELFTEST_HOOK = "selftest"
AFTER_APPLY_HOOK = "after_apply"
BEFORE_REVERT_HOOK = "before_revert"


def decide(
    backport: Backport, version: Version | None, switches: Switches, package: str
) -> Decision:
    """Decide from the manifest entry, the installed version and the switches."""
    if backport.retired:
        return Decision(Status.RETIRED, f"retired: {backport.retired_reason}")
    if switches.off(backport.id):
        return Decision(Status.DISABLED, f"disabled by {DISABLE_ENV}")
    if backport.opt_in and not switches.on(backport.id):
        return Decision(
            Status.DISABLED,
            f"opt-in: enable it with {ENABLE_ENV}={backport.id}, apply(enable="
            f"[{backport.id!r}]) or --enable {backport.id}",
        )
    if version is None:
        return Decision(Status.NOT_APPLICABLE, f"{package} is not installed")
    decision = gate(
        package, version, backport.applies_to, backport.fixed_in, backport.applies_to_text
    )
    if decision.fixed_upstream:
        return Decision(Status.FIXED_UPSTREAM, decision.reason)
    if not decision.eligible:
        return Decision(Status.NOT_APPLICABLE, decision.reason)
    return Decision(Status.READY, decision.reason)


def decide_all(
    manifest: Manifest, version: Version | None, switches: Switches
) -> dict[str, Decision]:
    """:func:`decide` for every backport, then the rule that two backports of one
    target are never both in force: an enabled opt-in backport takes the
    target from the default ones; two enabled opt-in ones conflict."""
    decisions = {b.id: decide(b, version, switches, manifest.package) for b in manifest.backports}
    owners: dict[str, list[Backport]] = {}
    for backport in manifest.backports:
        if decisions[backport.id].status is Status.READY:
            for target in backport.targets:
                owners.setdefault(str(target.symbol), []).append(backport)
    for symbol, backports in owners.items():
        chosen = [b for b in backports if b.opt_in]
        if not chosen:
            continue  # defaults only: the patcher refuses the second one
        if len(chosen) > 1:
            names = " and ".join(b.id for b in chosen)
            for backport in chosen:
                decisions[backport.id] = Decision(
                    Status.FAILED,
                    f"opt-in backports {names} are both enabled and both replace {symbol}; "
                    "enable one of them",
                )
            continue
        for backport in backports:
            if not backport.opt_in and decisions[backport.id].status is Status.READY:
                decisions[backport.id] = Decision(
                    Status.DISABLED,
                    f"opt-in backport {chosen[0].id} is enabled and replaces {symbol} instead",
                )
    return decisions


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


# Backport modules are executed once per file, so that apply after revert
# installs the very same replacement objects. Each entry keeps the digest of
# the bytes that ran.
_modules: dict[Path, tuple[ModuleType, str]] = {}
# Two threads applying at once must not execute a module twice (two sets of
# replacement objects would then compete for one target).
_module_lock = threading.RLock()


def load_backport_module(backport: Backport) -> ModuleType:
    """Execute (once) and return the backport module of ``backport``.

    The file is read once; with a ``sha256`` pin those bytes are hashed and
    compiled and executed only if they match, so the pin holds for the code
    that runs (a ``__pycache__`` file never stands in for it).
    """
    with _module_lock:
        cached = _modules.get(backport.module)
        if cached is None:
            source = backport.module.read_bytes()
            digest = hashlib.sha256(source).hexdigest()
            _check_pin(backport, digest)
            cached = _modules[backport.module] = (_execute(backport, source), digest)
        else:
            _check_pin(backport, cached[1])
        return cached[0]


def module_digest(backport: Backport) -> str | None:
    """The sha256 of the bytes that ran for ``backport``'s module, once loaded."""
    with _module_lock:
        cached = _modules.get(backport.module)
        return cached[1] if cached else None


def _check_pin(backport: Backport, actual: str) -> None:
    if backport.sha256 is not None and actual != backport.sha256:
        raise PinMismatch(
            f"{backport.module_text} has sha256 {actual}, but the manifest pins "
            f"{backport.sha256}; it was modified, so it was not run. If the change is "
            "yours, run `backport-tool lock` to pin the new file"
        )


def _execute(backport: Backport, source: bytes) -> ModuleType:
    name = "_backport_tool_bp_" + backport.id.replace("-", "_")
    # Compiled from the bytes just read, never through the import system's
    # loader, which may prefer a cached .pyc with a matching mtime and size.
    code = compile(source, str(backport.module), "exec", dont_inherit=True)
    module = ModuleType(name)
    module.__file__ = str(backport.module)
    module.__spec__ = importlib.util.spec_from_file_location(name, backport.module)
    sys.modules[name] = module
    try:
        exec(code, module.__dict__)
    except BaseException:
        del sys.modules[name]
        raise
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
        presence=facts.presence,
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
        if target.create:
            facts, problem = _to_create(target, facts, inspector)
        else:
            problem = _presence_problem("target", facts)
        report = _target_report(target, facts)
        out.targets.append((target, facts))
        out.reports.append(report)
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


def _to_create(
    target: Target, facts: SymbolFacts, inspector: Inspector
) -> tuple[SymbolFacts, _Problem | None]:
    # A new attribute: absent is what it should be, present is news.
    if facts.presence is Presence.FOUND:
        where = f" (on {facts.defined_on})" if facts.defined_on else ""
        return facts, _Problem(
            Status.DRIFT,
            f"target {target.symbol} is marked create: true, but it exists already{where}; "
            "upstream may have added it: check whether the backport is still needed",
        )
    if facts.presence is not Presence.MISSING:
        return facts, _presence_problem("target", facts)
    if not inspector.live:
        return facts, None
    try:
        owner, _ = resolve_owner(target.symbol)
    except SymbolMissing as exc:
        return facts, _Problem(Status.MISSING, f"target {target.symbol}: {exc}")
    except Exception as exc:
        return facts, _Problem(
            Status.FAILED, f"target {target.symbol}: import raised {_describe(exc)}"
        )
    name = target.symbol.qualname.rsplit(".", 1)[-1]
    return replace(facts, resolved=Resolved(owner, name, ABSENT, owner, ABSENT)), None


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


def evaluate(
    manifest: Manifest,
    backport: Backport,
    decision: Decision,
    inspector: Inspector,
    mode: Mode,
) -> BackportResult:
    """Carry one backport from its version decision to its final status.

    ``Mode.APPLY`` patches when everything checks out; the other modes stop at
    ``ready``. Nothing here raises for a problem of the backport: it becomes
    the status.
    """
    if decision.status is Status.FIXED_UPSTREAM:
        # apply runs at startup and must not import torch internals for a
        # backport it refuses anyway; check and static reads verify the claim.
        if mode is Mode.APPLY:
            return _result(backport, decision.status, decision.reason)
        return _verify_claim(backport, inspector, decision.reason)
    if decision.status is not Status.READY:
        return _result(backport, decision.status, decision.reason)

    applied_from = patcher.applied_from(backport.id) if inspector.live else None
    if applied_from is not None and applied_from != str(manifest.location):
        return _result(backport, Status.FAILED, _conflict(backport.id, applied_from, manifest))
    if mode is Mode.APPLY and applied_from is not None:
        return _result(backport, Status.APPLIED, "already applied in this process")

    # Verify what the backport will touch before running any of its code: a
    # renamed upstream symbol then reads as "missing", not as a crash. A
    # target this process patched is judged by its original.
    inspected = _inspect(backport, inspector)
    prepared = _prepare(backport, inspected)
    module, probe, problems = prepared.module, prepared.probe, prepared.problems
    if probe is Probe.FIXED:
        return _result(
            backport,
            Status.FIXED_UPSTREAM,
            f"{decision.reason}, but the installed code already has the fix: {prepared.why}",
            inspected,
            probe,
        )
    patches = prepared.patches
    if problems:
        worst = next(s for s in _SEVERITY if any(p.status is s for p in problems))
        return _result(backport, worst, "; ".join(p.message for p in problems), inspected, probe)
    if mode is not Mode.APPLY:
        verified = _verified(backport, inspected)
        if applied_from is not None:
            verified = (
                f"applied in this process; the original {verified.removeprefix('would apply: ')}"
            )
        # What apply would rebind, and what it could not reach.
        _reach(backport, inspected, patches, [patcher.copy_paths(p) for p in patches])
        status = Status.APPLIED if applied_from is not None else Status.READY
        hooked = (
            applied_from is None and module is not None and _hooks(module).after_apply is not None
        )
        return _reached(backport, status, verified, inspected, probe, hooked=hooked)
    digest = module_digest(backport) or ""
    try:
        rebound = patcher.apply_patches(
            patcher.AppliedBackport(
                backport.id, str(manifest.location), tuple(p.symbol for p in patches), digest
            ),
            tuple(patches),
            _hooks(module) if module is not None else patcher.Hooks(),
        )
    except patcher.AlreadyApplied:
        # Another thread applied it between the check above and the lock.
        return _result(backport, Status.APPLIED, "already applied in this process", inspected)
    except patcher.ForeignApplied as exc:
        return _result(backport, Status.FAILED, _conflict(backport.id, exc.manifest, manifest))
    except patcher.HookFailed as exc:
        logger.debug("backport-tool: %s: %s", backport.id, exc, exc_info=True)
        return _result(
            backport, Status.FAILED, f"{exc}; rolled back, nothing changed", inspected, probe
        )
    except Exception as exc:
        logger.debug("backport-tool: patching %s failed", backport.id, exc_info=True)
        return _result(
            backport,
            Status.FAILED,
            f"patching failed, nothing changed: {_describe(exc)}",
            inspected,
            probe,
        )
    _reach(backport, inspected, patches, list(rebound))
    replaced = "replaced " + ", ".join(str(t.symbol) for t in backport.targets)
    return _reached(backport, Status.APPLIED, replaced, inspected, probe)


def _reach(
    backport: Backport,
    inspected: _Inspected,
    patches: list[patcher.Patch],
    rebound: list[tuple[str, ...]],
) -> None:
    # Static reads have no objects, so no references: nothing to add.
    if len(patches) != len(backport.targets):
        return
    for index, (target, patch, paths) in enumerate(
        zip(backport.targets, patches, rebound, strict=True)
    ):
        stale = patcher.stale_paths(patch)
        inspected.reports[index] = replace(
            inspected.reports[index],
            rebound=paths,
            stale_references=tuple(p for p in stale if p not in target.acknowledged),
        )


def _reached(
    backport: Backport,
    status: Status,
    reason: str,
    inspected: _Inspected,
    probe: Probe | None,
    *,
    hooked: bool = False,
) -> BackportResult:
    rebound = sum(len(r.rebound) for r in inspected.reports)
    stale = [p for r in inspected.reports for p in r.stale_references]
    if rebound:
        reason += f"; {rebound} other binding{'s' if rebound > 1 else ''} of the original " + (
            "rebound" if status is not Status.READY else "to rebind"
        )
    if stale and hooked:
        # Before apply, an after_apply hook may still re-register them; apply
        # reports what is left after it ran.
        reason += (
            f"; {len(stale)} reference{'s' if len(stale) > 1 else ''} to the original that "
            f"after_apply must re-register: {', '.join(stale)}"
        )
    elif stale:
        status = Status.PARTIAL
        reason += (
            f"; {len(stale)} reference{'s' if len(stale) > 1 else ''} still "
            f"{'call' if len(stale) > 1 else 'calls'} the original: {', '.join(stale)}. Make "
            "them call the fix (an after_apply hook can re-register it), or list them under "
            "the target's acknowledged: once reviewed"
        )
    return _result(backport, status, reason, inspected, probe)


@dataclass
class _Prepared:
    module: ModuleType | None = None
    probe: Probe | None = None
    why: str = ""
    patches: list[patcher.Patch] = field(default_factory=list)
    problems: list[_Problem] = field(default_factory=list)


def _prepare(backport: Backport, inspected: _Inspected) -> _Prepared:
    # Only a backport whose targets verified runs any of its own code.
    out = _Prepared(problems=list(inspected.problems))
    if out.problems:
        return out
    try:
        out.module = load_backport_module(backport)
    except Exception as exc:
        logger.debug("backport-tool: loading %s failed", backport.module, exc_info=True)
        message = (
            str(exc)
            if isinstance(exc, PinMismatch)
            else f"{backport.module_text} raised {_describe(exc)} on import"
        )
        out.problems.append(_Problem(Status.FAILED, message))
        return out
    try:
        out.probe, out.why = _probe(out.module, inspected)
    except Exception as exc:
        out.problems.append(_Problem(Status.FAILED, f"{PROBE_HOOK} raised {_describe(exc)}"))
    for target, facts in inspected.targets:
        replacement = _replacement(out.module, backport, target, facts)
        if not isinstance(replacement, _Problem) and facts.resolved is not None:
            replacement = _fitted(backport, target, facts.resolved, replacement)
        if isinstance(replacement, _Problem):
            out.problems.append(replacement)
        elif facts.resolved is not None:
            out.patches.append(_plan(target, facts, replacement))
    return out


def _fitted(
    backport: Backport, target: Target, resolved: Resolved, replacement: object
) -> object | _Problem:
    name = f"{backport.module_text}:{target.replacement}"
    if fitting.unwritten(replacement):
        return _Problem(
            Status.FAILED,
            f"{name} is not written yet ("
            + (
                "its value is NotImplemented"
                if replacement is NotImplemented
                else "its body only raises NotImplementedError"
            )
            + "); write the fix, then run `backport-tool check` again",
        )
    problems = fitting.misfits(resolved.function, replacement)
    if problems:
        return _Problem(
            Status.FAILED,
            f"{name} cannot replace {target.symbol}: " + "; ".join(problems),
        )
    if not (
        isinstance(replacement, types.FunctionType)
        and fitting.uses_zero_argument_super(replacement)
    ):
        return replacement
    bound = (
        fitting.bind_class_cell(replacement, resolved.owner)
        if isinstance(resolved.owner, type)
        else None
    )
    if bound is None:
        return _Problem(
            Status.FAILED,
            f"{name} calls super() without arguments, which needs the class it is a method "
            f"of, and it cannot be bound to one here; write super(Class, self) instead",
        )
    return bound


def _hooks(module: ModuleType) -> patcher.Hooks:
    after = getattr(module, AFTER_APPLY_HOOK, None)
    before = getattr(module, BEFORE_REVERT_HOOK, None)
    return patcher.Hooks(after if callable(after) else None, before if callable(before) else None)


def _conflict(backport_id: str, applied_from: str, manifest: Manifest) -> str:
    return (
        f"backport id {backport_id!r} is already applied in this process from {applied_from}; "
        f"{manifest.location} has a backport of the same id, which was not applied. Apply "
        "one patch set per process, or give the backports distinct ids"
    )


def _replacement(
    module: ModuleType, backport: Backport, target: Target, facts: SymbolFacts
) -> object | _Problem:
    value = getattr(module, target.replacement, ABSENT)
    if value is ABSENT:
        return _Problem(
            Status.FAILED,
            f"{backport.module_text} has no attribute {target.replacement!r} "
            f"(the replacement for {target.symbol})",
        )
    # Callable only where the original is: a value target takes any object.
    if facts.resolved is not None:
        wanted = callable(facts.resolved.function)
    else:
        wanted = facts.signature is not None
    if wanted and not callable(value):
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
    unreadable = [
        (target, facts) for target, facts in inspected.targets if facts.presence is Presence.UNKNOWN
    ]
    if unreadable:
        # Static reads only: "found" would claim what the sources cannot show.
        checks = [
            f"{len(inspected.targets) - len(unreadable)} of {len(inspected.targets)} targets "
            "found, "
            + "; ".join(f"{t.symbol} not readable from source ({f.message})" for t, f in unreadable)
        ]
    else:
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


def run(
    manifest: Manifest,
    mode: Mode,
    inspector: Inspector,
    version: Version | None,
    switches: Switches,
) -> Report:
    """Evaluate every backport of ``manifest`` and log each result."""
    decisions = decide_all(manifest, version, switches)
    results = tuple(
        evaluate(manifest, backport, decisions[backport.id], inspector, mode)
        for backport in manifest.backports
    )
    for item in results:
        level = logging.WARNING if item.status.is_problem else logging.DEBUG
        logger.log(level, "backport-tool: %s: %s (%s)", item.id, item.status.value, item.reason)
    return Report(
        manifest.package,
        str(version) if version else None,
        str(manifest.path),
        results,
        source=None if inspector.live else inspector.label,
    )
