"""The public verbs (``apply``, ``check``, ``revert``, ``applied``,
``current_report``) and the process's state: the manifests parsed so far, the
manifest exported to subprocesses, and the latest report.

``apply()`` runs at server startup and must cost next to nothing on top of
``import torch``: its cheap path (a cached plan, the import hook) is stdlib
only. yaml, packaging and the verifying engine are imported inside the
functions that need them, the first time they do.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from . import lazy, plan
from .config import (
    ALL,
    BOOT_DIR,
    DISABLE_ENV,
    ENABLE_ENV,
    MANIFEST_ENV,
    Switches,
    configure_logging,
    default_manifest_path,
    switches,
)
from .errors import UsageError, VerificationError
from .installed import version_text
from .manifest_file import ManifestFile, read_manifest_file
from .report import BackportResult, Decision, Report, Status

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    from .manifest import Manifest
    from .patcher import AppliedBackport

logger = logging.getLogger("backport_tool")


class _State:
    lock = threading.RLock()
    # Each manifest is parsed once per process: by path, real file and bytes.
    manifests: ClassVar[dict[tuple[Path, Path, str], Manifest]] = {}
    # The manifest this process exported in BACKPORT_TOOL_MANIFEST; a later
    # apply() of another manifest never switches it under the running process.
    exported: Path | None = None
    latest: Report | None = None


def _parsed(file: ManifestFile) -> Manifest:
    # yaml and the validator cost ~40 ms: only for a new plan, lazy patching
    # and the other verbs, never for apply() with a cached plan.
    from .manifest import parse_manifest_file  # noqa: PLC0415

    key = (file.path, file.location, hashlib.sha256(file.raw).hexdigest())
    with _State.lock:
        found = _State.manifests.get(key)
        if found is None:
            found = _State.manifests[key] = parse_manifest_file(file)
        return found


def _file(manifest: str | os.PathLike[str] | None) -> ManifestFile:
    return read_manifest_file(default_manifest_path() if manifest is None else Path(manifest))


def _source(manifest: str | os.PathLike[str] | Manifest | None) -> ManifestFile | Manifest:
    if manifest is None or isinstance(manifest, (str, os.PathLike)):
        return _file(manifest)
    return manifest


def manifest_for(manifest: str | os.PathLike[str] | Manifest | None) -> Manifest:
    """The validated manifest ``manifest`` names (default: ``default_manifest_path()``)."""
    return _as_manifest(_source(manifest))


def warn_unknown_ids(switches: Switches, known: set[str]) -> None:
    for env, ids in ((DISABLE_ENV, switches.disabled), (ENABLE_ENV, switches.enabled)):
        unknown = sorted(ids - known - {ALL})
        if unknown:
            logger.warning(
                "backport-tool: %s names unknown backport id(s) %s. Hint: known ids are %s",
                env,
                ", ".join(unknown),
                ", ".join(sorted(known)) or "(none)",
            )


def _version_text(package: str, switches: Switches) -> str | None:
    # Everything switched off needs no version: BACKPORT_TOOL_DISABLE=all is the
    # way out when the installed metadata is broken.
    return None if switches.all_off else version_text(package)


def _installed_version(package: str, switches: Switches) -> Version | None:
    from .versions import installed_version  # noqa: PLC0415 - see _parsed

    # As _version_text: everything switched off reads no metadata.
    return None if switches.all_off else installed_version(package)


def _build_plan(manifest: Manifest, switches: Switches) -> plan.Plan:
    from .engine import decide_all  # noqa: PLC0415 - see _parsed

    decisions = decide_all(manifest, _installed_version(manifest.package, switches), switches)
    entries = []
    for backport in manifest.backports:
        decision = decisions[backport.id]
        # Only the targets' modules trigger the patch; required symbols are
        # verified whatever state their modules are in (LiveInspector).
        modules = tuple(sorted({t.symbol.module for t in backport.targets}))
        entries.append(plan.PlanEntry(backport.id, decision.status, decision.reason, modules))
    return plan.Plan(manifest.package, _version_text(manifest.package, switches), tuple(entries))


def _startup_plan(file: ManifestFile, switches: Switches) -> plan.Plan:
    package = plan.package_name(file.raw)
    version = _version_text(package, switches) if package else None
    cached = plan.load(plan.plan_path(file, version, switches), file, version, switches)
    if cached is not None and cached.package == package:
        return cached
    # No plan, or a foreign, invalid or incomplete one: decide again.
    built = _build_plan(_parsed(file), switches)
    plan.store(plan.plan_path(file, built.version, switches), built, file, switches)
    return built


def reach_subprocesses(location: Path) -> None:
    """Make Inductor's compile subprocesses apply the same patch set at startup.

    torch starts them with ``PYTHONPATH`` built from this process's ``sys.path``
    (``python_subprocess_env``), so the boot ``sitecustomize`` directory goes on
    ``sys.path``, ahead of site-packages where another sitecustomize may live.
    It holds nothing else, and this process imported its sitecustomize long ago,
    so imports here are unaffected.
    """
    boot = str(BOOT_DIR)
    if boot not in sys.path:
        sys.path.insert(1 if sys.path else 0, boot)
    with _State.lock:
        if _State.exported not in (None, location):
            logger.warning(
                "backport-tool: subprocesses keep applying %s; %s is applied in this process only",
                _State.exported,
                location,
            )
            return
        _State.exported = location
        os.environ[MANIFEST_ENV] = str(location)


def apply(
    manifest: str | os.PathLike[str] | Manifest | None = None,
    *,
    eager: bool = False,
    strict: bool = False,
    subprocesses: bool = True,
    enable: Iterable[str] = (),
) -> Report:
    """Apply the patch set of ``manifest`` (default: ``$BACKPORT_TOOL_MANIFEST``, else
    the bundled one) in this process.

    By default this is lazy and costs almost nothing: versions are resolved and an
    import hook is registered; each backport is verified and applied the moment
    its target modules are first imported (at once if they already are). Until
    then its status is ``pending``. Problems found then are logged as warnings and
    show in :func:`current_report`; they never break the import.

    ``eager=True`` imports the targets and verifies and applies now.
    ``subprocesses=True`` makes Inductor's compile subprocesses (e.g.
    ``TORCHINDUCTOR_FX_COMPILE_MODE=subprocess``) apply the same patch set; see
    :func:`reach_subprocesses`. ``backport-tool apply -- CMD`` reaches every
    Python process of CMD instead.
    ``enable`` names opt-in backports to apply, like ``BACKPORT_TOOL_ENABLE``
    (ids, or ``"all"``); ``BACKPORT_TOOL_DISABLE`` still wins.
    ``strict=True`` (implies eager) raises :class:`VerificationError` when a
    backport is ``drift``, ``missing``, ``failed`` or ``partial``. An invalid
    manifest always raises :class:`ManifestError`, before anything is imported
    or patched.
    """
    configure_logging()
    source = _source(manifest)
    switched = switches(enable)
    if eager or strict:
        report = _apply_now(_as_manifest(source), switched)
    else:
        report = _apply_lazily(source, switched)
    # Only a manifest that validated reaches subprocesses.
    if subprocesses:
        reach_subprocesses(source.location)
    _log_summary(report)
    if strict and report.exit_code:
        raise VerificationError(report)
    return report


def _as_manifest(source: ManifestFile | Manifest) -> Manifest:
    return _parsed(source) if isinstance(source, ManifestFile) else source


def _run_live(manifest: Manifest, apply_it: bool, switches: Switches) -> Report:
    # apply and check of the installed package: the same run, patching or not.
    from .engine import Mode, run  # noqa: PLC0415 - see _parsed
    from .inspection import LiveInspector  # noqa: PLC0415

    warn_unknown_ids(switches, {b.id for b in manifest.backports})
    version = _installed_version(manifest.package, switches)
    mode = Mode.APPLY if apply_it else Mode.CHECK
    return run(manifest, mode, LiveInspector(), version, switches)


def _apply_now(manifest: Manifest, switches: Switches) -> Report:
    report = _run_live(manifest, True, switches)
    _retag()
    _record(report)
    return report


def _apply_lazily(source: ManifestFile | Manifest, switches: Switches) -> Report:
    if isinstance(source, ManifestFile):
        decided = _startup_plan(source, switches)
    else:
        decided = _build_plan(source, switches)
    warn_unknown_ids(switches, {e.id for e in decided.entries})
    results: list[BackportResult] = []
    ready: list[tuple[str, Decision]] = []
    for entry in decided.entries:
        if entry.status is not Status.READY:
            results.append(BackportResult(entry.id, entry.status, entry.reason))
            continue
        # The plan's decision is decide_all()'s, for this very manifest and
        # environment: the hook verifies and patches, it does not decide again.
        decision = Decision(entry.status, entry.reason)
        callback = functools.partial(_apply_when_imported, source, entry.id, decision)
        waiting = lazy.when_imported(entry.id, entry.modules, callback)
        if waiting:
            reason = "verified and applied when " + ", ".join(waiting) + " is imported"
            results.append(BackportResult(entry.id, Status.PENDING, reason))
        else:
            ready.append((entry.id, decision))
            results.append(BackportResult(entry.id, Status.PENDING, ""))
    report = Report(decided.package, decided.version, str(source.path), tuple(results))
    _record(report)
    for backport_id, decision in ready:
        _apply_when_imported(source, backport_id, decision, lazy.is_loaded)
    with _State.lock:
        final = _State.latest or report
    return final


def _apply_when_imported(
    source: ManifestFile | Manifest,
    backport_id: str,
    decision: Decision,
    settled: Callable[[str], bool],
) -> None:
    # The full machinery, only now that a target module is imported.
    from .engine import Mode, evaluate  # noqa: PLC0415
    from .inspection import LiveInspector  # noqa: PLC0415

    try:
        manifest = _as_manifest(source)
        result = evaluate(
            manifest, manifest.get(backport_id), decision, LiveInspector(settled), Mode.APPLY
        )
    except Exception as exc:
        logger.debug("backport-tool: applying %s failed", backport_id, exc_info=True)
        result = BackportResult(backport_id, Status.FAILED, f"{type(exc).__name__}: {exc}")
    level = logging.WARNING if result.is_problem else logging.DEBUG
    logger.log(level, "backport-tool: %s: %s (%s)", result.id, result.status.value, result.reason)
    _retag()
    _update(result)


def _retag() -> None:
    # The patcher and the cache tag matter once something is patched, which
    # the startup path itself never does: imported here, not at the top.
    from . import cachekey, patcher  # noqa: PLC0415

    cachekey.update([(a.id, a.module_sha256) for a in patcher.applied()])


def _record(report: Report) -> None:
    with _State.lock:
        _State.latest = report


def _update(result: BackportResult) -> None:
    with _State.lock:
        latest = _State.latest
        if latest is not None:
            _State.latest = replace(
                latest, results=tuple(result if r.id == result.id else r for r in latest.results)
            )


def current_report() -> Report | None:
    """Return the current state of the patch set applied with :func:`apply`, with
    lazily applied backports updated; None before the first ``apply()``."""
    with _State.lock:
        return _State.latest


def check(
    manifest: str | os.PathLike[str] | Manifest | None = None,
    *,
    source: str | None = None,
    supported: SpecifierSet | None = None,
    selftest: bool = False,
    enable: Iterable[str] = (),
) -> Report:
    """Verify every backport like :func:`apply` would, without patching anything.

    With ``source`` (a wheel, a directory, or ``REPO@REV``), check that version of
    the package instead of the installed one, by parsing its sources; nothing of
    it is imported. A backport refused as fixed upstream gets its claim checked
    against the code (``upstream_claim``). A backport already applied in this
    process is verified against its original and reported ``applied``.

    With ``supported``, each result's ``retire`` says why the backport can never
    apply to any supported version. With ``selftest``, every ``ready`` or applied
    backport that defines a ``selftest()`` runs it in a subprocess with the patch
    set applied.
    """
    from .engine import Mode, run  # noqa: PLC0415 - see _parsed
    from .inspection import StaticInspector  # noqa: PLC0415
    from .retire import retirement  # noqa: PLC0415
    from .static import StaticIndex, open_tree  # noqa: PLC0415

    loaded = manifest_for(manifest)
    switched = switches(enable)
    if source is None:
        report = _run_live(loaded, False, switched)
    else:
        if selftest:
            raise UsageError("--selftest runs the installed package; it cannot run a --source")
        tree = open_tree(source)
        found = tree.version(loaded.package)
        if found is None:
            raise UsageError(
                f"cannot tell which {loaded.package} version {source} holds: it has no "
                f"{loaded.package} dist-info, version.txt or {loaded.package}/version.py"
            )
        # Another version, read statically: the environment's switches are
        # this process's, so only what the caller enables counts.
        inspector = StaticInspector(StaticIndex(tree))
        report = run(loaded, Mode.STATIC, inspector, found, Switches(enabled=switched.enabled))
    results = []
    for backport, result in zip(loaded.backports, report.results, strict=True):
        final = result
        if supported is not None:
            final = replace(final, retire=retirement(backport, supported))
        if selftest and final.status in (Status.READY, Status.APPLIED):
            final = _selftest(loaded, backport.id, final, switched.enabled)
        results.append(final)
    return replace(report, results=tuple(results))


def _selftest(
    manifest: Manifest, backport_id: str, result: BackportResult, enabled: frozenset[str]
) -> BackportResult:
    from .engine import SELFTEST_HOOK, load_backport_module  # noqa: PLC0415
    from .selftest import run_selftest  # noqa: PLC0415

    if not hasattr(load_backport_module(manifest.get(backport_id)), SELFTEST_HOOK):
        return result
    outcome = run_selftest(manifest.location, backport_id, enabled)
    return replace(result, selftest=outcome.verdict, selftest_message=outcome.message)


def revert(ids: str | tuple[str, ...] | list[str] | None = None) -> tuple[str, ...]:
    """Restore the exact original objects of the applied backports, and drop the
    pending ones.

    ``ids`` limits it to those backports (default: all). Returns the ids of the
    applied backports it reverted.
    """
    if isinstance(ids, str):
        ids = (ids,)
    if ids is not None and not all(isinstance(i, str) for i in ids):
        raise UsageError("revert() takes backport ids as strings")
    selected = None if ids is None else tuple(ids)
    for backport_id in lazy.cancel(selected):
        _update(BackportResult(backport_id, Status.DISABLED, "reverted before it applied"))
    from . import patcher  # noqa: PLC0415 - see _retag

    reverted = patcher.revert(selected)
    for backport_id in reverted:
        _update(
            BackportResult(backport_id, Status.DISABLED, "reverted by revert() in this process")
        )
    _retag()
    return reverted


def original(symbol: str) -> object:
    """The object ``symbol`` (``"module:Qual.name"``) was before the applied backport
    that replaced it: what a wrapper calls instead of itself.

    Raises :class:`UsageError` when no applied backport replaces ``symbol``.
    """
    from . import patcher  # noqa: PLC0415 - see _retag

    try:
        return patcher.original(symbol)
    except LookupError:
        raise UsageError(
            f"original({symbol!r}): no applied backport replaces {symbol}; call it only from "
            "a replacement (or code it runs) while its backport is applied"
        ) from None


def applied() -> tuple[AppliedBackport, ...]:
    """Return the backports currently applied in this process."""
    from . import patcher  # noqa: PLC0415 - see _retag

    return patcher.applied()


def _log_summary(report: Report) -> None:
    groups: dict[Status, list[str]] = {}
    for result in report.results:
        groups.setdefault(result.status, []).append(result.id)
    in_force = (Status.APPLIED, Status.PENDING)
    refused = sum(len(ids) for status, ids in groups.items() if status not in in_force)
    parts = [f"{len(groups[s])} {s} ({', '.join(groups[s])})" for s in in_force if s in groups]
    parts.append(f"{refused} refused")
    level = logging.WARNING if report.exit_code else logging.INFO
    logger.log(level, "backport-tool: %s", ", ".join(parts))
