"""Helpers for the real-torch tests of the realize-on-reuse backport. The
decision recorder is the benchmark's (benchmarks/realize_bench.py), so tests and
benchmark count flips the same way."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from realize_bench import Decision, no_compile_caches, record_decisions

__all__ = ["Decision", "four_read_pointwise_three_users", "fresh_compile", "record_decisions"]


def fresh_compile(fn: Callable[..., Any], *args: torch.Tensor) -> Any:
    """Compile and run ``fn`` with no cache hit, so that lowering really runs."""
    torch._dynamo.reset()
    with no_compile_caches():
        return torch.compile(fn, fullgraph=True)(*args)


def four_read_pointwise_three_users(
    a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # x reads 4 inputs (not > realize_reads_threshold=4) and has 3 pointwise
    # users: 2.11 inlines it, the cost model realizes it.
    x = a + b + c + d
    return x * 2, x - 1, x.sin()
