"""What a server runs: ``apply``, ``revert``, ``current_report``, ``applied`` and
``original`` (``enabled``, a backport for one block, is in ``scoped``). The
tools CI and developers run (``check``, ``lock``, ``new``,
``matrix``, ``track``, the self-test) live elsewhere.

``apply()`` runs at server startup and must cost next to nothing on top of
``import torch``: its cheap path (a cached plan, the import hook) is stdlib
only. yaml, packaging and the verifying engine are imported inside the
functions that need them, the first time a target is imported.

The lazy rule, for a backport whose targets live in several modules: torch
never runs it half-applied. When the first of its target modules is
imported, the others are imported as soon as the import of the target's
package has finished, and the backport is applied then, all targets at once.
A backport whose target modules are all imported is applied in the hook,
right after the last of them executed, before the importer gets it back. The
hook imports nothing; the compile-cache tag and ``after_apply`` run once the
import of the package has finished.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import sys
from collections import abc
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from . import lazy, plan
from .config import (
    DISABLE_ENV,
    ENABLE_ENV,
    MANIFEST_ENV,
    Switches,
    child_environment,
    configure_logging,
    default_manifest_path,
    switches,
    unknown_switches,
)
from .errors import FOREIGN_FAILURES, BackportToolError, UsageError, VerificationError, describe
from .installed import version_text
from .manifest_file import ManifestFile, read_manifest_file
from .report import BackportResult, Report, Status
from .state import BOOT_DIR, STATE, put_environ, withdraw_export

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from packaging.version import Version

    from .findings import TargetReport
    from .manifest import Manifest
    from .patcher import AppliedBackport

logger = logging.getLogger("backport_tool")


def _parsed(file: ManifestFile) -> Manifest:
    # yaml and the validator cost ~40 ms: only for a new plan, lazy patching
    # and the other verbs, never for apply() with a cached plan.
    from .manifest import parse_manifest_file  # noqa: PLC0415

    digest = hashlib.sha256(file.raw).hexdigest()
    key = (file.path, file.location, digest)
    with STATE.lock:
        found = STATE.manifests.get(key)
        if found is None:
            found = STATE.manifests[key] = parse_manifest_file(file, digest=digest)
        return found


def _file(manifest: str | os.PathLike[str] | None) -> ManifestFile:
    return read_manifest_file(default_manifest_path() if manifest is None else Path(manifest))


def _source(manifest: str | os.PathLike[str] | Manifest | None) -> ManifestFile | Manifest:
    if manifest is None or isinstance(manifest, (str, os.PathLike)):
        return _file(manifest)
    from .manifest import Manifest  # noqa: PLC0415 - see _parsed

    if not isinstance(manifest, Manifest):
        raise UsageError(
            f"the manifest must be a path (str or os.PathLike) or a loaded Manifest, got "
            f"{type(manifest).__name__} {manifest!r:.60}"
        )
    return manifest


def manifest_for(manifest: str | os.PathLike[str] | Manifest | None) -> Manifest:
    """The validated manifest ``manifest`` names (default: ``default_manifest_path()``)."""
    return _as_manifest(_source(manifest))


def _as_manifest(source: ManifestFile | Manifest) -> Manifest:
    return _parsed(source) if isinstance(source, ManifestFile) else source


class Given(NamedTuple):
    """The switches a caller passed, and how its messages name them."""

    enable: tuple[str, ...] = ()
    disable: tuple[str, ...] = ()
    names: tuple[str, str] = ("apply(enable=...)", "apply(disable=...)")

    @classmethod
    def of(cls, enable: object, disable: object, names: tuple[str, str]) -> Given:
        """The switches as a caller passed them: each an id (a string, also
        comma-separated ids), or an iterable of ids."""
        return cls(_ids_given(enable, names[0]), _ids_given(disable, names[1]), names)


def _ids_given(value: object, name: str) -> tuple[str, ...]:
    # A string is one id (or comma-separated ids), as the variables take
    # them, never its characters.
    if isinstance(value, str):
        return (value,)
    ids = tuple(value) if isinstance(value, abc.Iterable) else None
    if ids is None or not all(isinstance(i, str) for i in ids):
        raise UsageError(
            f"{name} takes backport ids: a string or an iterable of strings, got "
            f"{type(value).__name__} {value!r:.60}"
        )
    return ids


def warn_unknown_ids(given: Given, known: Iterable[str]) -> tuple[str, ...]:
    """Log a warning for each switched id that names no backport of the manifest
    (visible with no logging configured); the messages, for the report."""
    messages = unknown_switches(known, given.enable, given.disable, given_as=given.names)
    for message in messages:
        logger.warning("backport-tool: %s", message)
    return tuple(messages)


def _version_text(package: str, switched: Switches) -> str | None:
    # Everything switched off needs no version: BACKPORT_TOOL_DISABLE=all is the
    # way out when the installed metadata is broken.
    return None if switched.all_off else version_text(package)


def installed(package: str, switched: Switches) -> Version | None:
    """The installed version of ``package``, unless everything is switched off."""
    from .versions import parse_installed  # noqa: PLC0415 - see _parsed

    return parse_installed(package, _version_text(package, switched))


def _build_plan(
    manifest: Manifest, switched: Switches, read: tuple[str, str | None] | None = None
) -> plan.Plan:
    # ``read``: (package, version text) that the caller read already. One read
    # per plan: the metadata is not parsed twice, nor read as two versions if
    # it changes in between.
    from .decision import as_applied, decide_all  # noqa: PLC0415 - see _parsed
    from .versions import parse_installed  # noqa: PLC0415

    if read is not None and read[0] == manifest.package:
        text = read[1]
    else:
        text = _version_text(manifest.package, switched)
    decisions = decide_all(manifest, parse_installed(manifest.package, text), switched)
    entries = []
    for backport in manifest.backports:
        decision = as_applied(decisions[backport.id])
        # Only the targets' modules trigger the patch; required symbols are
        # verified whatever state their modules are in (LiveInspector).
        modules = tuple(sorted({t.symbol.module for t in backport.targets}))
        copies = tuple(sorted({c.module for t in backport.targets for c in t.copies}))
        required = tuple(sorted({r.module for r in backport.requires} - set(modules)))
        entries.append(
            plan.PlanEntry(backport.id, decision.status, decision.reason, modules, copies, required)
        )
    return plan.Plan(manifest.package, text, tuple(entries))


def _startup_plan(file: ManifestFile, switched: Switches) -> plan.Plan:
    package = plan.package_name(file.raw)
    version = _version_text(package, switched) if package else None
    cached = plan.load(plan.plan_path(file, version, switched), file, version, switched)
    if cached is not None and cached.package == package:
        return cached
    # No plan, or a foreign, invalid or incomplete one: decide again.
    built = _build_plan(_parsed(file), switched, (package, version) if package else None)
    plan.store(plan.plan_path(file, built.version, switched), built, file, switched)
    return built


def reach_subprocesses(location: Path, switched: Switches) -> None:
    """Make every Python child process apply the same patch set, with the same
    switches, at startup: spawn workers, subprocesses and Inductor's compile
    subprocesses (torch builds their ``PYTHONPATH`` from this process's
    ``sys.path``, so the boot directory goes there too).

    The first patch set a process applies is the one it exports: a later
    ``apply()`` of another manifest, or with other switches, applies in this
    process only and logs a warning.
    """
    exported = (str(location), *sorted(switched.enabled), "|", *sorted(switched.disabled))
    with STATE.lock:
        if STATE.exported not in (None, exported):
            logger.warning(
                "backport-tool: subprocesses keep applying %s; %s is applied in this process only",
                STATE.exported[0] if STATE.exported else None,
                location if STATE.exported[0] != str(location) else f"{location} (other switches)",
            )
            return
        STATE.exported = exported
        flag = (
            "-I"
            if sys.flags.isolated
            else "-E"
            if sys.flags.ignore_environment
            else "-S"
            if sys.flags.no_site
            else None
        )
        if flag is not None:
            # multiprocessing starts its workers with these flags too: they
            # never read what is exported here (-S: never run sitecustomize).
            logger.warning(
                "backport-tool: this Python runs with %s, which multiprocessing passes on to "
                "its workers: they %s and run without the patch set. Start Python without "
                "it, or apply() in each worker",
                flag,
                "never import site" if flag == "-S" else "ignore PYTHONPATH",
            )
        exported_names = (MANIFEST_ENV, ENABLE_ENV, DISABLE_ENV, "PYTHONPATH")
        # Only these are read back: copying the whole environment would decode
        # every variable of the process.
        base = {name: os.environ[name] for name in exported_names if name in os.environ}
        env = child_environment(location, switched, base, boot=True)
        for name in exported_names:
            # Kept so that the state's reset can give the environment back.
            STATE.environ_before.setdefault(name, os.environ.get(name))
            STATE.environ_set[name] = env.get(name)
            put_environ(name, env.get(name))
        # Under the lock: a revert() in another thread never finds the
        # variables withdrawn and the boot directory still on sys.path.
        _boot_on_path(str(BOOT_DIR))


def _boot_on_path(boot: str) -> None:
    # torch gives its compile workers this process's sys.path as PYTHONPATH,
    # and a Python process runs only the first sitecustomize on its path:
    # ours must come before any other, and then runs the one it shadows. It
    # goes after sys.path[0] (the script's directory, which code may take for
    # that), unless that directory has a sitecustomize of its own.
    first = 0 if sys.path and _has_sitecustomize(sys.path[0], boot) else min(1, len(sys.path))
    if boot in sys.path and sys.path.index(boot) <= first:
        return
    while boot in sys.path:
        sys.path.remove(boot)
    sys.path.insert(first, boot)


def _has_sitecustomize(entry: str, boot: str) -> bool:
    import importlib.machinery  # noqa: PLC0415 - only when the patch set is exported

    try:
        return (
            entry != boot
            and importlib.machinery.PathFinder.find_spec("sitecustomize", [entry]) is not None
        )
    except (ImportError, OSError, ValueError):
        return False


def apply(
    manifest: str | os.PathLike[str] | Manifest | None = None,
    *,
    eager: bool = False,
    strict: bool = False,
    subprocesses: bool = True,
    enable: Iterable[str] = (),
    disable: Iterable[str] = (),
) -> Report:
    """Apply the patch set of ``manifest`` (default: ``$BACKPORT_TOOL_MANIFEST``, else
    the bundled one) in this process.

    By default this is lazy and costs almost nothing: versions are resolved and an
    import hook is registered; each backport is verified and applied the moment
    its target modules are imported (at once if they already are). Until then
    its status is ``pending``, and :func:`current_report` names the modules it
    awaits. Problems found then are logged as warnings and show in
    :func:`current_report`; they never break the import.

    ``eager=True`` imports the targets and verifies and applies now.
    ``subprocesses=True`` makes every Python child process (spawn workers,
    Inductor's compile subprocesses) apply the same patch set with the same
    switches; see :func:`reach_subprocesses`. They are given it as a file: a
    loaded ``Manifest`` that is not what its file says is not exported, with
    a warning.
    ``enable`` names opt-in backports to apply, like ``BACKPORT_TOOL_ENABLE``
    (ids, or ``"all"``); ``disable`` names backports not to apply, like
    ``BACKPORT_TOOL_DISABLE``, which wins. An id that names no backport of the
    manifest is logged as a warning (visible with no logging configured) and
    listed in the report's ``warnings``; it never raises.

    It never raises at startup either: a manifest that cannot be read or is
    invalid, or a package whose installed version cannot be read, is logged as
    an error naming the file, nothing is applied, and the report's ``error``
    says why. ``strict=True`` (implies eager) raises instead: that
    :class:`BackportToolError`, or :class:`VerificationError` when a backport
    is ``drift``, ``missing``, ``failed`` or ``partial``. Called from a
    backport's hook, it raises :class:`UsageError`.
    """
    refuse_in_hook("apply")
    configure_logging()
    STATE.hooks.module_loaded(None)
    try:
        # In the try: a wrong argument is reported like a bad manifest, and
        # raised only with strict=True.
        given = Given.of(enable, disable, Given().names)
        switched = switches(given.enable, given.disable)
        source = _source(manifest)
        if eager or strict:
            report = _apply_now(_as_manifest(source), switched, given)
        else:
            report = _apply_lazily(source, switched, given)
    except BackportToolError as exc:
        if strict:
            raise
        return _not_applied(manifest, exc)
    # Only a manifest that validated reaches subprocesses.
    if subprocesses and _exportable(source):
        reach_subprocesses(source.location, switched)
    _log_summary(report)
    if strict and report.exit_code:
        raise VerificationError(report)
    return report


def _exportable(source: ManifestFile | Manifest) -> bool:
    # Children get the manifest as a file path: a Manifest object that is
    # not what its file says (edited in memory, or the file changed since)
    # would have them apply something else than this process.
    if isinstance(source, ManifestFile):
        return True
    try:
        same = _parsed(read_manifest_file(source.path)) == source
    except BackportToolError:
        same = False
    if not same:
        logger.warning(
            "backport-tool: the Manifest given to apply() is not what %s says, and child "
            "processes can only be given a file: they do not apply it. Write it to a file "
            "and apply that path, or pass subprocesses=False",
            source.path,
        )
    return same


def _not_applied(manifest: str | os.PathLike[str] | Manifest | None, exc: Exception) -> Report:
    # A server must start without its backports rather than not at all.
    where = default_manifest_path() if manifest is None else manifest
    path = str(where if isinstance(where, (str, os.PathLike)) else getattr(where, "path", where))
    logger.error("backport-tool: %s; nothing was applied", exc)
    report = Report("", None, path, (), error=f"{exc}; nothing was applied")
    _record(report)
    return report


def refuse_in_hook(verb: str) -> None:
    """Raise :class:`UsageError` when a backport's hook calls ``verb``."""
    # apply() or revert() from inside a hook would change the registry while
    # that very operation is half-way through it.
    running = getattr(STATE.in_hook, "running", None)
    if running:
        raise UsageError(
            f"{verb}() was called from {running}; hooks run while backport-tool is applying "
            "or reverting, so they must not apply or revert backports themselves. Do it "
            "after apply() returns"
        )


def _apply_now(manifest: Manifest, switched: Switches, given: Given) -> Report:
    from .engine import Mode, run  # noqa: PLC0415 - see _parsed
    from .inspection import LiveInspector  # noqa: PLC0415

    warnings = warn_unknown_ids(given, (b.id for b in manifest.backports))
    version = installed(manifest.package, switched)
    report = run(manifest, Mode.APPLY, LiveInspector(), version, switched)
    _record(replace(report, warnings=warnings))
    for result in report.results:
        if result.status is Status.APPLIED:
            _applied_now(result.id, _package_of(manifest, result.id), manifest)
    return current_report() or report


def _package_of(manifest: Manifest, backport_id: str) -> str:
    return manifest.get(backport_id).targets[0].symbol.module.split(".")[0]


def _apply_lazily(source: ManifestFile | Manifest, switched: Switches, given: Given) -> Report:
    if isinstance(source, ManifestFile):
        decided = _startup_plan(source, switched)
    else:
        decided = _build_plan(source, switched)
    warnings = warn_unknown_ids(given, (e.id for e in decided.entries))
    results: list[BackportResult] = []
    ready: list[plan.PlanEntry] = []
    for entry in decided.entries:
        if entry.status is not Status.READY:
            results.append(BackportResult(entry.id, entry.status, entry.reason))
            continue
        ready.append(entry)
        results.append(BackportResult(entry.id, Status.PENDING, ""))
    path = str(source.path)
    _record(Report(decided.package, decided.version, path, tuple(results), warnings=warnings))
    for entry in ready:
        _watch(source, entry)
    for entry in ready:
        _update_pending(entry.id)
    return current_report() or Report(decided.package, decided.version, path, ())


def _watch(source: ManifestFile | Manifest, entry: plan.PlanEntry) -> None:
    # Copies first: a copy module imported before the target's is then seen
    # through our loader, and bound the moment the backport applies.
    for module in entry.copy_modules:
        bind = functools.partial(_copies_imported, entry.id, module, source)
        STATE.hooks.watch(entry.id, module, bind)
    on_import = functools.partial(_target_imported, source, entry)
    waiting = [m for m in entry.modules if STATE.hooks.watch(entry.id, m, on_import)]
    if not waiting:
        on_import()
        return
    # The end of the package's own import is when deferred work (the tag,
    # after_apply, the rest of a backport's modules) runs.
    for package in {m.split(".")[0] for m in entry.modules} - set(entry.modules):
        STATE.hooks.watch(entry.id, package, _nothing, quiet=True)


def _nothing() -> None:
    return None


def _target_imported(source: ManifestFile | Manifest, entry: plan.PlanEntry) -> None:
    # In the hook: import nothing. All targets there, and the modules of the
    # required symbols (verified live, as eager apply verifies them): apply
    # now; else import the rest once the package's import has finished.
    if _result(entry.id) is not Status.PENDING:
        return
    if all(lazy.is_loaded(m) for m in (*entry.modules, *entry.required_modules)):
        _apply_one(source, entry)
        return
    package = entry.modules[0].split(".")[0]
    later = functools.partial(_import_then_apply, source, entry)
    if not STATE.hooks.when_settled(entry.id, package, later):
        later()


def _import_then_apply(source: ManifestFile | Manifest, entry: plan.PlanEntry) -> None:
    import importlib  # noqa: PLC0415 - only for a backport of several modules

    for module in entry.modules:
        if not lazy.is_loaded(module):
            try:
                importlib.import_module(module)
            except FOREIGN_FAILURES as exc:
                _update(BackportResult(entry.id, Status.MISSING, f"importing {module}: {exc}"))
                return
    # Importing the last of them ran its hook, which applied it already.
    if _result(entry.id) is Status.PENDING:
        _apply_one(source, entry, settled=True)


def _apply_one(
    source: ManifestFile | Manifest, entry: plan.PlanEntry, *, settled: bool = False
) -> None:
    # The full machinery, only now that the target modules are imported. In
    # the hook, a module that is not imported yet (a declared copy's) is read
    # from its source; once the package's import has finished (``settled``),
    # everything is read live and imported as needed, as eager apply does.
    try:
        # In the try: whatever fails here must end as this backport's status,
        # not leave it pending for ever.
        from .engine import Mode, evaluate  # noqa: PLC0415
        from .inspection import LiveInspector  # noqa: PLC0415
        from .report import Decision  # noqa: PLC0415

        manifest = _as_manifest(source)
        result = evaluate(
            manifest,
            manifest.get(entry.id),
            # The plan's decision is decide_all()'s, for this very manifest
            # and environment: verify and patch, do not decide again.
            Decision(entry.status, entry.reason),
            LiveInspector() if settled else LiveInspector(lazy.is_loaded),
            Mode.APPLY,
        )
    except FOREIGN_FAILURES as exc:
        logger.debug("backport-tool: applying %s failed", entry.id, exc_info=True)
        result = BackportResult(entry.id, Status.FAILED, describe(exc))
    level = logging.WARNING if result.is_problem else logging.DEBUG
    logger.log(level, "backport-tool: %s: %s (%s)", result.id, result.status.value, result.reason)
    _update(result)
    if result.status is Status.APPLIED:
        _applied_now(entry.id, entry.modules[0].split(".")[0], _as_manifest(source))


def _applied_now(backport_id: str, package: str, manifest: Manifest) -> None:
    # Copies still to come are bound when their modules are imported; the tag
    # and after_apply wait until the package's import has finished.
    from . import patcher  # noqa: PLC0415

    # In force through an enabled() scope already: apply() keeps it after.
    patcher.keep(backport_id)
    _watch_waiting(backport_id, patcher.waiting_modules(backport_id), manifest)
    finish = functools.partial(_finish_apply, backport_id)
    if not STATE.hooks.when_settled(backport_id, package, finish):
        finish()


def _finish_apply(backport_id: str) -> None:
    from . import patcher  # noqa: PLC0415

    try:
        patcher.run_after_apply(backport_id)
    except patcher.HookFailed as exc:
        logger.warning("backport-tool: %s: failed (%s; rolled back)", backport_id, exc)
        _update(BackportResult(backport_id, Status.FAILED, f"{exc}; rolled back, nothing changed"))
    _retag()
    with STATE.lock:
        if STATE.exported is not None:
            # Applied at interpreter start (`apply -- CMD`, a worker), this
            # process's sys.path had no script directory yet; it has now.
            _boot_on_path(str(BOOT_DIR))


def _watch_waiting(
    backport_id: str, modules: tuple[str, ...], source: ManifestFile | Manifest
) -> None:
    # Declared copies and registry entries in modules not imported yet: bound
    # and added when they are.
    for module in modules:
        bind = functools.partial(_copies_imported, backport_id, module, source)
        if not STATE.hooks.watch(backport_id, module, bind):
            bind()


def _copies_imported(backport_id: str, module: str, source: ManifestFile | Manifest) -> None:
    from . import patcher  # noqa: PLC0415

    before = set(patcher.waiting_modules(backport_id))
    strays = patcher.bind_copies(backport_id, module)
    # A registry entry that names objects of two modules waits for the next.
    later = tuple(m for m in patcher.waiting_modules(backport_id) if m not in before)
    _watch_waiting(backport_id, later, source)
    if not strays and _result(backport_id) is Status.APPLIED:
        # The same report as an apply that found this module imported.
        from .engine import applied_reason  # noqa: PLC0415 - loaded: it just applied
        from .replacement import with_applied_entries  # noqa: PLC0415 - loaded: it just applied

        backport = _as_manifest(source).get(backport_id)
        _amend(
            backport_id,
            Status.APPLIED,
            applied_reason(backport),
            functools.partial(with_applied_entries, backport),
        )
    if strays:
        entries = all(stray.startswith("entry ") for stray in strays)
        reason = "; ".join(strays) + (
            ": the registry does not have it as the backport says. Run `backport-tool check` "
            "once that module is imported to see why"
            if entries
            else ": that name does not run the fix. Run `backport-tool check` and "
            "`backport-tool lock` to record the copies of this torch"
        )
        logger.warning("backport-tool: %s: partial (%s)", backport_id, reason)
        _amend(backport_id, Status.PARTIAL, reason)


def _amend(
    backport_id: str,
    status: Status,
    reason: str,
    targets: Callable[[Sequence[TargetReport]], tuple[TargetReport, ...]] = tuple,
) -> None:
    # A later step of a lazy apply: the same result, with a new status and
    # reason (and ``targets`` of its target reports: as they are now).
    with STATE.lock:
        latest = STATE.latest
        found = next((r for r in latest.results if r.id == backport_id), None) if latest else None
        if found is not None:
            _update(replace(found, status=status, reason=reason, targets=targets(found.targets)))


def _result(backport_id: str) -> Status | None:
    latest = STATE.latest
    if latest is None:
        return None
    return next((r.status for r in latest.results if r.id == backport_id), None)


def _update_pending(backport_id: str) -> None:
    # A pending backport names what it waits for.
    if _result(backport_id) is not Status.PENDING:
        return
    modules, packages = STATE.hooks.awaited(backport_id)
    if modules:
        verb = "is" if len(modules) == 1 else "are"
        reason = f"verified and applied when {', '.join(modules)} {verb} imported"
    elif packages:
        reason = f"verified and applied once the import of {', '.join(packages)} has finished"
    else:
        reason = "verified and applied when its modules are imported"
    _update(BackportResult(backport_id, Status.PENDING, reason))


def _retag() -> None:
    # The patcher and the cache tag matter once something is patched, which
    # the startup path itself never does: imported here, not at the top.
    from . import cachekey, patcher  # noqa: PLC0415

    cachekey.update([(a.id, a.module_sha256) for a in patcher.applied()])


def _record(report: Report) -> None:
    with STATE.lock:
        results = tuple(map(_in_force, report.results))
        if any(a is not b for a, b in zip(results, report.results, strict=True)):
            report = replace(report, results=results)
        STATE.latest = report


def _in_force(result: BackportResult) -> BackportResult:
    # A later apply() whose switches leave out a backport in force does not
    # revert it: the result says what torch runs.
    entry = STATE.applied.get(result.id) if result.status is Status.DISABLED else None
    if entry is None:
        return result
    if not entry.kept:
        # Only enabled() scopes hold it, and the last one to end reverts it.
        return replace(
            result, reason=f"{result.reason}; in force for an enabled() block until it ends"
        )
    logger.warning(
        "backport-tool: %s stays applied: this apply() has it %s (%s), and reverts nothing; "
        "revert(%r) does",
        result.id,
        result.status.value,
        result.reason,
        result.id,
    )
    return BackportResult(
        result.id,
        Status.APPLIED,
        f"applied earlier in this process; this apply() has it {result.status.value} "
        f"({result.reason}) and reverts nothing: revert({result.id!r}) does",
    )


def _update(result: BackportResult) -> None:
    with STATE.lock:
        latest = STATE.latest
        if latest is not None:
            STATE.latest = replace(
                latest, results=tuple(result if r.id == result.id else r for r in latest.results)
            )


def current_report() -> Report | None:
    """Return the current state of the patch set applied with :func:`apply`, with
    lazily applied backports updated (a ``pending`` one names the modules it
    awaits); None before the first ``apply()``."""
    STATE.hooks.module_loaded(None)
    latest = STATE.latest
    if latest is not None:
        for result in latest.results:
            if result.status is Status.PENDING:
                _update_pending(result.id)
    with STATE.lock:
        return STATE.latest


def revert(ids: str | tuple[str, ...] | list[str] | None = None) -> tuple[str, ...]:
    """Restore exactly the bindings that applying the backports changed, and drop
    the pending ones.

    ``ids`` limits it to those backports (default: all). Returns the ids of the
    applied backports it reverted. Reverting everything also stops exporting
    the patch set: child processes started afterwards run without it, as this
    one does. ``revert(ids)`` changes this process only. Called from a
    backport's hook, it raises :class:`UsageError`.
    """
    from . import patcher  # noqa: PLC0415 - see _retag

    refuse_in_hook("revert")
    selected = None if ids is None else _ids_given(ids, "revert()")
    for backport_id in STATE.hooks.cancel(selected):
        if _result(backport_id) is Status.PENDING:
            _update(BackportResult(backport_id, Status.DISABLED, "reverted before it applied"))
    reverted = patcher.revert(selected)
    for backport_id in reverted:
        _update(
            BackportResult(backport_id, Status.DISABLED, "reverted by revert() in this process")
        )
    if selected is None:
        # Everything reverted: child processes started from now on run
        # without the patch set too, as this one does.
        withdraw_export()
    _retag()
    return reverted


_NOT_REPLACED = object()


def original(symbol: str) -> object:
    """The object ``symbol`` (``"module:Qual.name"``, a target or a declared copy)
    was before the applied backport that replaced it: what a wrapper calls
    instead of itself.

    It takes no lock (a dict look-up), so ``torch.compile(fullgraph=True)``
    can trace a wrapper that calls it. A target's ``original:`` key in the
    manifest binds the original to a global of the backport module instead:
    no look-up per call, and one guard under ``torch.compile``.

    Raises :class:`UsageError` when no applied backport replaces ``symbol``.
    """
    # Read without the patch lock: patcher replaces the snapshot whole.
    found = STATE.originals.get(symbol, _NOT_REPLACED)
    if found is _NOT_REPLACED:
        raise UsageError(
            f"original({symbol!r}): no applied backport replaces {symbol}; call it only from "
            "a replacement (or code it runs) while its backport is applied"
        )
    return found


def applied() -> tuple[AppliedBackport, ...]:
    """Return the backports currently applied in this process."""
    from . import patcher  # noqa: PLC0415 - see _retag

    return patcher.applied()


def _log_summary(report: Report) -> None:
    groups: dict[Status, list[str]] = {}
    for result in report.results:
        groups.setdefault(result.status, []).append(result.id)
    # A partial backport is in force where apply reached: not a refusal.
    in_force = (Status.APPLIED, Status.PARTIAL, Status.PENDING)
    refused = sum(len(ids) for status, ids in groups.items() if status not in in_force)
    parts = [f"{len(groups[s])} {s} ({', '.join(groups[s])})" for s in in_force if s in groups]
    parts.append(f"{refused} refused")
    level = logging.WARNING if report.exit_code else logging.INFO
    logger.log(level, "backport-tool: %s", ", ".join(parts))
