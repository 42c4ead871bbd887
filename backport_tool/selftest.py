"""Runs a backport's ``selftest()`` hook in a fresh interpreter with the patch
set applied (see ``selftest_child``), so that a broken patched path (an
AttributeError, a TypeError at compile time) shows up in ``check --selftest``
rather than in production."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .config import Switches, child_environment
from .findings import Verdict

TIMEOUT_S = 900
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
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, str(manifest), backport_id],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return SelftestResult(Verdict.FAILED, f"timed out after {TIMEOUT_S} s")
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    message = lines[-1] if lines else (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return SelftestResult(Verdict.PASSED if proc.returncode == 0 else Verdict.FAILED, message)
