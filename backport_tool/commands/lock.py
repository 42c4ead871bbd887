from __future__ import annotations

from pathlib import Path

from ..config import default_manifest_path
from ..errors import UsageError
from ..files import refuse_installed
from ..manifest_file import resolved_spec
from . import _output


def run(
    manifest: str | None,
    *,
    source: str | None,
    as_json: bool,
    quiet: bool,
    acknowledging: bool = False,
) -> int:
    if acknowledging and source is not None:
        raise UsageError(
            "--acknowledge records the references check finds in this process; it cannot "
            "read a --source"
        )
    # Imported here: the CLI loads every command module, and lock's ruamel.yaml
    # must not be needed by apply or check.
    from ..locking import LockAction, acknowledge, lock  # noqa: PLC0415

    # Before the slow part: lock rewrites the manifest at the end.
    path = Path(manifest) if manifest is not None else default_manifest_path()
    refuse_installed(resolved_spec(path))
    entries = acknowledge(manifest) if acknowledging else lock(manifest, source=source)
    # Quiet keeps what changed the manifest.
    shown = [e for e in entries if e.action is LockAction.UPDATED or not quiet]
    if as_json:
        print(
            _output.dump("lock", {"manifest": str(path), "entries": [e.to_dict() for e in shown]})
        )
        return 0
    for entry in shown:
        where = f"{entry.backport} {entry.symbol}" if entry.symbol else entry.backport
        print(f"{entry.action!s:<9}  {where}: {entry.detail}")
    return 0
