"""Inductor's realize-on-reuse memory-traffic cost model, for torch 2.11.

Backport of the upstream proposal pytorch/pytorch#176994. It replaces
``torch._inductor.ir.StorageBox.should_realize_on_reuse``, which decides whether
a Pointwise/Reduction buffer used by several users is materialized once or
recomputed inline in every user.

Upstream history: the change landed on trunk and was cherry-picked to
release/2.12 (#181441), then reverted there (#182184, "caused failures on vllm
CI/CD") and backed out of trunk (#182324). No released wheel from 2.12 to 2.15
contains it. vLLM carried the same backport (vllm-project/vllm#42686) and
reverted it a day later (#42913) after AsyncTP and Sequence-Parallel
correctness failures on 2 GPUs.

The model, per buffer with ``users`` users:

* inline costs about ``total_read_bytes * users``;
* realizing costs ``total_read_bytes + output_bytes * (1 + users)``
  (read the inputs once, write the output, every user reads it);
* so realize when ``total_read_bytes * (users - 1) >= output_bytes * (1 + users)``.

Before the model, torch 2.11's CPU heavy-op rule (exp/sigmoid) and the
large-inner-fn rule are kept. When a size is unknown (unbacked symbols), it
falls back to 2.11's ``num_reads() > config.realize_reads_threshold``.

Every torch symbol used here is listed in the manifest's ``requires`` and
verified before this module is loaded. torch is imported inside the functions,
so that backport-tool can load this module for its probe while reading another
torch version's sources, or with no torch installed at all.

Hooks for backport-tool:

* ``upstream_probe(symbol, source)`` reads the source of an original
  ``should_realize_on_reuse`` and says whether it already has the cost model.
* ``selftest()`` compiles a tiny graph on CPU with the patch in force and checks
  that the patched decision is taken and the result equals eager.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch._inductor.ir import StorageBox

# Same list as torch 2.11's heuristic: recomputing these on CPU is expensive
# enough that reuse always pays for a realized buffer.
_CPU_HEAVY_OPS = ("exp", "sigmoid")


def traffic_bytes(box: StorageBox) -> tuple[int, int] | None:
    """Return ``(total_read_bytes, output_bytes)`` of ``box``, or None if unknown."""
    from torch._inductor.virtualized import V
    from torch.fx.experimental.symbolic_shapes import free_unbacked_symbols

    data = box.data
    numel = data.get_numel()
    if free_unbacked_symbols(numel):
        return None
    reads = box.get_reads()
    if any(dep.has_unbacked_symbols() for dep in reads):
        return None
    total_read_bytes = sum(V.graph.get_dep_size_hint(dep) for dep in reads)
    output_bytes = V.graph.sizevars.optimization_hint(numel, fallback=0) * data.dtype.itemsize
    return total_read_bytes, output_bytes


def should_realize_on_reuse(self: StorageBox, users: int) -> bool:
    """A heuristic to decide if we should realize a tensor that is used multiple times."""
    from torch._inductor import config
    from torch._inductor.ir import Pointwise, Reduction, is_cpu

    if users > 1 and isinstance(self.data, (Pointwise, Reduction)):
        if is_cpu(self.data):
            opcount = self.data.inner_fn_opcount()
            if any(op in opcount.used_ops for op in _CPU_HEAVY_OPS):
                return True
        if self.has_large_inner_fn():
            return True
        traffic = traffic_bytes(self)
        if traffic is None:
            return self.num_reads() > config.realize_reads_threshold
        total_read_bytes, output_bytes = traffic
        return total_read_bytes * (users - 1) >= output_bytes * (1 + users)
    return False


# Names through which Inductor code reads sizes in bytes. A model that compares
# memory traffic cannot be written without one of them; the read-count
# heuristic uses none.
_SIZE_READS = frozenset({"get_dep_size_hint", "numbytes_hint", "itemsize", "get_dtype_size"})


def upstream_probe(symbol: str, source: str) -> tuple[bool | None, str]:
    """Does this original ``should_realize_on_reuse`` already have the cost model?

    Reads the code, not the version: the cost model compares bytes, so it must
    read buffer sizes. Returns (True, why) when it does, (False, why) when the
    function decides from read counts alone, (None, why) when it cannot tell.
    """
    names = {
        node.attr if isinstance(node, ast.Attribute) else node.id
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.Attribute, ast.Name))
    }
    sizes = sorted(names & _SIZE_READS)
    if sizes:
        return True, f"{symbol} reads buffer sizes ({', '.join(sizes)})"
    if "num_reads" in names and "realize_reads_threshold" in names:
        return False, (
            f"{symbol} decides from num_reads() > realize_reads_threshold and reads no "
            "buffer sizes: it is the read-count heuristic, without the cost model"
        )
    return None, f"{symbol} reads no buffer sizes, nor the read-count threshold"


def _four_reads_three_users(a: Any, b: Any, c: Any, d: Any) -> tuple[Any, Any, Any]:
    # x reads 4 buffers (not > realize_reads_threshold=4) and has 3 pointwise
    # users: torch 2.11 inlines it, the cost model realizes it.
    x = a + b + c + d
    return x * 2, x - 1, x.sin()


def selftest() -> None:
    """Compile a graph that hits the patched decision; compare with eager."""
    import torch
    from torch._inductor import config
    from torch._inductor.ir import StorageBox

    installed = StorageBox.__dict__["should_realize_on_reuse"]
    if installed is not should_realize_on_reuse:
        raise AssertionError("StorageBox.should_realize_on_reuse is not this backport's")
    decisions: list[tuple[int, bool]] = []
    real_mark_reuse = StorageBox.mark_reuse

    def mark_reuse(box: StorageBox, users: int) -> None:
        decisions.append((users, box.should_realize_on_reuse(users)))
        real_mark_reuse(box, users)

    args = [torch.randn(64, 128) for _ in range(4)]
    torch._dynamo.reset()
    StorageBox.mark_reuse = mark_reuse  # type: ignore[method-assign]
    try:
        # No cache: a cache hit would skip lowering, where the decision runs.
        with (
            config.patch(fx_graph_cache=False),
            torch._functorch.config.patch(enable_autograd_cache=False),
        ):
            out = torch.compile(_four_reads_three_users, fullgraph=True)(*args)
    finally:
        StorageBox.mark_reuse = real_mark_reuse  # type: ignore[method-assign]
        torch._dynamo.reset()
    if (3, True) not in decisions:
        raise AssertionError(
            f"the patched heuristic did not realize the 4-read buffer with 3 users: {decisions}"
        )
    for got, want in zip(out, _four_reads_three_users(*args), strict=True):
        torch.testing.assert_close(got, want)
