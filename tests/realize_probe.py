"""Counts realize-on-reuse decisions of a real torch.compile, as the original
2.11 heuristic and the installed one (patched or not) would make them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch._inductor import config as inductor_config
from torch._inductor.ir import StorageBox

ORIGINAL = StorageBox.__dict__["should_realize_on_reuse"]


@dataclass(frozen=True)
class Decision:
    users: int
    kind: str
    original: bool
    installed: bool


@contextmanager
def record_decisions(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Decision]]:
    # mark_reuse is where every lowering path asks the heuristic and acts on
    # it; wrapping it (not the heuristic) leaves the patched target alone.
    decisions: list[Decision] = []
    real_mark_reuse = StorageBox.mark_reuse

    def mark_reuse(self: StorageBox, users: int) -> None:
        decisions.append(
            Decision(
                users,
                type(self.data).__name__,
                ORIGINAL(self, users),
                StorageBox.should_realize_on_reuse(self, users),
            )
        )
        return real_mark_reuse(self, users)

    with monkeypatch.context() as m:
        m.setattr(StorageBox, "mark_reuse", mark_reuse)
        yield decisions


def fresh_compile(fn: Callable[..., Any], *args: torch.Tensor) -> Any:
    """Compile and run ``fn`` with no cache hit, so that lowering really runs."""
    torch._dynamo.reset()
    with (
        inductor_config.patch(fx_graph_cache=False, autotune_local_cache=False),
        torch._functorch.config.patch(enable_autograd_cache=False),
    ):
        return torch.compile(fn, fullgraph=True)(*args)


def four_read_pointwise_three_users(
    a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # x reads 4 inputs (not > realize_reads_threshold=4) and has 3 pointwise
    # users: 2.11 inlines it, the cost model realizes it.
    x = a + b + c + d
    return x * 2, x - 1, x.sin()
