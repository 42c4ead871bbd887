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
verified before this module is loaded.
"""

from __future__ import annotations

from torch._inductor import config
from torch._inductor.ir import Pointwise, Reduction, StorageBox, is_cpu
from torch._inductor.virtualized import V
from torch.fx.experimental.symbolic_shapes import free_unbacked_symbols

# Same list as torch 2.11's heuristic: recomputing these on CPU is expensive
# enough that reuse always pays for a realized buffer.
_CPU_HEAVY_OPS = ("exp", "sigmoid")


def traffic_bytes(box: StorageBox) -> tuple[int, int] | None:
    """Return ``(total_read_bytes, output_bytes)`` of ``box``, or None if unknown."""
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
