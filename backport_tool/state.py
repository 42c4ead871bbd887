"""Everything apply changes in a process, in one object: the patch registry,
the backport-module cache, the import hooks, the compile-cache tag, the parsed
manifests, the backports ``enabled()`` verified, the latest report, what was
exported to child processes, and whether logging was configured. The API owns
it; tests reset it with the ``backport_state`` fixture of the pytest plugin.
Stdlib only."""

from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from . import lazy

if TYPE_CHECKING:
    from .report import Report


class ProcessState:
    """The one process-wide state of backport-tool."""

    def __init__(self) -> None:
        # One lock for all patch state: apply and revert of different backports
        # may touch the same class, and a half-done apply must never be seen.
        self.patch_lock = threading.RLock()
        # backport id -> patcher.Entry: what is in force, and how to undo it.
        self.applied: dict[str, Any] = {}
        # symbol -> the original an applied backport replaced there (targets and
        # declared copies): original()'s snapshot, replaced whole under
        # patch_lock and read without it.
        self.originals: dict[str, object] = {}
        # enabled(): (backport id, manifest as given) -> what the first scope
        # verified and built (scoped.Prepared), or why the version or a switch
        # refuses it (scoped.Refused), so that later scopes only patch.
        self.scoped: dict[tuple[object, ...], Any] = {}
        # Backport modules run once per file, so that apply after revert
        # installs the very same replacement objects: path -> (module, digest,
        # the source bytes that were hashed and ran).
        self.modules: dict[Path, tuple[ModuleType, str, bytes]] = {}
        self.module_lock = threading.RLock()
        self.hooks = lazy.Hooks()
        # Each manifest is parsed once: (path, real file, sha256) -> Manifest.
        self.manifests: dict[tuple[Path, Path, str], Any] = {}
        self.lock = threading.RLock()
        self.latest: Report | None = None
        # What this process exported to its children (manifest, switches); a
        # later apply() of another manifest never switches it.
        self.exported: tuple[str, ...] | None = None
        # The environment variables exporting changed, as they were before.
        self.environ_before: dict[str, str | None] = {}
        # The user's compile-cache tag before we changed it, and ours.
        self.tag_base: str | None = None
        self.tag_ours: str | None = None
        self.logging_configured = False
        self.log_handler: logging.Handler | None = None
        # Set while a backport's after_apply or before_revert hook runs.
        self.in_hook = threading.local()


STATE = ProcessState()


def reset() -> None:
    """Drop every registration and cached object of this process's state and
    start afresh, in place (everyone holds the same object); the caller
    reverts what is applied first."""
    STATE.hooks.cancel()
    withdraw_export()
    STATE.__init__()  # type: ignore[misc]


def withdraw_export() -> None:
    """Stop exporting the patch set to child processes: the environment
    variables and ``sys.path`` as they were before it was exported."""
    with STATE.lock:
        for name, value in STATE.environ_before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        STATE.environ_before.clear()
        STATE.exported = None
    boot = str(Path(__file__).resolve().parent / "_boot")
    while boot in sys.path:
        sys.path.remove(boot)
