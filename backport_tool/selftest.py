"""Runs a backport's ``selftest()`` hook in a fresh interpreter with the patch
set applied (see ``selftest_child``), so that a broken patched path (an
AttributeError, a TypeError at compile time) shows up in ``check --selftest``
rather than in production."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .config import Switches, child_environment
from .findings import Verdict

TIMEOUT_S = 900
# What is kept of the child's output: its last lines are the message.
_TAIL_BYTES = 64 << 10
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent
_CHILD = (
    "import sys; del sys.path[0]; "
    "from backport_tool.selftest_child import main; raise SystemExit(main(sys.argv[1:]))"
)


@dataclass(frozen=True)
class SelftestResult:
    verdict: Verdict
    message: str


def run_selftest(
    manifest: Path, backport_id: str, switched: Switches | None = None
) -> SelftestResult:
    """Run one backport's self-test in a subprocess and return its verdict."""
    # The child must run this backport_tool, not one that happens to sit in
    # the caller's working directory: `-m` would put the cwd first on
    # sys.path, so the child drops that entry. This package's root goes last
    # on PYTHONPATH (after the user's entries, which may hold a torch build)
    # for a parent that itself imported backport_tool from its cwd.
    # The child applies from its environment, as production does.
    env = child_environment(manifest, switched or Switches(), os.environ, boot=False)
    env["PYTHONPATH"] = os.pathsep.join(
        [*([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []), str(_PACKAGE_ROOT)]
    )
    with tempfile.TemporaryDirectory(prefix="backport-tool-selftest-") as scratch:
        verdict_file = Path(scratch, "verdict.json")
        output = Path(scratch, "output")
        # Output to a file, not a pipe: a process the self-test left running
        # would hold a pipe open, and the run would wait for it to end.
        with output.open("wb") as sink:
            proc = subprocess.Popen(
                [sys.executable, "-c", _CHILD, str(manifest), backport_id, str(verdict_file)],
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
            try:
                code: int | None = proc.wait(timeout=TIMEOUT_S)
            except subprocess.TimeoutExpired:
                code = None
            finally:
                # The self-test's own child processes go with it.
                _kill_group(proc)
                proc.wait()
        return _verdict(code, _read_verdict(verdict_file), _last_line(output))


def _verdict(code: int | None, written: tuple[bool, str] | None, last: str) -> SelftestResult:
    if code is None:
        return SelftestResult(Verdict.FAILED, f"timed out after {TIMEOUT_S} s: {last}")
    if written is not None:
        passed, message = written
        if not passed:
            return SelftestResult(Verdict.FAILED, message)
        if code == 0:
            return SelftestResult(Verdict.PASSED, message)
        # Passed, then the process failed on its way out (an atexit handler).
        return SelftestResult(Verdict.FAILED, f"{message}; then {_ended(code)}")
    # Ended before the child wrote a verdict (os._exit(), a signal): whatever
    # the exit status, the self-test did not finish.
    return SelftestResult(
        Verdict.FAILED, f"{_ended(code)} before the self-test finished; last output: {last}"
    )


def _ended(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the process was killed by {name}"
    return f"the process exited with status {code}"


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    killpg = getattr(os, "killpg", None)  # POSIX: the session's process group
    with contextlib.suppress(OSError):
        if killpg is not None:
            killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()


def _read_verdict(path: Path) -> tuple[bool, str] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not (isinstance(data, dict) and isinstance(data.get("passed"), bool)):
        return None
    message = data.get("message")
    return data["passed"], message if isinstance(message, str) else ""


def _last_line(path: Path) -> str:
    # The tail only: a self-test may print megabytes. Bytes that are not
    # UTF-8 (a compiler's message in the locale's encoding) are replaced.
    try:
        with path.open("rb") as file:
            file.seek(max(0, file.seek(0, os.SEEK_END) - _TAIL_BYTES))
            text = file.read().decode("utf-8", errors="replace")
    except OSError:
        return "no output"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
