"""The upgrade matrix of the shipped backport over the real torch wheels 2.10.0
to 2.15.0, read statically. scripts/run-tests downloads the wheels (see
scripts/fetch-wheels) and points BACKPORT_TOOL_WHEELS at them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from backport_tool.matrix import build_matrix

WHEELS = os.environ.get("BACKPORT_TOOL_WHEELS")

pytestmark = pytest.mark.skipif(
    not WHEELS, reason="set BACKPORT_TOOL_WHEELS to a directory from scripts/fetch-wheels"
)

DRIFT = "drift: (self, users: int, *, graph_reuse: bool = True) -> bool"

TRUTH = [
    ("2.10.0", "not-applicable", "-", "-", "-", "-", "-", "-"),
    ("2.11.0", "ready", "-", "found", "match", "match", "not-fixed", "17/17"),
    ("2.12.0", "fixed-upstream", "contradicted", "found", "match", "match", "not-fixed", "17/17"),
    *[
        (v, "fixed-upstream", "contradicted", "found", DRIFT, "differs", "not-fixed", "17/17")
        for v in ("2.13.0", "2.14.0", "2.14.1", "2.15.0")
    ],
]


def test_matrix_of_released_wheels_matches_the_truth_table() -> None:
    assert WHEELS is not None
    wheels = sorted(str(p) for p in Path(WHEELS).glob("torch-*.whl"))
    assert len(wheels) == 7, wheels
    matrix = build_matrix(wheels)
    assert matrix.rows("inductor-realize-on-reuse") == TRUTH
