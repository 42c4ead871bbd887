"""The CPU, CI-sized run of benchmarks/realize_bench.py: every compiled output
equals eager, and decisions flip where the workload is built to flip them. It
asserts no timings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.torch211

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "realize_bench.py"


def test_cpu_smoke_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "cpu.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--device", "cpu", "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=1500,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = json.loads(out.read_text())["results"]
    assert rows
    for row in rows:
        assert row["correct"], row
        if row["expect_flips"]:
            assert row["patched"]["flips"] > 0, row
        # Unpatched, the installed heuristic is the original: nothing flips.
        assert row["original"]["flips"] == 0, row
        assert row["original"]["kernels"] > 0
        assert row["original"]["bytes"] > 0
