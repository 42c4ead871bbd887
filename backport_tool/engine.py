"""One path from a manifest entry to a result, for ``apply``, ``check`` and static
reads alike: the version decision (``decision``), verification
(``verification``), the backport module (``loading``), the replacement
(``replacement``) and, for ``apply``, the patch (``patcher``).

Each step either lets the backport go on or stops it with a status; the result
is built once, at the end.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import NamedTuple

from packaging.version import Version

from . import patcher, references, registries
from .config import Switches
from .decision import as_applied, decide_all
from .errors import FOREIGN_FAILURES, describe
from .findings import Claim, Probe
from .inspection import Inspector, LiveInspector
from .loading import PinMismatch, load_backport_module, module_digest, module_source
from .manifest import Backport, Manifest
from .replacement import (
    hooks_of,
    patch_for,
    registry_for,
    registry_patch,
    replacement_for,
    with_applied_entries,
)
from .report import BackportResult, Decision, Report, Status
from .verification import (
    Inspected,
    Problem,
    config_site,
    inspect_backport,
    probe,
    result,
    searches,
    undeclared_problem,
    verified_text,
    verify_claim,
    worst,
)

logger = logging.getLogger("backport_tool")


class Mode(enum.Enum):
    APPLY = "apply"
    CHECK = "check"
    STATIC = "static"  # check against sources read with ast
    # STATIC, and a backport the version gate refuses is read all the same
    # (its status stays the gate's): the matrix's drift columns, every version.
    MATRIX = "matrix"


@dataclass
class Run:
    manifest: Manifest
    backport: Backport
    decision: Decision
    inspector: Inspector
    mode: Mode
    status: Status | None = None  # set by the step that decides it
    reason: str = ""
    inspected: Inspected | None = None
    probe: Probe | None = None
    claim: Claim | None = None
    done: BackportResult | None = None  # a step that builds the whole result
    applied_from: str | None = None
    module: ModuleType | None = None
    why: str = ""
    patches: list[patcher.Patch] = field(default_factory=list)
    searches: list[references.Search | None] = field(default_factory=list)

    def stop(self, status: Status, reason: str) -> None:
        self.status, self.reason = status, reason

    @property
    def stopped(self) -> bool:
        return self.status is not None or self.done is not None


def _gate(run: Run) -> None:
    decision = run.decision
    if decision.status is Status.FIXED_UPSTREAM:
        # apply runs at startup and must not import torch internals for a
        # backport it refuses anyway; check and static reads verify the claim.
        if run.mode is Mode.APPLY:
            run.stop(decision.status, as_applied(decision).reason)
        else:
            run.done = verify_claim(
                run.backport, run.inspector, decision.reason, run.manifest.package
            )
    elif decision.status is not Status.READY:
        run.stop(decision.status, decision.reason)
        # A retired entry is a record, not code to compare.
        if run.mode is Mode.MATRIX and decision.status is not Status.RETIRED:
            _read_refused(run)


def _read_refused(run: Run) -> None:
    # What the code holds for a backport that will not apply there: its
    # targets, copies, required symbols and probe, for the matrix columns.
    run.inspected = inspect_backport(
        run.backport, run.inspector, imports=False, package=run.manifest.package
    )
    try:
        run.probe, _ = probe(load_backport_module(run.backport), run.inspected, run.backport.id)
    except FOREIGN_FAILURES:
        logger.debug("backport-tool: probing %s failed", run.backport.id, exc_info=True)
        run.probe = Probe.UNKNOWN


def _one_patch_set(run: Run) -> None:
    if not run.inspector.live:
        return
    run.applied_from = patcher.applied_from(run.backport.id)
    if run.applied_from is not None and run.applied_from != str(run.manifest.location):
        run.stop(Status.FAILED, _foreign(run.backport.id, run.applied_from, run.manifest))
    elif run.applied_from is not None and patcher.in_another_context(run.backport.id):
        run.stop(
            Status.FAILED,
            "applied in another thread or task: it sets a torch config option, which this "
            "torch keeps per context, so this one does not read its value; revert() it and "
            "apply it in the thread that compiles",
        )
    elif run.applied_from is not None and (moved := patcher.displaced(run.backport.id)):
        run.stop(Status.FAILED, _displaced(moved))
    elif run.mode is Mode.APPLY and run.applied_from is not None:
        run.stop(Status.APPLIED, "already applied in this process")


def _verify(run: Run) -> None:
    # Verify what the backport will touch before running any of its code: a
    # renamed upstream symbol then reads as "missing", not as a crash. A
    # target this process patched is judged by its original.
    run.inspected = inspect_backport(
        run.backport,
        run.inspector,
        imports=run.mode is Mode.CHECK,
        package=run.manifest.package,
    )
    if run.inspected.problems:
        problems = run.inspected.problems
        run.stop(worst(problems), "; ".join(p.message for p in problems))


def _config_keys(run: Run) -> list[tuple[tuple[int, str], str, str]]:
    # (the entry's identity, the target as written, the entry's own name)
    # for each config option among the targets: an alias and its target are
    # one entry.
    assert run.inspected is not None
    keys: list[tuple[tuple[int, str], str, str]] = []
    for target, facts in run.inspected.targets:
        site = config_site(facts)
        if site is not None:
            keys.append(((id(site.module), site.key), str(target.symbol), site.symbol))
    return keys


def _one_setting(run: Run) -> None:
    # Two targets of one backport that name one config option (an alias
    # and its target) would set it twice, and revert could not undo both.
    seen: dict[tuple[int, str], str] = {}
    for key, symbol, entry in _config_keys(run):
        if key in seen:
            run.stop(Status.FAILED, _same_setting(seen[key], symbol, entry))
            return
        seen[key] = symbol


def _same_setting(first: str, second: str, entry: str) -> str:
    return (
        f"conflict: {first} and {second} are one config option ({entry}; one is an alias of "
        "the other); keep one target for it"
    )


def _prepare(run: Run) -> None:
    # Only a backport whose targets verified runs any of its own code.
    backport, inspected = run.backport, run.inspected
    assert inspected is not None
    try:
        run.module = load_backport_module(backport)
    except FOREIGN_FAILURES as exc:
        logger.debug("backport-tool: loading %s failed", backport.module, exc_info=True)
        message = (
            str(exc)
            if isinstance(exc, PinMismatch)
            else f"{backport.module_text} raised {describe(exc)} on import"
        )
        run.stop(Status.FAILED, message)
        return
    problems: list[Problem] = []
    try:
        run.probe, run.why = probe(run.module, inspected, run.backport.id)
    except FOREIGN_FAILURES as exc:
        problems.append(Problem(Status.FAILED, f"upstream_probe raised {describe(exc)}"))
    if run.probe is Probe.FIXED:
        run.stop(
            Status.FIXED_UPSTREAM,
            f"{run.decision.reason}, but the installed code already has the fix: {run.why}",
        )
        return
    source = module_source(backport)
    # A lazy apply leaves an entry of a module not imported yet to its import.
    importing = not (isinstance(run.inspector, LiveInspector) and run.inspector.settled)
    for index, (target, facts) in enumerate(inspected.targets):
        if facts.resolved is None:
            continue  # a static read: nothing to patch
        if target.edits_registry:
            planned = registry_for(run.module, backport, target, facts, importing=importing)
            inspected.reports[index] = replace(inspected.reports[index], entries=planned.entries)
            problems += planned.problems
            if not planned.problems:
                run.patches.append(registry_patch(target, facts, planned))
            continue
        made = replacement_for(run.module, backport, target, facts, source)
        if isinstance(made, Problem):
            problems.append(made)
        else:
            run.patches.append(patch_for(target, facts, made))
    if problems:
        run.stop(worst(problems), "; ".join(p.message for p in problems))


def _not_another_backports(run: Run) -> None:
    # Two backports of one function under two names (a function and its
    # re-export) would each be "applied" while only one is in force.
    for patch in run.patches:
        if patch.registry is not None:
            for item in patch.registry:
                holder = patcher.entry_owner(run.backport.id, patch.replacement, item)
                if holder is not None:
                    run.stop(Status.FAILED, _same_entry(item.label, patch.symbol, holder))
                    return
            continue
        if patch.config is not None:
            # A config option another backport set under another name (an
            # alias): the patch is on the entry both names lead to.
            holder = patcher.owner_of(patch.owner, patch.name)
            if holder is not None and holder != run.backport.id:
                run.stop(
                    Status.FAILED,
                    f"conflict: {patch.symbol} is the config option {patch.config.symbol}, "
                    f"which backport {holder!r} sets already; a setting belongs to one "
                    "backport only: merge them, or disable one",
                )
                return
            continue
        # Either this target's original is another backport's, or it holds
        # another backport's replacement: a re-export that was bound while
        # that backport was in force (under lazy apply, the first applied
        # keeps it).
        other = _applied_original(patch.original, run.backport.id) or patcher.replaced_by(
            run.backport.id, patch.own, patch.original
        )
        if other is not None:
            run.stop(Status.FAILED, _shared(run.backport.id, other, patch.symbol))
            return


def _same_entry(entry: str, symbol: str, other: str) -> str:
    return (
        f"conflict: entry {entry} of {symbol} is added or removed by backport {other!r} too; "
        "an entry belongs to one backport only: merge them, or disable one"
    )


def _applied_original(original: object, backport_id: str) -> str | None:
    if not callable(original):
        return None
    for info in patcher.applied():
        if info.id == backport_id:
            continue
        for symbol in info.targets:
            try:
                if patcher.original(symbol) is original:
                    return info.id
            except LookupError:
                continue
    return None


def _shared(backport_id: str, other: str, symbol: str) -> str:
    return (
        f"conflict: {symbol} is the same function as a target of backport {other!r} (a "
        f"re-export or copy of it); backports {other} and {backport_id} would both replace "
        "it: merge them, or declare the other name under the target's copies:"
    )


def _patch(run: Run) -> None:
    backport, inspected = run.backport, run.inspected
    assert inspected is not None
    assert run.module is not None
    info = patcher.AppliedBackport(
        backport.id,
        str(run.manifest.location),
        tuple(p.symbol for p in run.patches),
        module_digest(backport) or "",
    )
    try:
        patcher.apply_patches(info, tuple(run.patches), hooks_of(run.module))
    except patcher.AlreadyApplied:
        # Another thread applied it between the check above and the lock.
        run.stop(Status.APPLIED, "already applied in this process")
        return
    except patcher.ForeignApplied as exc:
        run.stop(Status.FAILED, _foreign(backport.id, exc.manifest, run.manifest))
        return
    except patcher.RollbackFailed as exc:
        logger.debug("backport-tool: patching %s failed", backport.id, exc_info=True)
        stuck = "; ".join(f"{symbol} ({describe(why)})" for symbol, why in exc.stuck)
        run.stop(
            Status.FAILED,
            f"patching failed: {exc}; putting the originals back failed too, so these "
            f"still hold the replacement: {stuck}. Start a new process without this backport",
        )
        return
    except FOREIGN_FAILURES as exc:
        logger.debug("backport-tool: patching %s failed", backport.id, exc_info=True)
        run.stop(Status.FAILED, f"patching failed, nothing changed: {describe(exc)}")
        return
    bound = set(patcher.bound_copies(backport.id))
    _rebound(run, lambda copy: copy in bound)
    # Entries were planned before patching ("will-add"): say what apply did.
    inspected.reports[:] = with_applied_entries(backport, inspected.reports)
    run.stop(Status.APPLIED, applied_reason(backport))


def _rebound(run: Run, chosen: Callable[[str], bool]) -> None:
    # Each target's report names its copies that apply binds (or bound).
    assert run.inspected is not None
    for index, target in enumerate(run.backport.targets):
        copies = tuple(str(c) for c in target.copies if chosen(str(c)))
        run.inspected.reports[index] = replace(run.inspected.reports[index], rebound=copies)


def applied_reason(backport: Backport) -> str:
    """What an applied backport's result says: where the fix is in force."""
    replaced = [str(t.symbol) for t in backport.targets if not t.edits_registry]
    parts = ["replaced " + ", ".join(replaced)] if replaced else []
    bound = len(patcher.bound_copies(backport.id))
    if bound:
        parts[-1] += f" and {bound} declared cop{'ies' if bound > 1 else 'y'}"
    parts += [_edited(backport.id, str(t.symbol)) for t in backport.targets if t.edits_registry]
    reason = ", ".join(parts)
    waiting = patcher.waiting_modules(backport.id, entries=False)
    if waiting:
        verb = "is" if len(waiting) == 1 else "are"
        reason += f"; copies bound when {', '.join(waiting)} {verb} imported"
    awaited = patcher.waiting_modules(backport.id, copies=False)
    if awaited:
        verb = "is" if len(awaited) == 1 else "are"
        reason += f"; registry entries added when {', '.join(awaited)} {verb} imported"
    return reason


def _edited(backport_id: str, symbol: str) -> str:
    # "edited the entries of SYMBOL (1 added, 1 removed)"
    states = [done.state for done in patcher.edits(backport_id, symbol) or ()]
    states += [registries.EntryState.AWAITED] * len(patcher.awaited_entries(backport_id, symbol))
    detail = registries.tally(states, _EDITED_WORDS)
    return f"edited the entries of {symbol}" + (f" ({detail})" if detail else "")


_EDITED_WORDS = {
    registries.EntryState.PRESENT: "present already",
    registries.EntryState.AWAITED: "waiting for their module",
}


def _ready(run: Run) -> None:
    assert run.inspected is not None
    verified = verified_text(run.backport, run.inspected)
    run.searches = searches(run.backport, run.inspected)
    _rebound(run, lambda copy: True)
    if run.applied_from is not None:
        run.stop(
            Status.APPLIED,
            f"applied in this process; the original {verified.removeprefix('would apply: ')}",
        )
    else:
        run.stop(Status.READY, verified)


class _Listed(NamedTuple):
    # One entry that a target of a run adds or removes, and in which container.
    container: object
    item: registries.Item | registries.Awaited
    symbol: str
    run: Run


def _listed(run: Run) -> list[_Listed]:
    return [
        _Listed(patch.replacement, item, patch.symbol, run)
        for patch in run.patches
        for item in patch.registry or ()
    ]


def _listed_before(entry: _Listed, seen: list[_Listed]) -> _Listed | None:
    # The first of seen that is the same entry of the same container.
    for other in seen:
        if other.container is entry.container and registries.same_entry(entry.item, other.item):
            return other
    return None


def _one_entry(run: Run) -> None:
    # Two targets of one backport that list one entry of one container: the
    # second edit would find the first's, and revert could not undo both.
    seen: list[_Listed] = []
    for entry in _listed(run):
        other = _listed_before(entry, seen)
        if other is not None:
            run.stop(
                Status.FAILED,
                f"conflict: entry {entry.item.label} of {entry.symbol} is listed by two "
                f"targets ({other.symbol} and {entry.symbol}); keep one",
            )
            return
        seen.append(entry)


_Step = Callable[[Run], None]
_STEPS: tuple[_Step, ...] = (
    _gate,
    _one_patch_set,
    _verify,
    _one_setting,
    _prepare,
    _one_entry,
    _not_another_backports,
)


def verified_run(
    manifest: Manifest, backport: Backport, decision: Decision, inspector: Inspector, mode: Mode
) -> Run:
    # Everything but the last step (patch, or "ready"). A scope (scoped.py)
    # verifies through this too, then patches by itself.
    run = Run(manifest, backport, decision, inspector, mode)
    for step in _STEPS:
        step(run)
        if run.stopped:
            break
    return run


def _finish(run: Run) -> None:
    if not run.stopped:
        (_patch if run.mode is Mode.APPLY else _ready)(run)


def result_of(run: Run) -> BackportResult:
    # What a run that stopped (or finished) reports.
    if run.done is not None:
        return run.done
    assert run.status is not None
    return result(run.backport, run.status, run.reason, run.inspected, run.probe, run.claim)


def evaluate(
    manifest: Manifest,
    backport: Backport,
    decision: Decision,
    inspector: Inspector,
    mode: Mode,
) -> BackportResult:
    """Carry one backport from its version decision to its final status.

    ``Mode.APPLY`` patches when everything checks out (``after_apply`` is the
    caller's, once the import has settled); the other modes stop at ``ready``.
    Nothing here raises for a problem of the backport: it becomes the status.
    """
    run = verified_run(manifest, backport, decision, inspector, mode)
    _finish(run)
    return result_of(run)


def _identity_conflicts(runs: list[Run]) -> None:
    # A function and its re-export in two backports, undeclared: the same
    # original object under two targets. Both stop, in apply as in check.
    seen: dict[int, tuple[Run, str]] = {}
    for run in runs:
        if run.stopped or run.inspected is None:
            continue
        for target, facts in run.inspected.targets:
            if facts.resolved is None or not callable(facts.resolved.function):
                continue
            key = id(facts.resolved.function)
            other = seen.get(key)
            if other is None:
                seen[key] = (run, str(target.symbol))
            elif other[0] is not run:
                first, symbol = other
                run.stop(
                    Status.FAILED, _shared(run.backport.id, first.backport.id, str(target.symbol))
                )
                if first.status is None or first.status is not Status.FAILED:
                    first.stop(Status.FAILED, _shared(first.backport.id, run.backport.id, symbol))


def _option_conflicts(runs: list[Run]) -> None:
    # A config option under two names (an alias) in two backports.
    options: dict[tuple[int, str], tuple[Run, str]] = {}
    for run in runs:
        if run.stopped or run.inspected is None:
            continue
        for key, written, entry in _config_keys(run):
            owner = options.setdefault(key, (run, written))
            if owner[0] is run:
                continue
            other, symbol = owner
            for one, two, name in ((run, other, written), (other, run, symbol)):
                one.stop(
                    Status.FAILED,
                    f"conflict: {name} is the config option {entry}, which backport "
                    f"{two.backport.id!r} sets too ({written if one is other else symbol}); "
                    "a setting belongs to one backport only: merge them, or disable one",
                )


def _entry_conflicts(runs: list[Run]) -> None:
    # One entry of one container, added or removed by two backports: each
    # would undo the other's edit on revert. Both stop, in apply as in check.
    seen: list[_Listed] = []
    for run in runs:
        if run.stopped:
            continue
        entries = _listed(run)
        found = next(((e, o) for e in entries if (o := _listed_before(e, seen)) is not None), None)
        if found is None:
            seen += entries
            continue
        entry, other = found
        run.stop(Status.FAILED, _same_entry(entry.item.label, entry.symbol, other.run.backport.id))
        if other.run.status is not Status.FAILED:
            other.run.stop(
                Status.FAILED, _same_entry(other.item.label, entry.symbol, run.backport.id)
            )


def _walk(runs: list[Run]) -> None:
    # check's one walk of the process, for every target of every backport.
    wanted = [
        (run, j, search)
        for run in runs
        if run.status in (Status.READY, Status.APPLIED)
        for j, search in enumerate(run.searches)
        if search is not None
    ]
    if not wanted:
        return
    found = references.undeclared([search for _, _, search in wanted])
    per: dict[int, tuple[Run, list[tuple[str, ...]]]] = {}
    for (item, j, _), paths in zip(wanted, found, strict=True):
        empty: list[tuple[str, ...]] = [() for _ in item.searches]
        per.setdefault(id(item), (item, empty))[1][j] = paths
    for item, per_target in per.values():
        assert item.inspected is not None
        problem = undeclared_problem(item.backport, item.inspected, per_target)
        if problem is not None:
            item.stop(problem.status, f"{item.reason}; {problem.message}")


def run(
    manifest: Manifest,
    mode: Mode,
    inspector: Inspector,
    version: Version | None,
    switches: Switches,
) -> Report:
    """Evaluate every backport of ``manifest`` and log each result.

    Every backport is verified before any is patched, so that a conflict
    between two of them stops both, in apply as in check. ``Mode.CHECK`` then
    walks the process once for references to each original that the
    manifest does not declare.
    """
    decisions = decide_all(manifest, version, switches)
    runs = [verified_run(manifest, b, decisions[b.id], inspector, mode) for b in manifest.backports]
    _identity_conflicts(runs)
    _option_conflicts(runs)
    _entry_conflicts(runs)
    for item in runs:
        _finish(item)
    if mode is Mode.CHECK:
        _walk(runs)
    results = tuple(result_of(item) for item in runs)
    for done in results:
        level = logging.WARNING if done.status.is_problem else logging.DEBUG
        logger.log(level, "backport-tool: %s: %s (%s)", done.id, done.status.value, done.reason)
    return Report(
        manifest.package,
        str(version) if version else None,
        str(manifest.path),
        results,
        source=None if inspector.live else inspector.label,
    )


def _displaced(symbols: tuple[str, ...]) -> str:
    return (
        f"applied in this process, but no longer in force at {', '.join(symbols)}: something "
        "replaced what apply put there (a config.patch() block that was open when it "
        "applied restores its own value when it ends). revert() it, then apply it again"
    )


def _foreign(backport_id: str, applied_from: str, manifest: Manifest) -> str:
    return (
        f"backport id {backport_id!r} is already applied in this process from {applied_from}; "
        f"{manifest.location} has a backport of the same id, which was not applied. Apply "
        "one patch set per process, or give the backports distinct ids"
    )
