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
        stats = row["stats"]
        # Unpatched, the installed heuristic is the original: nothing flips.
        assert stats["original"]["flips"] == 0, row
        assert stats["original"]["kernels"] > 0
        assert stats["original"]["bytes"] > 0
        for model in ("faithful", "refined"):
            # The flips a model makes when applied are those it predicts.
            assert stats[model]["flips"] == stats[model]["models"][model]["flips"], row
            if row["expect_flips"] is not None:
                assert (stats[model]["flips"] > 0) == (model in row["expect_flips"]), (model, row)
    held_out = {row["workload"] for row in rows if row["held_out"]}
    assert len(held_out) >= 3, held_out

    def flipped(workload: str, model: str) -> set[str]:
        return {
            entry.rsplit(" -> ", 1)[1]
            for row in rows
            if row["workload"] == workload
            for entry in row["stats"][model]["flipped"]
        }

    # The refined model keeps the byte model's wins: it inlines the broadcast
    # value and realizes a value reduced over both axes...
    assert flipped("broadcast-5-reads", "refined") == {"inline"}
    assert flipped("multiread-cross-axes", "refined") == {"realize"}
    # ...and not its losses: the near-tie of the fp32 residual norm and the
    # positions cast of RoPE, which the faithful port realizes.
    for workload in ("residual-rmsnorm", "rope-qk"):
        assert flipped(workload, "faithful") == {"realize"}
        assert flipped(workload, "refined") == set()
