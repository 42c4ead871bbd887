"""The standards the code is held to: ruff clean and mypy strict."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        found = shutil.which(name)
        if found is None:
            pytest.skip(f"{name} is not installed (pip install -e '.[lint]')")
        return found
    return str(path)


@pytest.mark.parametrize(
    "args",
    [
        ["check", "backport_tool", "backports", "tests", "benchmarks"],
        ["format", "--check", "backport_tool", "backports", "tests", "benchmarks"],
    ],
)
def test_ruff(args: list[str]) -> None:
    proc = subprocess.run([tool("ruff"), *args], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict() -> None:
    proc = subprocess.run(
        # The [tool.mypy] section of pyproject.toml selects the files.
        [tool("mypy"), "--no-incremental"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
