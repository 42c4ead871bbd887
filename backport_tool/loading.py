"""Loading a backport module: once per file, from the very bytes that were
hashed against the manifest's ``sha256`` pin."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from types import ModuleType

from .manifest import Backport
from .state import STATE

# The optional hooks a backport module may define.
PROBE_HOOK = "upstream_probe"
SELFTEST_HOOK = "selftest"
AFTER_APPLY_HOOK = "after_apply"
BEFORE_REVERT_HOOK = "before_revert"


class PinMismatch(Exception):
    """The backport module's bytes are not the ones the manifest pins."""


def load_backport_module(backport: Backport) -> ModuleType:
    """Execute (once) and return the backport module of ``backport``.

    The file is read once; with a ``sha256`` pin those bytes are hashed and
    compiled and executed only if they match, so the pin holds for the code
    that runs (a ``__pycache__`` file never stands in for it).
    """
    with STATE.module_lock:
        cached = STATE.modules.get(backport.module)
        if cached is None:
            source = backport.module.read_bytes()
            digest = hashlib.sha256(source).hexdigest()
            _check_pin(backport, digest)
            cached = STATE.modules[backport.module] = (_execute(backport, source), digest, source)
        else:
            _check_pin(backport, cached[1])
        return cached[0]


def module_digest(backport: Backport) -> str | None:
    """The sha256 of the bytes that ran for ``backport``'s module, once loaded."""
    with STATE.module_lock:
        cached = STATE.modules.get(backport.module)
        return cached[1] if cached else None


def module_source(backport: Backport) -> bytes | None:
    """The source bytes that were hashed and ran for ``backport``'s module: what a
    replacement is rebuilt from, never the file as it is now."""
    with STATE.module_lock:
        cached = STATE.modules.get(backport.module)
        return cached[2] if cached else None


def _check_pin(backport: Backport, actual: str) -> None:
    if backport.sha256 is not None and actual != backport.sha256:
        raise PinMismatch(
            f"{backport.module_text} has sha256 {actual}, but the manifest pins "
            f"{backport.sha256}; it was modified, so it was not run. If the change is "
            "yours, run `backport-tool lock` to pin the new file"
        )


def _execute(backport: Backport, source: bytes) -> ModuleType:
    name = "_backport_tool_bp_" + backport.id.replace("-", "_")
    # Compiled from the bytes just read, never through the import system's
    # loader, which may prefer a cached .pyc with a matching mtime and size.
    code = compile(source, str(backport.module), "exec", dont_inherit=True)
    module = ModuleType(name)
    module.__file__ = str(backport.module)
    module.__spec__ = importlib.util.spec_from_file_location(name, backport.module)
    sys.modules[name] = module
    try:
        exec(code, module.__dict__)
    except BaseException:
        del sys.modules[name]
        raise
    return module
