"""The tensor/sequence-parallel correctness harness (benchmarks/tp_correctness.py)
on 2 CPU ranks with gloo, CI-sized, on the real torch 2.11."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_two_ranks

pytestmark = pytest.mark.torch211

HARNESS = Path(__file__).resolve().parent.parent / "benchmarks" / "tp_correctness.py"


def test_tp_and_sp_match_the_single_device_reference_with_and_without(tmp_path: Path) -> None:
    out = tmp_path / "tp.json"
    proc = run_two_ranks(HARNESS, "--out", str(out), cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    report = json.loads(out.read_text())
    assert (report["world_size"], report["backend"], report["failed_on_any_rank"]) == (2, "gloo", 0)
    results = {(r["mode"], r["dtype"], r["backport"]): r for r in report["results"]}
    assert set(results) == {
        (mode, dtype, backport)
        for mode in ("tp", "sp")
        for dtype in ("float32", "bfloat16")
        for backport in ("on", "off")
    }
    for key, result in results.items():
        assert result["passed"], key
        assert result["error"] <= result["tolerance"], key
        assert result["decisions"] > 0, key
    for mode in ("tp", "sp"):
        on, off = results[(mode, "float32", "on")], results[(mode, "float32", "off")]
        # The backport really decides differently here (fp32 residual reused by
        # RMSNorm and the next residual add), and the generated code differs.
        assert on["flips"] > 0, on
        assert on["flips_to_realize"] > 0, on
        assert on["kernels"] != off["kernels"], (on, off)
        # Among them the residual add on the collective's output.
        assert any(f.startswith("Pointwise(add") for f in on["flipped"]), on["flipped"]
        # Realizing or inlining an fp32 value is the same arithmetic.
        assert on["error_vs_other"] == 0.0, on
