"""``backport-tool new``: start a backport from the installed target."""

from __future__ import annotations

import io
import os
from pathlib import Path

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from .errors import UsageError
from .inspection import LiveInspector, Presence
from .lock import _round_trip, _write_atomically
from .manifest import _ID_RE, SymbolRef, parse_manifest
from .versions import installed_version

SKELETON = '''\
"""{summary}

Backport of <upstream PR> for {package} {series}. It replaces
``{target}``.

Until this module is implemented, its self-test fails, so
``backport-tool check --selftest`` reports it.
"""

from __future__ import annotations


def {name}{signature}:
    """The fixed {qualname}."""
    # Import torch inside functions: backport-tool loads this module (for the
    # probe) next to any torch version, or none.
    raise NotImplementedError("{id}: write the fixed {qualname} here")


def upstream_probe(symbol: str, source: str) -> tuple[bool | None, str]:
    """Does this original already contain the fix? (True, False or None, and why.)"""
    return None, "the probe of {id} is not written yet"


def selftest() -> None:
    """Exercise the patched code for real; raise on failure."""
    raise AssertionError("{id}: the self-test is not written yet")
'''


def scaffold(
    manifest_path: str | os.PathLike[str],
    backport_id: str,
    target: str,
    package: str | None = None,
) -> list[Path]:
    """Write a backport module skeleton and its manifest entry; return the paths written."""
    if not _ID_RE.match(backport_id):
        raise UsageError(f"id {backport_id!r} must match [a-z0-9][a-z0-9-]*")
    try:
        ref = SymbolRef.parse(target)
    except ValueError as exc:
        raise UsageError(f"--target {target!r} is not module:qualname ({exc})") from None
    facts = LiveInspector().inspect(ref)
    if facts.presence is not Presence.FOUND or facts.function is None:
        raise UsageError(f"cannot read the installed {target}: {facts.message or 'no source'}")
    path = Path(manifest_path)
    yaml = _round_trip()
    if path.exists():
        document = yaml.load(path.read_text(encoding="utf-8"))
        package = str(document.get("package"))
    else:
        # The distribution that gates the patch set; torch's module and
        # distribution names agree, other packages may pass --package.
        package = package or ref.module.split(".")[0]
        document = CommentedMap([("version", 1), ("package", package), ("backports", [])])
    version = installed_version(package)
    if version is None:
        raise UsageError(f"{package} is not installed; `new` reads the target from it")
    major, minor = (*version.release, 0)[:2]
    series = f"{major}.{minor}"
    if any(entry.get("id") == backport_id for entry in document.get("backports") or []):
        raise UsageError(f"{path} already has a backport {backport_id!r}")
    module_rel = f"backports/{backport_id.replace('-', '_')}.py"
    module_path = path.parent / module_rel
    if module_path.exists():
        raise UsageError(f"{module_path} already exists; choose another id")
    name = ref.qualname.rsplit(".", 1)[-1]
    signature = facts.signature or facts.function.signature
    summary = f"TODO: one line on what {backport_id} fixes"
    targets = CommentedSeq(
        [
            CommentedMap(
                [
                    ("symbol", DoubleQuotedScalarString(target)),
                    ("replacement", name),
                    ("signature", DoubleQuotedScalarString(signature)),
                    ("fingerprint", DoubleQuotedScalarString(facts.function.fingerprint)),
                    ("recorded_from", CommentedSeq([DoubleQuotedScalarString(version.public)])),
                ]
            )
        ]
    )
    targets[0]["recorded_from"].fa.set_flow_style()
    entry = CommentedMap(
        [
            ("id", backport_id),
            ("summary", summary),
            ("applies_to", DoubleQuotedScalarString(f">={series}.0,<{major}.{minor + 1}")),
            ("module", module_rel),
            ("targets", targets),
        ]
    )
    if document.get("backports") is None:
        document["backports"] = []
    document["backports"].append(entry)
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    module_path.parent.mkdir(parents=True, exist_ok=True)
    module_path.write_text(
        SKELETON.format(
            summary=summary.replace("TODO: one line on", "Backport:"),
            package=package,
            series=series,
            target=target,
            name=name,
            signature=signature,
            qualname=ref.qualname,
            id=backport_id,
        ),
        encoding="utf-8",
    )
    try:
        # Validate the result as a whole, with the module now in place.
        parse_manifest(buffer.getvalue(), path)
        _write_atomically(path, buffer.getvalue())
    except BaseException:
        module_path.unlink(missing_ok=True)
        raise
    return [path, module_path]
