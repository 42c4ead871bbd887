"""`backport-tool apply -- CMD` on synthetic patch sets: the patch set in every
Python process of CMD, the user's own sitecustomize kept, no recursion, exit
codes and signals passed through."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import PatchSet, run_backport_tool

REPORT = (
    "import json, backport_tool, {mod}\n"
    "r = backport_tool.current_report()\n"
    "print(json.dumps([{mod}.Widget().compute(1), r.by_id('fix').status.value]))\n"
)


def run_cli(
    patchset: PatchSet, *args: str, pythonpath: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_backport_tool(*args, paths=[*(pythonpath or []), patchset.site])


def apply_python(
    patchset: PatchSet, manifest: str, *python_args: str, pythonpath: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``backport-tool apply --manifest MANIFEST -- python PYTHON_ARGS``."""
    command = ("apply", "--manifest", manifest, "--", sys.executable, *python_args)
    return run_cli(patchset, *command, pythonpath=pythonpath)


@pytest.fixture
def manifest(patchset: PatchSet) -> str:
    patchset.add("fix", "Widget.compute")
    return str(patchset.write())


def test_the_program_runs_with_the_patch_set_applied(patchset: PatchSet, manifest: str) -> None:
    code = REPORT.format(mod=patchset.module)
    proc = apply_python(patchset, manifest, "-c", code)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [1001, "applied"]


def test_spawned_workers_and_subprocesses_get_it_too(
    patchset: PatchSet, manifest: str, tmp_path: Path
) -> None:
    program = tmp_path / "prog.py"
    program.write_text(
        textwrap.dedent(f"""\
        import json, multiprocessing, subprocess, sys

        def worker(_):
            import {patchset.module}
            return {patchset.module}.Widget().compute(1)

        if __name__ == "__main__":
            with multiprocessing.get_context("spawn").Pool(2) as pool:
                spawned = pool.map(worker, range(2))
            code = "import {patchset.module} as m; print(m.Widget().compute(1))"
            child = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True,
            ).stdout.strip()
            print(json.dumps([spawned, int(child)]))
        """)
    )
    proc = apply_python(patchset, manifest, str(program))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [[1001, 1001], 1001]


def test_the_users_own_sitecustomize_still_runs(
    patchset: PatchSet, manifest: str, tmp_path: Path
) -> None:
    own = tmp_path / "own"
    own.mkdir()
    (own / "sitecustomize.py").write_text("MARK = 'users own sitecustomize'\n")
    code = REPORT.format(mod=patchset.module) + "import sitecustomize; print(sitecustomize.MARK)\n"
    proc = apply_python(patchset, manifest, "-c", code, pythonpath=[str(own)])
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert json.loads(lines[0]) == [1001, "applied"]
    assert lines[1] == "users own sitecustomize"


def test_nesting_does_not_recurse_or_apply_twice(patchset: PatchSet, manifest: str) -> None:
    code = (
        REPORT.format(mod=patchset.module)
        + "import os; print(os.environ['PYTHONPATH'].count('_boot'))\n"
    )
    inner = ["-m", "backport_tool", "apply", "--manifest", manifest, "--", sys.executable, "-c"]
    proc = apply_python(patchset, manifest, *inner, code)
    assert proc.returncode == 0, proc.stderr
    first, count = proc.stdout.splitlines()
    assert json.loads(first) == [1001, "applied"]
    assert count == "1"


def test_exit_code_and_signals_pass_through(patchset: PatchSet, manifest: str) -> None:
    exits = apply_python(patchset, manifest, "-c", "raise SystemExit(7)")
    assert exits.returncode == 7
    killed = apply_python(
        patchset, manifest, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"
    )
    assert killed.returncode == -signal.SIGTERM


def test_bad_manifest_or_command(patchset: PatchSet, tmp_path: Path) -> None:
    missing = run_cli(patchset, "apply", "--manifest", str(tmp_path / "no.yaml"), "--", "true")
    assert missing.returncode == 2
    assert missing.stderr == (
        f"backport-tool: error: invalid manifest: {tmp_path / 'no.yaml'}: file not found\n"
    )
    patchset.add("fix", "Widget.compute")
    nocmd = run_cli(patchset, "apply", "--manifest", str(patchset.write()), "--", "no-such-cmd-x")
    assert (nocmd.returncode, nocmd.stderr) == (
        2,
        "backport-tool: error: command not found: no-such-cmd-x\n",
    )
