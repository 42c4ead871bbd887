"""Loading a backport module: once per file, from the very bytes that were
hashed against the manifest's ``sha256`` pin."""

from __future__ import annotations

import hashlib
import importlib.util
import marshal
import sys
from types import CodeType, ModuleType

from .cache import entry, read_bytes, write_bytes
from .errors import foreign_code
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
    """Execute and return the backport module of ``backport``: once, or once
    in each of two threads that load it at the same moment (the first one
    stored is the one every caller gets).

    The file is read once; with a ``sha256`` pin those bytes are hashed and
    compiled and executed only if they match, so the pin holds for the code
    that runs (a ``__pycache__`` file never stands in for it).
    """
    with STATE.module_lock:
        cached = STATE.modules.get(backport.module)
    if cached is not None:
        _check_pin(backport, cached[1], ran=True)
        return cached[0]
    source = backport.module.read_bytes()
    digest = hashlib.sha256(source).hexdigest()
    _check_pin(backport, digest)
    # Executed without the lock: its imports may wait for a module that
    # another thread is importing, whose hook may be loading a backport
    # module too. Two threads may then both run it; the first one stored is
    # the one every caller gets.
    module = _execute(backport, _compiled(backport, source, digest))
    with STATE.module_lock:
        cached = STATE.modules.setdefault(backport.module, (module, digest, source))
    sys.modules[_module_name(backport)] = cached[0]
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


def _check_pin(backport: Backport, actual: str, *, ran: bool = False) -> None:
    if backport.sha256 is None or actual == backport.sha256:
        return
    if ran and _file_digest(backport) == backport.sha256:
        # A module runs once per process: the file (and its pin) changed
        # since. Reading the file again would not change what is in force.
        raise PinMismatch(
            f"this process already ran {backport.module_text} with sha256 {actual}, and the "
            f"manifest now pins {backport.sha256}: the file changed since it ran. Start a new "
            "process to run the file the manifest pins"
        )
    raise PinMismatch(
        f"{backport.module_text} has sha256 {actual}, but the manifest pins "
        f"{backport.sha256}; it was modified, so it was not run. If the change is "
        "yours, run `backport-tool lock` to pin the new file"
    )


def _file_digest(backport: Backport) -> str | None:
    # The module file as it is now: only a file that has the pinned bytes
    # changed since this process ran it; any other is refused for what it is.
    try:
        return hashlib.sha256(backport.module.read_bytes()).hexdigest()
    except OSError:
        return None


def _compiled(backport: Backport, source: bytes, digest: str) -> CodeType:
    # Compiled from the bytes just read, never through the import system's
    # loader, which may prefer a cached .pyc with a matching mtime and size.
    # Compiling is most of an apply's own cost, so the code is kept in our
    # cache directory under the sha256 of those very bytes (with the
    # interpreter's bytecode magic and the file name the code carries): a
    # cached entry can only ever stand for the bytes that were hashed.
    filename = str(backport.module)
    path, _ = entry("code", ".bin", importlib.util.MAGIC_NUMBER.hex(), filename, digest)
    raw = read_bytes(path)
    if raw is not None:
        try:
            code = marshal.loads(raw)
        except (EOFError, ValueError, TypeError):
            code = None
        if isinstance(code, CodeType) and code.co_filename == filename:
            return code
    code = compile(source, filename, "exec", dont_inherit=True)
    write_bytes(path, marshal.dumps(code))
    return code


def _module_name(backport: Backport) -> str:
    return "_backport_tool_bp_" + backport.id.replace("-", "_")


def _execute(backport: Backport, code: CodeType) -> ModuleType:
    name = _module_name(backport)
    module = ModuleType(name)
    module.__file__ = str(backport.module)
    module.__spec__ = importlib.util.spec_from_file_location(name, backport.module)
    sys.modules[name] = module
    try:
        with foreign_code():
            exec(code, module.__dict__)
    except BaseException:
        del sys.modules[name]
        raise
    return module
