from __future__ import annotations

import errno
import os
import shutil
import signal
from pathlib import Path
from typing import Any, NoReturn

from ..api import apply, installed, manifest_for
from ..config import child_environment, switches
from ..errors import UsageError
from ..manifest import Manifest
from . import _output


def run(
    manifest: str | None,
    cmd: list[str],
    *,
    enable: list[str],
    disable: list[str],
    as_json: bool,
    quiet: bool,
) -> int:
    # Before anything is applied: a bad manifest or switch is exit 2, not a
    # logged error (the library never raises for those at startup).
    loaded = manifest_for(manifest)
    _output.checked_switches(loaded, enable, disable)
    # And broken metadata of the installed package, which apply() would log.
    installed(loaded.package, switches(enable, disable))
    command = list(cmd)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        if cmd:
            raise UsageError("nothing to run after '--'; usage: backport-tool apply -- CMD [ARGS]")
        # This process exits right after; children are not this command's job.
        report = apply(loaded, eager=True, subprocesses=False, enable=enable, disable=disable)
        fmt = _output.Format.JSON if as_json else _output.Format.TEXT
        return _output.emit("apply", report, fmt, quiet=quiet)
    if as_json or quiet:
        raise UsageError("--json and --quiet report on this process; with -- CMD, CMD reports")
    if not command[0]:
        # What `apply -- "$PY" x.py` gives with PY unset; exec refuses an
        # empty name with a ValueError, not the OSError of a missing command.
        raise UsageError(
            "command not found: '' (an empty name: is a variable in the command unset?)"
        )
    _exec(loaded, command, enable, disable)


def _exec(
    manifest: Manifest, command: list[str], enable: list[str], disable: list[str]
) -> NoReturn:
    # CMD's processes apply at startup from the environment: one boot
    # directory, ours, first (a nested `apply --` must not stack a second).
    env = child_environment(manifest.location, switches(enable, disable), os.environ, boot=True)
    # Python ignores SIGPIPE and SIGXFSZ, and an ignored signal stays ignored
    # across exec: CMD gets them back as the shell would give them (as
    # subprocess's restore_signals does).
    restored = _default_signals()
    try:
        # exec, not a child: the program's exit status and signals are its own.
        os.execvpe(command[0], command, env)
    except OSError as exc:
        for number, handler in restored:
            signal.signal(number, handler)
        raise _cannot_execute(command[0], exc, env) from None


def _default_signals() -> list[tuple[int, Any]]:
    restored = []
    for name in ("SIGPIPE", "SIGXFSZ"):
        number = getattr(signal, name, None)
        if number is not None and signal.getsignal(number) == signal.SIG_IGN:
            restored.append((number, signal.signal(number, signal.SIG_DFL)))
    return restored


def _cannot_execute(name: str, exc: OSError, env: dict[str, str]) -> UsageError:
    found = name if os.sep in name else shutil.which(name, path=env.get("PATH"))
    path = Path(found) if found else None
    if path is not None and path.is_dir():
        return UsageError(f"cannot execute {name}: it is a directory")
    if isinstance(exc, FileNotFoundError):
        if path is None or not path.exists():
            return UsageError(f"command not found: {name}")
        # The file is there, so what is missing is the interpreter its '#!'
        # line names.
        interpreter = _shebang(path)
        if interpreter:
            return UsageError(
                f"cannot execute {name}: its interpreter {interpreter} (from its '#!' line) "
                "was not found; fix the '#!' line or install that interpreter"
            )
        return UsageError(f"cannot execute {name}: {exc.strerror}")
    if exc.errno == errno.ENOEXEC:
        return UsageError(
            f"cannot execute {name}: not a program the system can run; a script needs a "
            "'#!' first line naming its interpreter (or run it as: python SCRIPT)"
        )
    if isinstance(exc, PermissionError):
        return UsageError(f"cannot execute {name}: permission denied")
    return UsageError(f"cannot execute {name}: {exc.strerror}")


def _shebang(path: Path) -> str | None:
    try:
        with path.open("rb") as handle:
            first = handle.readline(256)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode("utf-8", errors="replace").split()
    return words[0] if words else None
