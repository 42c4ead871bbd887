"""``backport-tool lock``: record the signature and source fingerprint of every
target, as found in the installed (or a statically read) torch, into the
manifest, keeping the comments and key order a human wrote."""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.version import Version
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from .errors import UsageError
from .inspection import Inspector, LiveInspector, Presence, StaticInspector
from .loader import resolve_manifest
from .manifest import Manifest, Target, parse_manifest
from .static import StaticIndex, open_tree
from .versions import gate, installed_version


@dataclass(frozen=True)
class LockEntry:
    """What ``lock`` did for one target (or one backport it skipped)."""

    backport: str
    symbol: str | None
    action: str  # "updated", "unchanged", "skipped"
    detail: str


def _round_trip() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap a human's long lines
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def _set(target: CommentedMap, key: str, value: Any, after: str) -> None:
    if key in target:
        target[key] = value
        return
    keys = list(target.keys())
    position = keys.index(after) + 1 if after in keys else len(keys)
    target.insert(position, key, value)


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
) -> tuple[LockEntry, ...]:
    """Write signatures and fingerprints of the installed torch (or of ``source``:
    a wheel, a directory or ``REPO@REV``) into the manifest file.

    Only backports whose ``applies_to`` admits that version are locked. A
    fingerprint that still matches gains the version in ``recorded_from``; one
    that changed replaces the old one. Returns what was done per target.
    """
    loaded = resolve_manifest(manifest)
    inspector: Inspector
    if source is None:
        version = installed_version(loaded.package)
        inspector = LiveInspector()
        if version is None:
            raise UsageError(f"{loaded.package} is not installed; nothing to lock against")
    else:
        tree = open_tree(source)
        found = tree.version(loaded.package)
        if found is None:
            raise UsageError(f"cannot tell which {loaded.package} version {source} holds")
        version = found
        inspector = StaticInspector(StaticIndex(tree))
    label = version.public

    yaml = _round_trip()
    path = loaded.path
    document = yaml.load(path.read_text(encoding="utf-8"))
    entries: list[LockEntry] = []
    for index, backport in enumerate(loaded.backports):
        decision = gate(loaded.package, version, backport.applies_to, None)
        if backport.retired or not decision.eligible:
            why = "retired" if backport.retired else decision.reason
            entries.append(LockEntry(backport.id, None, "skipped", why))
            continue
        pin = backport.module_sha256()
        if backport.sha256 != pin:
            _set(document["backports"][index], "sha256", pin, after="module")
            entries.append(LockEntry(backport.id, None, "updated", f"sha256 {pin}"))
        raw_targets = document["backports"][index]["targets"]
        for target, raw in zip(backport.targets, raw_targets, strict=True):
            entries.append(_lock_target(backport.id, target, raw, inspector, label))

    if any(e.action == "updated" for e in entries):
        buffer = io.StringIO()
        yaml.dump(document, buffer)
        # What lock writes must itself be a valid manifest; check before the
        # file is replaced.
        parse_manifest(buffer.getvalue(), path)
        _write_atomically(path, buffer.getvalue())
    return tuple(entries)


def _lock_target(
    backport_id: str, target: Target, raw: CommentedMap, inspector: Inspector, label: str
) -> LockEntry:
    facts = inspector.inspect(target.symbol)
    symbol = str(target.symbol)
    if facts.presence is not Presence.FOUND or facts.function is None:
        why = facts.message or "no Python source to fingerprint"
        return LockEntry(backport_id, symbol, "skipped", why)
    fingerprint = facts.function.fingerprint
    changes: list[str] = []
    signature = facts.signature or facts.function.signature
    if target.signature != signature:
        _set(raw, "signature", DoubleQuotedScalarString(signature), after="replacement")
        changes.append(f"signature {signature}")
    if fingerprint in target.fingerprints:
        recorded = raw.get("recorded_from")
    else:
        _set(raw, "fingerprint", DoubleQuotedScalarString(fingerprint), after="signature")
        changes.append(f"fingerprint {fingerprint}")
        recorded = None
    if label not in {str(v) for v in recorded or []}:
        _set(raw, "recorded_from", _versions(recorded, label), after="fingerprint")
        changes.append(f"recorded from {label}")
    if not changes:
        return LockEntry(backport_id, symbol, "unchanged", f"matches {fingerprint} ({label})")
    return LockEntry(backport_id, symbol, "updated", ", ".join(changes))


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
