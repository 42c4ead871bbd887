"""Smoke runs of benchmarks/startup.py and benchmarks/apply_cost.py with the
smallest round counts: they run to the end and write JSON of the documented
shape (docs/startup.md). No timing is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.torch211

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
QUARTILES = ("median", "q1", "q3", "n", "samples")


def _run(script: str, out: Path, *args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    # 1 is a budget over on a run this short; anything else is a failure.
    assert proc.returncode in (0, 1), proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def _triple(value: Any) -> None:
    q1, median, q3 = value
    assert 0 < q1 <= median <= q3


def _stats(value: Any, count: int) -> None:
    assert set(value) == set(QUARTILES)
    assert value["n"] == count == len(value["samples"])
    assert value["q1"] <= value["median"] <= value["q3"]


def test_startup_benchmark_writes_its_json(tmp_path: Path) -> None:
    result = _run(
        "startup.py",
        tmp_path / "startup.json",
        *("--rounds", "2", "--eager-rounds", "0", "--warmup", "0"),
    )
    assert result["rounds"] == 2
    assert result["eager_rounds"] == 0
    names = ["import torch", "lazy apply()"]
    assert list(result["commands"]) == names
    for name in names:
        _triple(result["seconds"][name])
        _triple(result["cpu_seconds"][name])
        assert len(result["raw"][name]) == 2
        assert set(result["raw"][name][0]) == {"wall", "cpu", "torch", "rest"}
    for key in ("ratios", "cpu_ratios", "in_process_ratios"):
        assert list(result[key]) == ["lazy apply()"]
        _triple(result[key]["lazy apply()"])
    assert set(result["in_process_ms"]["lazy apply()"]) == {"import torch", "rest", "outside"}
    budget = result["budget"]
    assert budget["limit"] == 1.01
    assert budget["ok"] == (budget["lazy_median_ratio"] <= 1.01)


def test_apply_cost_benchmark_writes_its_json(tmp_path: Path) -> None:
    result = _run(
        "apply_cost.py",
        tmp_path / "apply.json",
        *("--targets", "2", "--rounds", "1", "--cold-rounds", "1", "--lazy-reps", "2"),
        *("--walk-rounds", "1", "--warmup", "0"),
    )
    assert result["settings"]["parts"] == ["apply", "walk"]
    assert result["synthetic"]["targets"] == 2
    assert result["synthetic"]["copies"] >= 2
    applied = result["apply"]
    for stats in applied["import_seconds"].values():
        _stats(stats, 1)
    assert list(applied["sets"]) == [
        "bundled",
        "bundled, faithful enabled",
        "synthetic, 2 targets",
    ]
    # Manifests are named without a directory of this machine.
    named = [result["synthetic"]["manifest"]] + [e["manifest"] for e in applied["sets"].values()]
    assert [not Path(name).is_absolute() and name.endswith("manifest.yaml") for name in named] == [
        True
    ] * 4
    for entry in applied["sets"].values():
        assert entry["declared_sites"] == entry["targets"] + entry["declared_copies"]
        assert entry["bound_sites"] == entry["declared_sites"]
        assert entry["first_in_process_ms"] > 0
        for key in (
            "cold_fresh_ms",
            "warm_ms",
            "warm_ms_per_site",
            "warm_ratio_to_import_inductor",
            "warm_ratio_per_site_to_import_inductor",
        ):
            _stats(entry[key], 1)
        assert entry["budget"]["limit_ms_per_site"] == 2.0
    assert list(applied["references"]) == [
        "apply(eager=True), every backport disabled",
        "hand-written patch: version gate and setattr, no checks",
        "bundled, right after an identical untimed apply (no gc.collect())",
    ]
    for reference in applied["references"].values():
        _stats(reference["ms"], 1)
        _stats(reference["ratio_to_import_inductor"], 1)
    lazy = applied["lazy_warm_apply"]
    # The bundled default, pending until torch._inductor is imported.
    assert lazy["status"]["inductor-realize-on-reuse-refined"] == "pending"
    assert lazy["status"]["inductor-realize-on-reuse"] == "disabled"  # opt-in
    _stats(lazy["ms"], 2)
    _stats(lazy["first_in_process_ms"], 1)
    assert lazy["budget"]["limit_ms"] == 5.0
    walk = result["walk"]
    assert walk["searches"] == 2
    assert list(walk["ms"]) == [
        "1 search",
        "2 searches, one walk",
        "2 searches, one walk each (sum)",
        "check() bundled",
        "check() synthetic",
    ]
    for stats in walk["ms"].values():
        _stats(stats, 1)
    assert walk["check_status"]["check() bundled"] == {
        "inductor-realize-on-reuse": "disabled",
        "inductor-realize-on-reuse-refined": "ready",
    }
