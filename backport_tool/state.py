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
from typing import TYPE_CHECKING, Any, TypeVar

from . import lazy

if TYPE_CHECKING:
    from collections.abc import Callable

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
        # The environment variables exporting changed, as they were before,
        # and what it set them to (None: removed).
        self.environ_before: dict[str, str | None] = {}
        self.environ_set: dict[str, str | None] = {}
        # The user's compile-cache tag before we changed it, and ours.
        self.tag_base: str | None = None
        self.tag_ours: str | None = None
        # Where torch keeps the tag per thread and task: the entry's
        # process-wide layer as it was before we tagged it (a 1-tuple), or
        # None while it holds nothing of ours.
        self.tag_layer: tuple[object] | None = None
        self.logging_configured = False
        self.log_handler: logging.Handler | None = None
        # The level of the backport_tool logger before BACKPORT_TOOL_LOG set it.
        self.log_level_before: int | None = None
        # Set while a backport's after_apply or before_revert hook runs.
        self.in_hook = threading.local()
        # What apply built for a target (a method rebuilt for super(), a
        # staticmethod wrapper): key -> (the inputs it was built from, it).
        self.built: dict[tuple[object, ...], tuple[tuple[object, ...], object]] = {}


STATE = ProcessState()

T = TypeVar("T")


def reset() -> None:
    """Drop every registration and cached object of this process's state and
    start afresh, in place (everyone holds the same object); the caller
    reverts what is applied first."""
    STATE.hooks.cancel()
    withdraw_export()
    _unconfigure_logging()
    STATE.__init__()  # type: ignore[misc]


def built_once(
    key: tuple[object, ...],
    inputs: tuple[object, ...],
    make: Callable[[], T],
    keep: Callable[[T], bool] = lambda _: True,
) -> T:
    """What ``make()`` returned the last time for ``key``, if it was built from
    the very same ``inputs`` (by identity); else ``make()``, kept for the next
    time. An apply after a revert then installs the objects the first one
    did: torch.compile's guards see the same function, and a decorator that
    registers what it wraps runs once."""
    held = STATE.built.get(key)
    if (
        held is not None
        and len(held[0]) == len(inputs)
        and all(a is b for a, b in zip(held[0], inputs, strict=True))
    ):
        return held[1]  # type: ignore[return-value]
    made = make()
    if keep(made):
        STATE.built[key] = (inputs, made)
    return made


def _unconfigure_logging() -> None:
    # What BACKPORT_TOOL_LOG did to the logger goes with the state that
    # remembers it; a handler left behind would print every line once more
    # after the next apply configures a new one.
    logger = logging.getLogger("backport_tool")
    if STATE.log_handler is not None and STATE.log_handler in logger.handlers:
        logger.removeHandler(STATE.log_handler)
        logger.propagate = True
    if STATE.log_level_before is not None:
        logger.setLevel(STATE.log_level_before)


def withdraw_export() -> None:
    """Stop exporting the patch set to child processes: no child started from
    now on applies it at startup.

    The boot directory leaves ``sys.path`` and ``PYTHONPATH``, whoever put it
    there (this process, or the parent it inherited the export from, as under
    ``apply -- CMD``); every other ``PYTHONPATH`` entry stays, those added since
    included. The manifest and switch variables get their earlier values back
    where they still hold what exporting set (inherited ones are inert
    without the boot directory)."""
    boot = str(BOOT_DIR)
    with STATE.lock:
        for name, before in STATE.environ_before.items():
            now = os.environ.get(name)
            if name == "PYTHONPATH":
                if now:
                    kept = without_boot(now.split(os.pathsep))
                    now = os.pathsep.join(kept) if any(kept) else None
            elif now != STATE.environ_set.get(name):
                continue  # changed by the program since: its value stays
            else:
                now = before
            put_environ(name, now)
        STATE.environ_before.clear()
        STATE.environ_set.clear()
        STATE.exported = None
        while boot in sys.path:
            sys.path.remove(boot)


# `apply -- CMD` and apply()'s subprocess reach put this directory on the path:
# it holds only our sitecustomize.
BOOT_DIR = Path(__file__).resolve().parent / "_boot"


def without_boot(entries: list[str]) -> list[str]:
    """``PYTHONPATH`` entries, in order and empty ones included (an empty entry
    is the current directory), less every boot directory of ours: by its last
    two parts, so that another install's counts too."""
    return [e for e in entries if not e or Path(e).parts[-2:] != BOOT_DIR.parts[-2:]]


def put_environ(name: str, value: str | None) -> None:
    """Set ``name`` in ``os.environ``, or remove it for None."""
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
