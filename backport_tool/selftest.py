"""Runs a backport's ``selftest()`` hook in a fresh interpreter with the patch
set applied, so that a broken patched path (an AttributeError, a TypeError at
compile time) shows up in ``check --selftest`` rather than in production.

Run by ``run_selftest`` as a child interpreter; exit 0 means passed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

from .loader import SELFTEST_HOOK, apply_now, load_backport_module
from .manifest import load_manifest
from .report import Status

TIMEOUT_S = 900
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent
_CHILD = (
    "import sys; del sys.path[0]; "
    "from backport_tool.selftest import _main; raise SystemExit(_main(sys.argv[1:]))"
)


@dataclass(frozen=True)
class SelftestResult:
    passed: bool
    message: str


def run_selftest(manifest: Path, backport_id: str) -> SelftestResult:
    """Run one backport's self-test in a subprocess and return its verdict."""
    # The child must run this backport_tool, not one that happens to sit in
    # the caller's working directory: `-m` would put the cwd first on
    # sys.path, so the child drops that entry. This package's root goes last
    # on PYTHONPATH (after the user's entries, which may hold a torch build)
    # for a parent that itself imported backport_tool from its cwd.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [*([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []), str(_PACKAGE_ROOT)]
    )
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, str(Path(manifest).resolve()), backport_id],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return SelftestResult(False, f"timed out after {TIMEOUT_S} s")
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    message = lines[-1] if lines else (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return SelftestResult(proc.returncode == 0, message)


def _main(argv: list[str]) -> int:
    manifest_path, backport_id = Path(argv[0]), argv[1]
    manifest = load_manifest(manifest_path)
    backport = manifest.get(backport_id)
    result = apply_now(manifest).by_id(backport_id)
    if result.status is not Status.APPLIED:
        print(f"not applied: {result.status.value} ({result.reason})")
        return 1
    hook = getattr(load_backport_module(backport), SELFTEST_HOOK, None)
    if hook is None:
        print(f"{backport.module_text} defines no {SELFTEST_HOOK}()")
        return 1
    try:
        hook()
    except Exception as exc:
        # The traceback is the useful part for whoever wrote the backport.
        traceback.print_exc()
        print(f"failed: {type(exc).__name__}: {exc}".splitlines()[0])
        return 1
    print("passed")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
