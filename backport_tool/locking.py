"""``backport-tool lock``: record the signature, source fingerprint and copy
sites of every target, as found in the installed (or a statically read) torch,
into the manifest, keeping the comments and key order a human wrote."""

from __future__ import annotations

import copy
import enum
import importlib
import io
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from packaging.version import Version

from .api import manifest_for
from .config import ALL, Switches
from .copysites import Copies, CopiesUnknown, find_copies, installed_tree
from .decision import decide
from .errors import FOREIGN_FAILURES, WRITING_MANIFEST, MissingDependencyError, UsageError
from .files import read_text, write_text_preserving
from .findings import Presence
from .inspection import Inspector, LiveInspector, StaticInspector, SymbolFacts
from .manifest import Backport, Manifest, SymbolRef, Target, parse_manifest
from .manifest_file import resolved_spec
from .report import Status
from .source import call_shape, parse_signature
from .static import StaticIndex, open_tree
from .symbols import ABSENT, unwrapped
from .verification import NOT_LOADED, copy_value, original_of
from .versions import installed_version

# Only the commands that write the manifest need ruamel.yaml (it round-trips
# the comments and key order a human wrote, which pyyaml cannot); apply and
# check never import this module.
try:
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString
except ImportError as exc:
    raise MissingDependencyError(WRITING_MANIFEST, "ruamel.yaml", "ruamel.yaml", exc) from exc


class LockAction(str, enum.Enum):
    """What ``lock`` did with one target or one backport."""

    UPDATED = "updated"
    UNCHANGED = "unchanged"
    SKIPPED = "skipped"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class LockEntry:
    """What ``lock`` did for one target (or one backport it skipped)."""

    backport: str
    symbol: str | None
    action: LockAction
    detail: str

    def to_dict(self) -> dict[str, str | None]:
        """The entry as plain JSON-ready values."""
        return {
            "id": self.backport,
            "symbol": self.symbol,
            "action": self.action.value,
            "detail": self.detail,
        }


def _round_trip() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a human's long lines
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def _set(target: CommentedMap, key: str, value: Any, after: str | tuple[str, ...]) -> None:
    if key in target:
        # The comment below the old value goes below the new one.
        token = _take_trailing(target, key) if list(target)[-1] == key else None
        target[key] = value
        if token is not None:
            _give_trailing(target, key, token)
        return
    keys = list(target.keys())
    # The first of ``after`` that the mapping has; the end if none.
    anchors = [key for key in ((after,) if isinstance(after, str) else after) if key in keys]
    position = keys.index(anchors[0]) + 1 if anchors else len(keys)
    target.insert(position, key, value)
    if keys and position == len(keys):
        # ruamel keeps a comment below a mapping (the next target's heading,
        # the file's last words) on its last key: it stays below the keys.
        token = _take_trailing(target, keys[-1])
        if token is not None:
            _give_trailing(target, key, token)


def _take_trailing(target: CommentedMap, key: str) -> Any:
    # The comment lines below the key's value, split off a comment at the end
    # of its own line (`replacement: f  # why`), which stays where it is.
    value = target[key]
    if isinstance(value, CommentedMap) and len(value):
        # A block mapping value (value: {a: 2} written as a block) keeps it
        # on its own last key.
        inner = _take_trailing(value, list(value)[-1])
        if inner is not None:
            return inner
    held = None
    if isinstance(value, CommentedSeq) and len(value):
        held = value.ca.items.get(len(value) - 1)
        slot = 0
    if not held or held[slot] is None:
        held, slot = target.ca.items.get(key), 2
    if not held or len(held) <= slot or held[slot] is None:
        return None
    token = held[slot]
    line, _, below = str(token.value).partition("\n")
    if not below.strip():
        return None
    moved = copy.copy(token)
    moved.value = "\n" + below
    if line.strip():
        token.value = line + "\n"
    else:
        held[slot] = None
    return moved


def _give_trailing(target: CommentedMap, key: str, token: Any) -> None:
    value = target[key]
    if isinstance(value, CommentedSeq) and len(value) and value.fa.flow_style() is not True:
        value.ca.items.setdefault(len(value) - 1, [None, None])[0] = token
    else:
        target.ca.items.setdefault(key, [None, None, None, None])[2] = token


def _versions(existing: Any, version: str) -> CommentedSeq:
    versions = {str(v) for v in existing or []} | {version}
    # Quoted: YAML would read an unquoted 2.12 as a float.
    seq = CommentedSeq(DoubleQuotedScalarString(v) for v in sorted(versions, key=Version))
    seq.fa.set_flow_style()
    return seq


def lock(
    manifest: str | os.PathLike[str] | Manifest | None = None,
    *,
    source: str | None = None,
    acknowledge: Mapping[tuple[str, str], Sequence[str]] | None = None,
) -> tuple[LockEntry, ...]:
    """Write signatures, fingerprints and copy sites of the installed torch (or
    of ``source``: a wheel, a directory or ``REPO@REV``) into the manifest file.

    Only backports whose ``applies_to`` admits that version are locked. A
    fingerprint that still matches gains the version in ``recorded_from``; one
    that changed replaces the old one. ``copies:`` becomes the sites that the
    package's own sources bind to the original (none: the key is removed).
    ``acknowledge`` maps ``(backport id, target symbol)`` to the reference
    paths to record as that target's ``acknowledged:`` list (empty: removed).
    Returns what was done per target.
    """
    loaded = manifest_for(manifest)
    inspector: Inspector
    copies: Callable[[SymbolRef], Copies | str]
    if source is None:
        version = installed_version(loaded.package)
        inspector = LiveInspector()
        if version is None:
            raise UsageError(f"{loaded.package} is not installed; nothing to lock against")
        copies = _installed_copies()
    else:
        tree = open_tree(source)
        found = tree.version(loaded.package)
        if found is None:
            raise UsageError(f"cannot tell which {loaded.package} version {source} holds")
        version = found
        static = StaticIndex(tree)
        inspector = StaticInspector(static)
        copies = _copies_in(lambda ref: static)
    label = version.public
    acknowledged = acknowledge or {}

    yaml = _round_trip()
    # A pkg: manifest is written where it lies in its package.
    path = resolved_spec(loaded.path)
    # ruamel.yaml sees the text without BOM and with \n line endings; the
    # file is written back in the style it was read in.
    text, style = read_text(path)
    document = yaml.load(text)
    entries: list[LockEntry] = []
    for index, backport in enumerate(loaded.backports):
        # Lock what would apply to this version, whatever switches it off here.
        decision = decide(backport, version, Switches(enabled=frozenset({ALL})), loaded.package)
        if decision.status is not Status.READY:
            entries.append(LockEntry(backport.id, None, LockAction.SKIPPED, decision.reason))
            continue
        pin = _module_sha256(backport)
        if backport.sha256 != pin:
            _set(document["backports"][index], "sha256", pin, after="module")
            entries.append(LockEntry(backport.id, None, LockAction.UPDATED, f"sha256 {pin}"))
        raw_targets = document["backports"][index]["targets"]
        for target, raw in zip(backport.targets, raw_targets, strict=True):
            paths = acknowledged.get((backport.id, str(target.symbol)))
            entries.append(_lock_target(backport.id, target, raw, inspector, label, copies, paths))

    if any(e.action is LockAction.UPDATED for e in entries):
        buffer = io.StringIO()
        yaml.dump(document, buffer)
        # What lock writes must itself be a valid manifest; check before the
        # file is replaced.
        parse_manifest(buffer.getvalue(), path)
        write_text_preserving(path, buffer.getvalue(), style=style)
    return tuple(entries)


def _module_sha256(backport: Backport) -> str:
    try:
        return backport.module_sha256()
    except OSError as exc:
        # The manifest was validated a moment ago, so the module is there:
        # what fails is reading it (its permissions, a failing disk).
        raise UsageError(
            f"cannot read {backport.module}: {exc.strerror or exc}; nothing was changed. Make "
            "it readable, then run the command again"
        ) from None


def _installed_copies() -> Callable[[SymbolRef], Copies | str]:
    # One index per installed tree, shared by all targets: each file is read
    # and parsed once per lock.
    indexes: dict[str, StaticIndex] = {}

    def index_for(ref: SymbolRef) -> StaticIndex:
        tree = installed_tree(ref.module)
        return indexes.setdefault(tree.label, StaticIndex(tree))

    return _copies_in(index_for)


def _copies_in(
    index_for: Callable[[SymbolRef], StaticIndex],
) -> Callable[[SymbolRef], Copies | str]:
    def copies(ref: SymbolRef) -> Copies | str:
        try:
            return find_copies(index_for(ref), ref)
        except CopiesUnknown as exc:
            return str(exc)

    return copies


def _readable(signature: str) -> bool:
    try:
        parse_signature(signature)
    except ValueError:
        return False
    return True


def _records(recorded: str | None, read: str, live: bool) -> bool:
    if recorded is None:
        return True
    if recorded == read:
        return False
    # The manifest keeps the live spelling, which apply compares without a
    # parse; a static read spells annotations as the source text does, so it
    # replaces the record only when the signature really differs.
    return live or call_shape(recorded) != call_shape(read)


def _lock_target(
    backport_id: str,
    target: Target,
    raw: CommentedMap,
    inspector: Inspector,
    label: str,
    copies_of: Callable[[SymbolRef], Copies | str],
    acknowledge: Sequence[str] | None,
) -> LockEntry:
    facts = inspector.inspect(target.symbol)
    symbol = str(target.symbol)
    if facts.presence is not Presence.FOUND or (facts.function is None and not facts.builtin):
        why = facts.message or "no Python source to fingerprint"
        return LockEntry(backport_id, symbol, LockAction.SKIPPED, why)
    changes: list[str] = []
    notes: list[str] = []
    recorded: Any = None
    signature = facts.signature or (facts.function.signature if facts.function else None)
    if signature is not None and not _readable(signature):
        # Written, it would make the whole manifest invalid: every other
        # backport could then never be locked again.
        notes.append(f"no signature recorded: Python cannot read back {signature}")
        signature = None
    # A value target has no signature, only the fingerprint of its assignment.
    if signature is not None and _records(target.signature, signature, inspector.live):
        _set(raw, "signature", DoubleQuotedScalarString(signature), after="replacement")
        changes.append(f"signature {signature}")
    if facts.function is None:
        # C code: its text signature, if it has one, is all there is to record.
        fingerprint = None
        notes.append(
            "no fingerprint: it is C code, with no Python source"
            + ("" if signature else "; no text signature either, so check compares its presence")
        )
    elif facts.function.fingerprint in target.fingerprints:
        fingerprint = facts.function.fingerprint
        recorded = raw.get("recorded_from")
    else:
        fingerprint = facts.function.fingerprint
        _set(raw, "fingerprint", DoubleQuotedScalarString(fingerprint), after="signature")
        changes.append(f"fingerprint {fingerprint}")
    if fingerprint is not None and label not in {str(v) for v in recorded or []}:
        _set(raw, "recorded_from", _versions(recorded, label), after="fingerprint")
        changes.append(f"recorded from {label}")
    # A registry target edits its container in place: every name that holds
    # the container sees the entries, so it has no copies to rebind.
    found = None if target.edits_registry else copies_of(target.symbol)
    if found is None:
        pass
    elif isinstance(found, str):
        # Declared copies stay as they are: an empty answer here is a failed
        # search, not a finding.
        notes.append(f"copies not searched: {found}")
    else:
        held = _held_live(target, facts) if inspector.live else frozenset()
        changes += _record_copies(raw, target, found, held)
        notes += [
            f"`from {star.source} import *` in {star.module} may bind {star.module}:{star.name} "
            f"too ({star.source} computes its __all__): if it does, add it to copies"
            for star in found.star_imports
        ]
    if acknowledge is not None:
        paths = sorted(set(acknowledge))
        after = ("conditional_copies", "copies", "recorded_from")
        if _replace_list(raw, "acknowledged", paths, set(target.acknowledged), after):
            changes.append(f"acknowledged {', '.join(paths) or 'none'}")
    if changes:
        detail = ", ".join(changes)
    elif fingerprint is not None:
        detail = f"matches {fingerprint} ({label})"
    else:
        detail = f"matches {signature} ({label})" if signature else f"found ({label})"
    action = LockAction.UPDATED if changes else LockAction.UNCHANGED
    return LockEntry(backport_id, symbol, action, "; ".join([detail, *notes]))


def _held_live(target: Target, facts: SymbolFacts) -> frozenset[str]:
    # The declared copies that this process shows holding the original. The
    # sources cannot show every copy (`staticmethod(f)` in a class body, an
    # attribute set after the class, a module of another package of the
    # distribution): one declared by hand stays while it holds the original.
    if facts.resolved is None:
        return frozenset()
    original = original_of(facts.resolved)
    held: set[str] = set()
    for site in target.copies:
        try:
            importlib.import_module(site.module)
        except FOREIGN_FAILURES:
            continue
        value = copy_value(site)
        if value is not ABSENT and value is not NOT_LOADED and unwrapped(value) is original:
            held.add(str(site))
    return frozenset(held)


def _record_copies(
    raw: CommentedMap, target: Target, found: Copies, held: frozenset[str]
) -> list[str]:
    # A copy bound only in some environments goes to conditional_copies:
    # apply binds it where it holds the original, and leaves it alone where an
    # import fallback or a condition bound something else.
    # A declared conditional copy is kept whatever this version binds: it
    # may be there for another version of the range, or another environment.
    changes: list[str] = []
    static = {str(site) for site in found.sites}
    kept = {str(c) for c in target.copies if str(c) in held and str(c) not in static}
    declared_maybe = {str(c) for c in target.conditional}
    maybe = sorted({str(site) for site in found.conditional} | declared_maybe)
    sites = sorted((static | kept) - set(maybe))
    declared = {str(c) for c in target.copies if c not in target.conditional}
    if _replace_list(raw, "copies", sites, declared, "recorded_from"):
        changes.append(f"copies {', '.join(sites) or 'none'}")
    declared = {str(c) for c in target.conditional}
    if _replace_list(raw, "conditional_copies", maybe, declared, ("copies", "recorded_from")):
        changes.append(f"conditional copies {', '.join(maybe) or 'none'}")
    return changes


def _replace_list(
    raw: CommentedMap,
    key: str,
    values: list[str],
    declared: set[str],
    after: str | tuple[str, ...],
) -> bool:
    # A list a human ordered differently is left as it is; whether it changed
    # decides if the target is `updated`.
    if set(values) == declared:
        return False
    if values:
        _set(raw, key, CommentedSeq(DoubleQuotedScalarString(v) for v in values), after=after)
    elif key in raw:
        _delete(raw, key)
    return True


def _delete(target: CommentedMap, key: str) -> None:
    # A comment below the last key goes to the key that is last after it.
    keys = list(target)
    token = _take_trailing(target, key) if keys[-1] == key else None
    del target[key]
    if token is not None and len(keys) > 1:
        _give_trailing(target, keys[-2], token)


def acknowledge(
    manifest: str | os.PathLike[str] | Manifest | None = None,
) -> tuple[LockEntry, ...]:
    """``lock --acknowledge``: lock, then record every reference that ``check``
    still reports (after the copies were declared) as reviewed, in each
    target's ``acknowledged:`` list, next to the ones already there."""
    from .checking import check  # noqa: PLC0415 - a live walk, only for this verb

    first = lock(manifest)
    reviewed: dict[tuple[str, str], list[str]] = {}
    loaded = manifest_for(manifest)
    # As lock records every backport whatever switches it off here, the walk
    # covers the opt-in ones too: once with every backport enabled, and once
    # as configured, for a default backport that an opt-in one of the same
    # target takes over when everything is enabled.
    for report in (check(loaded, enable=[ALL]), check(loaded)):
        for backport, result in zip(loaded.backports, report.results, strict=True):
            for target, found in zip(backport.targets, result.targets, strict=False):
                if found.stale_references:
                    key = (backport.id, str(target.symbol))
                    known = reviewed.get(key, target.acknowledged)
                    reviewed[key] = sorted({*known, *found.stale_references})
    if not reviewed:
        return first
    try:
        second = lock(manifest, acknowledge=reviewed)
    except UsageError as exc:
        # The first pass is on disk already: "nothing was changed" holds for
        # this write only.
        raise UsageError(
            f"{exc} (lock's own updates were written before: the manifest is locked, "
            "without the acknowledged references)"
        ) from None
    # One entry per target: the later one says what the second pass added.
    merged = {(e.backport, e.symbol): e for e in first}
    for entry in second:
        if entry.action is LockAction.UPDATED:
            merged[(entry.backport, entry.symbol)] = entry
    return tuple(merged.values())
