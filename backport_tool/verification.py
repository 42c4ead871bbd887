"""Verification of a backport against the code it would patch: its targets,
their declared copies, its required symbols, drift, its content probe, the
claim of a ``fixed_in`` refusal, and (``check`` only) the references to each
original that the manifest does not declare."""

from __future__ import annotations

import enum
import importlib
import sys
from dataclasses import dataclass, field, replace
from importlib.machinery import EXTENSION_SUFFIXES
from types import ModuleType
from typing import TypeGuard

from . import configs, patcher, references, registries
from .errors import FOREIGN_FAILURES, describe
from .findings import Claim, Presence, Probe, TargetReport
from .inspection import Inspector, StaticInspector, SymbolFacts
from .loading import PROBE_HOOK, load_backport_module
from .manifest import Backport, SymbolRef, Target
from .report import BackportResult, Status
from .symbols import ABSENT, Resolved, SymbolMissing, resolve_owner, unwrapped


@dataclass(frozen=True)
class Problem:
    status: Status
    message: str


# When a backport has several problems, the status names the worst one.
SEVERITY = (Status.FAILED, Status.MISSING, Status.DRIFT, Status.PARTIAL)


def worst(problems: list[Problem]) -> Status:
    return next(s for s in SEVERITY if any(p.status is s for p in problems))


@dataclass
class Inspected:
    targets: list[tuple[Target, SymbolFacts]] = field(default_factory=list)
    reports: list[TargetReport] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    requires_missing: list[str] = field(default_factory=list)
    # Their module raised on import, or its file cannot be read: not missing.
    requires_failed: list[str] = field(default_factory=list)
    requires_unknown: list[str] = field(default_factory=list)


def _recorded(target: Target, package: str) -> str:
    if not target.recorded_from:
        return ""  # written by hand, or by a lock that did not say
    return f" (recorded from {package} " + ", ".join(target.recorded_from) + ")"


def _target_report(target: Target, facts: SymbolFacts) -> TargetReport:
    return TargetReport(
        symbol=str(target.symbol),
        presence=facts.presence,
        expected_signature=target.signature,
        actual_signature=facts.signature,
        defined_on=facts.defined_on,
        expected_fingerprints=target.fingerprints,
        actual_fingerprint=facts.function.fingerprint if facts.function else None,
        note=_builtin_note(target, facts),
    )


def _builtin_note(target: Target, facts: SymbolFacts) -> str | None:
    # C code has no source to fingerprint; what is compared instead is said,
    # so that "ready" does not claim more than was checked.
    if not facts.builtin:
        return None
    note = f"{target.symbol} is C code, with no Python source to fingerprint"
    if target.fingerprints:
        note += " (its recorded fingerprint is not compared)"
    if facts.signature is not None:
        return note + "; its text signature is compared"
    if target.signature is not None:
        return (
            note + " and no text signature; the declared signature is what the replacement "
            "must fit, and cannot be compared, so the drift check of this target is limited "
            "to presence"
        )
    return (
        note + ", no text signature and no declared signature: the drift check of this target "
        "is limited to presence"
    )


def config_site(facts: SymbolFacts) -> configs.ConfigSite | None:
    """The config entry a resolved target reads and writes, when it is an
    option of a torch config module (aliases followed)."""
    resolved = facts.resolved
    if resolved is None:
        return None
    try:
        return configs.site_of(resolved.owner, resolved.name)
    except AttributeError:
        return None


def _short(value: object) -> str:
    try:
        text = repr(value)
    except FOREIGN_FAILURES as exc:
        text = f"<unprintable {type(value).__name__}: {describe(exc)}>"
    return text if len(text) <= 120 else text[:117] + "..."


def _config_option(
    target: Target, site: configs.ConfigSite, report: TargetReport
) -> tuple[TargetReport, list[Problem]]:
    # Its value and default in the report; an option the environment forces
    # would ignore ours, and one whose declared type no longer takes the
    # manifest's value has changed under the backport.
    try:
        current: object = configs.read(site)
    except AttributeError as exc:
        current = f"<unreadable: {exc}>"
    report = replace(
        report, config_value=_short(current), config_default=_short(configs.default(site))
    )
    problems: list[Problem] = []
    if configs.forced_by_env(site):
        problems.append(
            Problem(
                Status.FAILED,
                f"target {target.symbol}: an environment variable forces config option "
                f"{site.symbol} to {_short(site.entry.env_value_force)}, so setting it changes "
                "nothing; unset the variable or drop the target",
            )
        )
    if target.sets_value and configs.accepts(site, target.value) is False:
        problems.append(
            Problem(
                Status.DRIFT,
                f"target {target.symbol}: config option {site.symbol} is declared as "
                f"{configs.type_name(site)} now, and the backport sets it to "
                f"{_short(target.value)}; the option has changed",
            )
        )
    return report, problems


def _registry(
    target: Target,
    facts: SymbolFacts,
    report: TargetReport,
    site: configs.ConfigSite | None,
    *,
    live: bool,
) -> tuple[TargetReport, list[Problem]]:
    # The container must be one whose entries can be added and removed in
    # place, and of the shape add: was written for.
    if facts.presence is not Presence.FOUND:
        return report, []
    if not live or facts.resolved is None:
        note = (
            f"the entries of {target.symbol} are not read from source: its presence and "
            "fingerprint are compared"
        )
        return replace(report, note=note), []
    if site is not None:
        return report, [
            Problem(
                Status.FAILED,
                f"target {target.symbol} is an option of a torch config module, which keeps "
                "its value apart; set it with value: instead of add: or remove:",
            )
        ]
    container = facts.resolved.function
    kind = registries.kind_of(container)
    if kind is None:
        return report, [
            Problem(
                Status.FAILED,
                f"target {target.symbol} is a {type(container).__name__}, and add: and remove: "
                "edit a set, dict or list in place; replace it with replacement: instead",
            )
        ]
    report = replace(report, container=kind)
    if kind == "dict" and target.add and not target.adds_mapping:
        return report, [
            Problem(
                Status.FAILED,
                f"target {target.symbol} is a dict, and add: lists entries; write add: as a "
                "mapping of key -> value",
            )
        ]
    if kind != "dict" and target.adds_mapping:
        return report, [
            Problem(
                Status.FAILED,
                f"target {target.symbol} is a {kind}, and add: maps keys to values; write add: "
                "as a list of entries",
            )
        ]
    return report, []


def _presence_problem(what: str, facts: SymbolFacts) -> Problem | None:
    if facts.presence is Presence.MISSING:
        return Problem(Status.MISSING, f"{what} {facts.symbol}: {facts.message}")
    if facts.presence is Presence.FAILED:
        return Problem(Status.FAILED, f"{what} {facts.symbol}: {facts.message}")
    return None


def _drift(target: Target, report: TargetReport, package: str) -> list[Problem]:
    problems: list[Problem] = []
    if report.signature_matches is False:
        problems.append(
            Problem(
                Status.DRIFT,
                f"target {target.symbol} has signature {report.actual_signature}, "
                f"the backport expects {target.signature}",
            )
        )
    if report.fingerprint_matches is False:
        problems.append(
            Problem(
                Status.DRIFT,
                f"target {target.symbol} source fingerprint {report.actual_fingerprint} is not "
                f"the recorded {' or '.join(target.fingerprints)}{_recorded(target, package)}; "
                "the code the backport replaces has changed",
            )
        )
    return problems


def inspect_backport(
    backport: Backport, inspector: Inspector, *, imports: bool, package: str
) -> Inspected:
    """Read every target, declared copy and required symbol. ``imports``: the
    copies' modules may be imported (``check``); else only imported ones are
    read (``apply``: the others are bound when they are imported). ``package``:
    the manifest's, which recorded versions are versions of."""
    out = Inspected()
    for target in backport.targets:
        facts = inspector.inspect(target.symbol)
        if target.create:
            facts, problem = _to_create(target, facts, inspector)
        else:
            problem = _presence_problem("target", facts)
        report = _target_report(target, facts)
        if not inspector.live:
            report = replace(report, read_statically=True)
        site = config_site(facts) if problem is None and inspector.live else None
        if target.edits_registry:
            report, found = _registry(target, facts, report, site, live=inspector.live)
            out.problems += found
        elif site is not None:
            report, found = _config_option(target, site, report)
            out.problems += found
        out.targets.append((target, facts))
        out.reports.append(report)
        if problem is not None:
            out.problems.append(problem)
        out.problems += _drift(target, report, package)
        if problem is None and facts.resolved is not None and inspector.live:
            refused = unpatchable(target.symbol, facts.resolved)
            if refused is not None:
                out.problems.append(Problem(Status.FAILED, refused))
            out.problems += _copies(target, facts.resolved, imports=imports)
        elif (
            problem is None
            and isinstance(inspector, StaticInspector)
            and not (target.create or target.edits_registry)
        ):
            # A registry is edited in place: every binding of it sees the edit.
            out.problems += _static_copies(target, inspector)
    for ref in backport.requires:
        facts = inspector.inspect(ref, source=False)
        problem = _presence_problem("required symbol", facts)
        if problem is not None:
            out.problems.append(problem)
            if facts.presence is Presence.FAILED:
                out.requires_failed.append(str(ref))
            else:
                out.requires_missing.append(str(ref))
        elif facts.presence is Presence.UNKNOWN:
            out.requires_unknown.append(str(ref))
    return out


# Py_TPFLAGS_IMMUTABLETYPE: a C type (torch.Size, dict) whose attributes
# cannot be set; apply would fail only when it patches.
_IMMUTABLE_TYPE = 1 << 8


def _immutable(owner: object) -> TypeGuard[type]:
    return isinstance(owner, type) and bool(owner.__flags__ & _IMMUTABLE_TYPE)


def unpatchable(symbol: SymbolRef, resolved: Resolved) -> str | None:
    """Why no backport can ever replace ``symbol``, found at ``resolved``,
    whatever its module holds; None when one can."""
    why = never_changed(symbol.module)
    if why is not None:
        return (
            f"target {symbol}: {why}, which backport-tool never changes; target the Python "
            "module that exposes it instead"
        )
    owner = resolved.owner
    if _immutable(owner):
        return (
            f"target {symbol}: {owner.__module__}.{owner.__qualname__} is an immutable type "
            "(C code), whose attributes cannot be set; target a Python class or module that "
            "exposes it instead"
        )
    if isinstance(owner, enum.EnumMeta) and resolved.name in owner.__members__:
        # Enum's metaclass refuses to set a member ("cannot reassign member").
        return (
            f"target {symbol}: a member of the Enum {owner.__module__}.{owner.__qualname__}, "
            "which Python does not let anyone reassign; target the functions or methods that "
            "use it instead"
        )
    return None


def original_of(resolved: Resolved) -> object:
    """What declared copies of a target hold: the function behind the
    attribute, its own or inherited."""
    return unwrapped(resolved.raw)


def never_changed(module: str) -> str | None:
    """Why bindings in ``module`` are never changed, if they are not: an
    extension module (``torch._C`` and its submodules) or backport-tool's own
    code, the backport modules included."""
    if module.startswith(("backport_tool.", "_backport_tool_bp_")) or module == "backport_tool":
        return "it is backport-tool's own code or a backport module"
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        found = sys.modules.get(".".join(parts[:end]))
        if found is None:
            continue
        origin = object.__getattribute__(found, "__dict__").get("__file__")
        if isinstance(origin, str) and origin.endswith(tuple(EXTENSION_SUFFIXES)):
            return f"{'.'.join(parts[:end])} is an extension module"
    return None


# copy_value's answer for a site whose module or class is not there.
NOT_LOADED = object()


def copy_value(copy: SymbolRef) -> object:
    """What the declared copy site holds as torch bound it (what a backport
    replaced there, if one did): :data:`ABSENT` when it holds nothing,
    :data:`NOT_LOADED` when its module or class is not there (not imported
    yet)."""
    holder = patcher.site_holder(str(copy))
    if holder is None:
        return NOT_LOADED
    owner, name = holder
    before = patcher.before_patch(owner, name)
    return before[1] if before is not None else vars(owner).get(name, ABSENT)


def _copies(target: Target, resolved: Resolved, *, imports: bool) -> list[Problem]:
    original = original_of(resolved)
    problems: list[Problem] = []
    for copy in target.copies:
        why = never_changed(copy.module)
        if why is not None:
            problems.append(
                Problem(
                    Status.FAILED,
                    f"declared copy {copy}: {why}, which backport-tool never changes; "
                    "remove it from copies:",
                )
            )
            continue
        # Bound to the original in some environments only: whatever this one
        # binds there is right, and apply binds it where it is the original.
        conditional = copy in target.conditional
        if imports:
            try:
                importlib.import_module(copy.module)
            except FOREIGN_FAILURES as exc:
                if isinstance(exc, ImportError) and _needs_uninstalled(exc, copy.module):
                    # It is there, but needs a package this environment lacks
                    # (torch.testing._internal needs expecttest;
                    # torch.utils._cxx_pytree raises ImportError without
                    # optree): never imported here, so never run unpatched
                    # here; apply binds it wherever it is imported, as it
                    # would here.
                    continue
                if not conditional:
                    problems.append(
                        Problem(
                            Status.MISSING, f"declared copy {copy}: import raised {describe(exc)}"
                        )
                    )
                continue
        raw = copy_value(copy)
        if raw is NOT_LOADED:
            if imports and not conditional:
                problems.append(Problem(Status.DRIFT, f"declared copy {copy} is not there"))
            continue  # apply binds it when its module is imported
        if (raw is ABSENT or unwrapped(raw) is not original) and not conditional:
            found = "is not there" if raw is ABSENT else "no longer holds the original"
            problems.append(
                Problem(
                    Status.DRIFT,
                    f"declared copy {copy} of {target.symbol} {found}; torch changed how it "
                    "binds the function: run `backport-tool lock` to record its copies again",
                )
            )
    return problems


def _needs_uninstalled(exc: ImportError, module: str) -> bool:
    # ``module`` was found and ran, and refused this environment: the missing
    # module is neither ``module`` nor a package above it, or the module
    # raised ImportError itself.
    if not isinstance(exc, ModuleNotFoundError):
        return True
    missing = exc.name
    return missing is not None and missing != module and not module.startswith(missing + ".")


def _static_copies(target: Target, inspector: StaticInspector) -> list[Problem]:
    # Another version, read statically: its copy sites against the declared ones.
    from .copysites import CopiesUnknown, find_copies  # noqa: PLC0415 - check --source only

    try:
        found = {str(site) for site in find_copies(inspector.index, target.symbol).sites}
    except CopiesUnknown:
        return []
    declared = {str(copy) for copy in target.copies}
    problems: list[Problem] = []
    # A conditional copy is bound where it holds the original: one that the
    # other version does not bind is what conditional_copies is for.
    gone = sorted(declared - found - {str(copy) for copy in target.conditional})
    if gone:
        problems.append(
            Problem(
                Status.DRIFT,
                f"declared cop{'ies' if len(gone) > 1 else 'y'} {', '.join(gone)} of "
                f"{target.symbol} {'are' if len(gone) > 1 else 'is'} not bound to the original "
                f"in {inspector.label}; run `backport-tool lock --source {inspector.spec}` to "
                "record its copies",
            )
        )
    new = sorted(found - declared)
    if new:
        problems.append(
            Problem(
                Status.PARTIAL,
                f"{inspector.label} binds {target.symbol} also at {', '.join(new)}, which the "
                f"manifest does not declare, so apply would not reach "
                f"{'them' if len(new) > 1 else 'it'}; run `backport-tool lock --source "
                f"{inspector.spec}` to declare {'them' if len(new) > 1 else 'it'}",
            )
        )
    return problems


def _to_create(
    target: Target, facts: SymbolFacts, inspector: Inspector
) -> tuple[SymbolFacts, Problem | None]:
    # A new attribute: absent is what it should be, present is news.
    if facts.presence is Presence.FOUND:
        where = f" (on {facts.defined_on})" if facts.defined_on else ""
        return facts, Problem(
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
        return facts, Problem(Status.MISSING, f"target {target.symbol}: {exc}")
    except FOREIGN_FAILURES as exc:
        return facts, Problem(
            Status.FAILED, f"target {target.symbol}: import raised {describe(exc)}"
        )
    name = target.symbol.qualname.rsplit(".", 1)[-1]
    return replace(facts, resolved=Resolved(owner, name, ABSENT, owner, ABSENT)), None


def probe(module: ModuleType, inspected: Inspected, backport_id: str) -> tuple[Probe | None, str]:
    """Ask the backport's content probe whether the code already has the fix."""
    hook = getattr(module, PROBE_HOOK, None)
    if hook is None:
        return None, ""
    verdicts: list[tuple[bool | None, str]] = []
    for target, facts in inspected.targets:
        if facts.function is None:
            verdicts.append((None, f"no source to read for {target.symbol}"))
            continue
        # A probe that applies or reverts would change the registry while the
        # apply that asked it is half-way through: refused, as in a hook.
        with patcher.hook_running(backport_id, PROBE_HOOK):
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


def result(
    backport: Backport,
    status: Status,
    reason: str,
    inspected: Inspected | None = None,
    found: Probe | None = None,
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
        probe=found,
        requires_missing=tuple(inspected.requires_missing),
        requires_failed=tuple(inspected.requires_failed),
        requires_unknown=tuple(inspected.requires_unknown),
        requires_total=len(backport.requires),
    )


def verify_claim(
    backport: Backport, inspector: Inspector, reason: str, package: str
) -> BackportResult:
    """The version says upstream has the fix: ask the code whether it agrees."""
    inspected = inspect_backport(backport, inspector, imports=True, package=package)
    try:
        module = load_backport_module(backport)
        found, why = probe(module, inspected, backport.id)
    except FOREIGN_FAILURES as exc:
        found, why = Probe.UNKNOWN, f"the probe raised {describe(exc)}"
    claims = {Probe.FIXED: Claim.CONFIRMED, Probe.NOT_FIXED: Claim.CONTRADICTED}
    claim = claims.get(found, Claim.UNVERIFIED) if found is not None else Claim.UNVERIFIED
    notes = [p.message for p in inspected.problems]
    if claim is Claim.CONTRADICTED:
        reason += f"; but the code does not have the fix: {why}"
        same = [t for t in inspected.reports if t.fingerprint_matches]
        if same and len(same) == len(inspected.reports):
            recorded = sorted({v for t in backport.targets for v in t.recorded_from})
            reason += (
                "; the target's source is identical to the one the backport was written for"
                + (f" ({package} {', '.join(recorded)})" if recorded else "")
            )
    elif claim is Claim.CONFIRMED:
        reason += f"; the code confirms it: {why}"
    elif found is None:
        reason += "; unverified: the backport has no content probe"
    else:
        reason += f"; unverified: {why or 'the probe cannot tell'}"
    if notes:
        reason += "; also: " + "; ".join(notes)
    return result(backport, Status.FIXED_UPSTREAM, reason, inspected, found, claim)


def verified_text(backport: Backport, inspected: Inspected) -> str:
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
    # Only what was compared: C code has no fingerprint, and perhaps no signature.
    if any(r.signature_matches for r in inspected.reports):
        checks.append("signatures match")
    if any(r.fingerprint_matches for r in inspected.reports):
        checks.append("fingerprints match")
    conditional = sum(len(t.conditional) for t in backport.targets)
    copies = sum(len(t.copies) for t in backport.targets) - conditional
    if copies:
        checks.append(
            f"{copies} declared {'copies hold' if copies > 1 else 'copy holds'} the original"
        )
    if conditional:
        checks.append(
            f"{conditional} conditional cop{'ies' if conditional > 1 else 'y'} (bound where "
            f"{'they hold' if conditional > 1 else 'it holds'} the original)"
        )
    if backport.requires:
        found = len(backport.requires) - len(inspected.requires_unknown)
        checks.append(f"{found} required symbols found")
        if inspected.requires_unknown:
            checks.append(f"{len(inspected.requires_unknown)} not readable from source")
    checks += [_entries_text(r) for r in inspected.reports if r.entries]
    notes = [r.note for r in inspected.reports if r.note is not None]
    return "would apply: " + ", ".join(checks) + "".join(f"; {note}" for note in notes)


_ENTRY_WORDS = {
    registries.EntryState.WILL_ADD: "to add",
    registries.EntryState.PRESENT: "present already (left as they are, and kept on revert)",
    registries.EntryState.WILL_REPLACE: "to replace",
    registries.EntryState.WILL_REMOVE: "to remove",
    registries.EntryState.AWAITED: "waiting for their module",
    registries.EntryState.ADDED: "added",
    registries.EntryState.REPLACED: "replaced",
    registries.EntryState.REMOVED: "removed",
}


def _entries_text(report: TargetReport) -> str:
    states = (entry.state for entry in report.entries)
    return f"{report.symbol} is a {report.container} with entries " + registries.tally(
        states, _ENTRY_WORDS
    )


def searches(backport: Backport, inspected: Inspected) -> list[references.Search | None]:
    """What ``check``'s walk looks for, per target: None for an original that
    is never looked for by identity (a value, a builtin, an object the
    target's module did not create)."""
    out: list[references.Search | None] = []
    for target, facts in inspected.targets:
        resolved = facts.resolved
        original = original_of(resolved) if resolved is not None else ABSENT
        modules = [site.module for site in target.sites]
        if original is ABSENT or not references.walked(original, modules):
            out.append(None)
            continue
        assert resolved is not None
        if isinstance(resolved.owner, type) and resolved.own is ABSENT:
            # Inherited: the replacement goes on the named class, and the
            # base keeps its function, as does every other name bound to it.
            out.append(None)
            continue
        declared = frozenset(str(site) for site in target.sites)
        out.append(references.Search(original, declared))
    return out


def undeclared_problem(
    backport: Backport, inspected: Inspected, found: list[tuple[str, ...]]
) -> Problem | None:
    """Put each target's undeclared references in its report; a problem
    (``partial``) when any of them is not acknowledged."""
    unreviewed: list[str] = []
    for index, (target, paths) in enumerate(zip(backport.targets, found, strict=True)):
        stale = tuple(p for p in paths if p not in target.acknowledged)
        inspected.reports[index] = replace(inspected.reports[index], stale_references=stale)
        unreviewed += stale
    if not unreviewed:
        return None
    plural = len(unreviewed) > 1
    return Problem(
        Status.PARTIAL,
        f"{len(unreviewed)} reference{'s' if plural else ''} to the original that apply does "
        f"not reach: {', '.join(unreviewed)}. A module global or class attribute is a copy: run "
        "`backport-tool lock` to declare it (one lock cannot read in the sources goes under "
        "copies: by hand, and lock keeps it). For the others (dict, list or tuple entries, "
        "partials, closures, bound methods), make them call the fix (an after_apply hook can "
        "re-register it), then run `backport-tool lock --acknowledge` to record them as reviewed",
    )
