"""A refined realize-on-reuse cost model for Inductor in torch 2.11.

The bundled patch set applies it by default on torch 2.11. It replaces
``torch._inductor.ir.StorageBox.should_realize_on_reuse``, the target of the
faithful port of pytorch/pytorch#176994 (the opt-in
``inductor-realize-on-reuse`` backport). It starts from the same byte model,
``saved = total_read_bytes * (users - 1) - output_bytes * (1 + users)`` (what
realizing saves over inlining), and overrides the torch 2.11 read-count rule
only where those bytes are real:

* the bytes at stake must be worth a kernel launch: while ``abs(saved)`` is
  under ``LAUNCH_BYTES_GPU`` (or ``LAUNCH_BYTES_CPU``), 2.11 decides.
  Realizing may add a kernel, and below that size the generated code, not the
  bytes, sets the time;
* where inlining saves that much (``-saved`` at least that: values built from
  small broadcast inputs), it inlines: that is where the port wins;
* where realizing saves that much, it realizes, except when every user of the
  value is a pointwise op over the same elements or a reduction over its
  innermost dimensions (Inductor fuses them into one kernel, where the inlined
  loads are shared and realizing saves nothing), or when the value's inputs fit
  in the GPU's L2 cache (the users' extra reads are cache hits, not memory
  traffic), or when, inline, two of its users are reductions over different
  axes that Inductor can fuse into one mix-order reduction kernel on the GPU
  (realizing the value splits that kernel): there 2.11 decides;
* as in the faithful port, 2.11's CPU heavy-op rule and large-inner-fn rule
  come first, and unknown sizes fall back to the 2.11 read-count rule.

So it moves a decision away from 2.11's only with at least a kernel launch's
worth of memory traffic on its side.

docs/benchmarks.md gives the measurements behind each rule and the comparison
with the 2.11 heuristic and the faithful port. torch is imported inside the
functions, so that backport-tool can load this module without torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch._inductor.ir import StorageBox

# Memory traffic worth one extra kernel. On the H100, the realized positions
# cast of rope-qk added one kernel and 1.1 us at 1 token (2.8 -> 3.9 us, CUDA
# graph replay); at about 3.35 TB/s that is 3.7 MB. A CPU kernel is one more
# OpenMP region, a few microseconds at a few tens of GB/s.
LAUNCH_BYTES_GPU = 4 * 1024 * 1024
LAUNCH_BYTES_CPU = 64 * 1024

_CPU_HEAVY_OPS = ("exp", "sigmoid")


def _cache_bytes(box: StorageBox) -> int:
    # The L2 size of the value's GPU; 0 (no rule) for CPUs, whose caches vary
    # too much by machine, and where nothing was measured.
    import torch

    device = box.get_device()
    if device is None or device.type != "cuda":
        return 0
    return int(torch.cuda.get_device_properties(device).L2_cache_size)


def _traffic(box: StorageBox) -> tuple[int, int] | None:
    # (total_read_bytes, output_bytes), or None when a size is unbacked.
    from torch._inductor.virtualized import V
    from torch.fx.experimental.symbolic_shapes import free_unbacked_symbols

    numel = box.data.get_numel()
    reads = box.get_reads()
    if free_unbacked_symbols(numel) or any(dep.has_unbacked_symbols() for dep in reads):
        return None
    read_bytes = sum(V.graph.get_dep_size_hint(dep) for dep in reads)
    hint = V.graph.sizevars.optimization_hint(numel, fallback=0)
    return read_bytes, hint * box.data.dtype.itemsize


def _reduced_dims(user: Any, ndim: int) -> set[int] | None:
    # The dimensions an FX reduction node reduces, or None for other nodes.
    import torch

    aten = torch.ops.aten
    reductions = {
        aten.sum.dim_IntList,
        aten.mean.dim,
        aten.amax.default,
        aten.amin.default,
        aten.prod.dim_int,
        aten.var.correction,
        aten.var_mean.correction,
    }
    if user.target not in reductions or len(user.args) < 2 or ndim == 0:
        return None
    dims = user.args[1]
    dims = [dims] if isinstance(dims, int) else dims
    if not isinstance(dims, (list, tuple)) or not dims:
        return None
    wanted = {d % ndim for d in dims if isinstance(d, int)}
    return wanted if len(wanted) == len(dims) else None


def _innermost(dims: set[int] | None, ndim: int) -> bool:
    return bool(dims) and dims == set(range(ndim - len(dims or ()), ndim))


def _fx_value(box: StorageBox, users: int) -> tuple[Any, Any] | None:
    # The FX node being lowered and its example value, when ``box`` is that
    # node's own result. mark_reuse is also asked with a broadcast factor by
    # expand and repeat; those are not judged by FX users.
    import torch
    from torch._inductor.virtualized import V

    node = getattr(V.graph, "current_node", None)
    value = node.meta.get("val") if node is not None else None
    if not isinstance(value, torch.Tensor) or len(node.users) != users:
        return None
    numel = V.graph.sizevars.optimization_hint(box.data.get_numel(), fallback=-1)
    if numel != V.graph.sizevars.optimization_hint(value.numel(), fallback=-2):
        return None
    return node, value


def users_share_one_kernel(box: StorageBox, users: int) -> bool:
    """Are all ``users`` of ``box`` ops that Inductor fuses into one kernel with it?"""
    import torch

    found = _fx_value(box, users)
    if found is None:
        return False
    node, value = found
    for user in node.users:
        if user.op != "call_function":
            return False
        out = user.meta.get("val")
        pointwise = torch.Tag.pointwise in getattr(user.target, "tags", ())
        same_elements = isinstance(out, torch.Tensor) and out.numel() == value.numel()
        if not (pointwise and same_elements) and not _innermost(
            _reduced_dims(user, value.dim()), value.dim()
        ):
            return False
    return True


def mix_order_candidate(box: StorageBox, users: int) -> bool:
    """Could Inductor fuse two reductions of ``box`` over different axes into one
    mix-order reduction kernel, if ``box`` stays inline?

    The size conditions are those of torch 2.11's ``MixOrderReduction.can_fuse``
    for a value seen as rows x columns (its last dimension)."""
    import torch
    from torch._inductor import config
    from torch._inductor.virtualized import V

    found = _fx_value(box, users)
    if found is None or not getattr(config.triton, "mix_order_reduction", False):
        return False
    node, value = found
    ndim = value.dim()
    if ndim < 2:
        return False
    hint = V.graph.sizevars.optimization_hint
    cols = hint(value.shape[-1], fallback=0)
    rows = hint(value.numel(), fallback=0) // max(cols, 1)
    if not (rows * cols >= 5 * 2**20 and rows >= max(2 * cols, 4096) and 0 < cols <= 16384):
        return False
    reduced = [_reduced_dims(user, ndim) for user in node.users]
    inner = any(_innermost(dims, ndim) for dims in reduced)
    outer_sum = any(
        user.target is torch.ops.aten.sum.dim_IntList and dims and ndim - 1 not in dims
        for user, dims in zip(node.users, reduced, strict=True)
    )
    return inner and outer_sum


def should_realize_on_reuse(self: StorageBox, users: int) -> bool:
    """A heuristic to decide if we should realize a tensor that is used multiple times."""
    from torch._inductor import config
    from torch._inductor.ir import Pointwise, Reduction, is_cpu

    if users <= 1 or not isinstance(self.data, (Pointwise, Reduction)):
        return False
    cpu = is_cpu(self.data)
    if cpu and any(op in self.data.inner_fn_opcount().used_ops for op in _CPU_HEAVY_OPS):
        return True
    if self.has_large_inner_fn():
        return True
    read_count_rule = self.num_reads() > config.realize_reads_threshold
    traffic = _traffic(self)
    if traffic is None:
        return read_count_rule
    read_bytes, output_bytes = traffic
    saved = read_bytes * (users - 1) - output_bytes * (1 + users)
    launch = LAUNCH_BYTES_CPU if cpu else LAUNCH_BYTES_GPU
    if abs(saved) < launch:
        return read_count_rule
    if saved < 0:
        return False
    if (
        read_bytes <= _cache_bytes(self)
        or users_share_one_kernel(self, users)
        or (not cpu and mix_order_candidate(self, users))
    ):
        return read_count_rule
    return True


def _reused_across_axes(a: Any, b: Any, c: Any, d: Any) -> tuple[Any, Any, Any]:
    # x reads 4 inputs (2.11 inlines it) and is reduced over both axes: the
    # two reductions are separate kernels, so realizing x saves reading the
    # four inputs twice. Its FX users are two reductions and a pointwise op.
    x = a * b + c * d
    return x.sum(0), x.sum(1), x * 2


def _residual_norm(x: Any, residual: Any) -> tuple[Any, Any]:
    # A near tie of the byte model whose users fuse into one kernel: kept inline.
    h = x + residual
    return h * (h.pow(2).mean(-1, keepdim=True) + 1e-6).rsqrt(), h.amax(-1)


def selftest() -> None:
    """Compile graphs that hit both refined rules on CPU; compare with eager."""
    import torch
    from torch._inductor import config
    from torch._inductor.ir import StorageBox

    if StorageBox.__dict__["should_realize_on_reuse"] is not should_realize_on_reuse:
        raise AssertionError("StorageBox.should_realize_on_reuse is not this backport's")
    real_mark_reuse = StorageBox.mark_reuse
    for fn, rows, want in ((_reused_across_axes, 4, (3, True)), (_residual_norm, 2, (3, False))):
        decisions: list[tuple[int, bool]] = []

        def mark_reuse(
            box: StorageBox, users: int, seen: list[tuple[int, bool]] = decisions
        ) -> None:
            seen.append((users, box.should_realize_on_reuse(users)))
            real_mark_reuse(box, users)

        args = [torch.randn(256, 256) for _ in range(rows)]
        torch._dynamo.reset()
        StorageBox.mark_reuse = mark_reuse  # type: ignore[method-assign]
        try:
            # No cache: a cache hit would skip lowering, where the decision runs.
            with (
                config.patch(fx_graph_cache=False),
                torch._functorch.config.patch(enable_autograd_cache=False),
            ):
                out = torch.compile(fn, fullgraph=True)(*args)
        finally:
            StorageBox.mark_reuse = real_mark_reuse  # type: ignore[method-assign]
            torch._dynamo.reset()
        if want not in decisions or (want[0], not want[1]) in decisions:
            raise AssertionError(f"{fn.__name__}: expected {want} among {decisions}")
        # Sums of 256 terms: the compiled summation order differs from eager's.
        for got, expected in zip(out, fn(*args), strict=True):
            torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
