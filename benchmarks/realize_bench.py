"""Benchmark of the realize-on-reuse backport: realize decisions, kernels, bytes,
correctness and latency, original 2.11 heuristic against the cost model.

CPU, CI-sized (decisions, kernels, bytes, correctness; no timings asserted):

    python benchmarks/realize_bench.py --device cpu --smoke --out cpu.json

GPU (adds interleaved latency at each token count):

    python benchmarks/realize_bench.py --device cuda --out gpu.json

Every (workload, token count, mode) is a fresh compile with the FX-graph and
AOTAutograd caches off, so no artifact compiled under one heuristic is reused
under the other. A decision "flips" when the original heuristic and the cost
model disagree on the same buffer during the patched compile.
"""

from __future__ import annotations

import argparse
import functools
import json
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch._inductor import config as inductor_config
from torch._inductor import metrics
from torch._inductor.ir import StorageBox

import backport_tool
from backport_tool import patcher
from backport_tool.engine import load_backport_module

BACKPORT = "inductor-realize-on-reuse"


# --------------------------------------------------------------------------
# Decision recording


@dataclass(frozen=True)
class Decision:
    users: int
    kind: str
    original: bool
    installed: bool
    cost_model: bool  # what the backport would decide, applied or not
    origins: str = ""  # the FX nodes the buffer computes, to say which value flipped


@functools.cache
def cost_model_heuristic() -> Callable[..., bool]:
    """The backport's replacement, loaded (not applied) from the bundled patch set."""
    manifest = backport_tool.load_manifest(backport_tool.default_manifest_path())
    module = load_backport_module(manifest.get(BACKPORT))
    return module.should_realize_on_reuse  # type: ignore[no-any-return]


def original_heuristic() -> Callable[..., bool]:
    current = StorageBox.__dict__["should_realize_on_reuse"]
    before = patcher.before_patch(StorageBox, "should_realize_on_reuse")
    return before[1] if before is not None else current  # type: ignore[return-value]


@contextmanager
def record_decisions() -> Iterator[list[Decision]]:
    """Record every realize-on-reuse decision of the compiles inside the block, as
    the original 2.11 heuristic and as the installed one would make it."""
    original = original_heuristic()
    cost_model = cost_model_heuristic()
    decisions: list[Decision] = []
    real_mark_reuse = StorageBox.mark_reuse

    # mark_reuse is where every lowering path asks the heuristic and acts on
    # it; wrapping it (not the heuristic) leaves the patched target alone.
    def mark_reuse(self: StorageBox, users: int) -> None:
        decisions.append(
            Decision(
                users,
                type(self.data).__name__,
                bool(original(self, users)),
                bool(StorageBox.should_realize_on_reuse(self, users)),
                bool(cost_model(self, users)),
                ",".join(sorted(n.name for n in getattr(self.data, "origins", ()))),
            )
        )
        real_mark_reuse(self, users)

    StorageBox.mark_reuse = mark_reuse  # type: ignore[method-assign]
    try:
        yield decisions
    finally:
        StorageBox.mark_reuse = real_mark_reuse  # type: ignore[method-assign]


@contextmanager
def no_compile_caches() -> Iterator[None]:
    """FX-graph, autotune and AOTAutograd caches off: every compile lowers anew."""
    with (
        inductor_config.patch(fx_graph_cache=False, autotune_local_cache=False),
        torch._functorch.config.patch(enable_autograd_cache=False),
    ):
        yield


def set_backport(on: bool) -> None:
    """Revert the patch set; with ``on``, apply it and exit unless the backport applied."""
    backport_tool.revert()
    if on:
        result = backport_tool.apply(eager=True).by_id(BACKPORT)
        if result.status.value != "applied":
            raise SystemExit(f"backport not applied: {result.status.value} {result.reason}")


def compile_fresh(
    module: nn.Module, inputs: tuple[torch.Tensor, ...]
) -> tuple[Any, dict[str, Any]]:
    """Compile ``module`` with no cache reuse; return it with compile metrics."""
    metrics.reset()
    # Dynamo caches compiled frames by code object, and with inlined nn.Modules
    # a second module of the same class would hit the first one's entry. A
    # fresh entry function per compile gets its own code object.
    namespace: dict[str, Any] = {"module": module}
    exec(compile("def entry(*args):\n    return module(*args)\n", "<bench>", "exec"), namespace)
    with record_decisions() as decisions, no_compile_caches():
        compiled = torch.compile(namespace["entry"], fullgraph=True)
        with torch.no_grad():
            compiled(*inputs)
    stats = {
        "decisions": len(decisions),
        "flips": sum(d.original != d.installed for d in decisions),
        "flips_to_realize": sum(d.installed and not d.original for d in decisions),
        "flips_to_inline": sum(d.original and not d.installed for d in decisions),
        # The same, whether or not the backport is applied in this compile.
        "cost_model_flips": sum(d.original != d.cost_model for d in decisions),
        "cost_model_flips_to_realize": sum(d.cost_model and not d.original for d in decisions),
        "cost_model_flips_to_inline": sum(d.original and not d.cost_model for d in decisions),
        "cost_model_flipped": [
            f"{d.kind}({d.origins}) x{d.users} users -> {'realize' if d.cost_model else 'inline'}"
            for d in decisions
            if d.original != d.cost_model
        ],
        "kernels": metrics.generated_kernel_count,
        "bytes": metrics.num_bytes_accessed,
    }
    return compiled, stats


# --------------------------------------------------------------------------
# Workloads: each builds a module and its inputs for a token count


class RMSNorm(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + 1e-6)
        return normed.to(self.weight.dtype) * self.weight


class DecoderLayer(nn.Module):
    """Llama-style: RMSNorm, attention (SDPA, RoPE), RMSNorm, SwiGLU MLP."""

    def __init__(self, dim: int, heads: int, hidden: int, residual_dtype: torch.dtype) -> None:
        super().__init__()
        self.heads = heads
        self.residual_dtype = residual_dtype
        self.norm1 = RMSNorm(dim)
        self.norm2 = RMSNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)
        self.gate_up = nn.Linear(dim, 2 * hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)

    def forward(
        self, x: torch.Tensor, residual: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        residual = (x.to(self.residual_dtype) + residual).to(self.residual_dtype)
        h = self.norm1(residual)
        q, k, v = self.qkv(h).chunk(3, dim=-1)
        t, d = q.shape
        q, k, v = (z.view(t, self.heads, d // self.heads).transpose(0, 1) for z in (q, k, v))
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        attn = F.scaled_dot_product_attention(q[None], k[None], v[None], is_causal=True)[0]
        x = self.proj(attn.transpose(0, 1).reshape(t, d))
        residual = (x.to(self.residual_dtype) + residual).to(self.residual_dtype)
        h = self.norm2(residual)
        gate, up = self.gate_up(h).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up), residual


def rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class DecoderStack(nn.Module):
    def __init__(self, layers: int, dim: int, heads: int, residual_dtype: torch.dtype) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            DecoderLayer(dim, heads, int(dim * 8 / 3) // 64 * 64, residual_dtype)
            for _ in range(layers)
        )

    def forward(
        self, x: torch.Tensor, residual: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        for layer in self.layers:
            x, residual = layer(x, residual, cos, sin)
        return x, residual


class ResidualRMSNorm(nn.Module):
    """The fused add + RMSNorm of every decoder layer, with the sum reused only
    by pointwise/reduction users (no matmul in between)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> tuple[torch.Tensor, ...]:
        h = x.float() + residual + self.bias  # 3 reads, users below
        var = h.pow(2).mean(-1, keepdim=True)
        normed = (h * torch.rsqrt(var + 1e-6)) * self.weight
        return normed.to(x.dtype), h.amax(-1)


class RopeQK(nn.Module):
    """RoPE on q and k with cos/sin computed in-graph from positions; the angle
    tensor is reused by cos, sin and a scaling user."""

    def __init__(self, head_dim: int) -> None:
        super().__init__()
        inv = 1.0 / (10000 ** (torch.arange(0, head_dim, 2).float() / head_dim))
        self.register_buffer("inv_freq", inv)

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, pos: torch.Tensor, scale: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        angle = (pos[:, None].float() * self.inv_freq[None, :]) * scale + scale
        angle = torch.cat((angle, angle), dim=-1)
        cos, sin = angle.cos(), angle.sin()
        return rope(q, cos, sin), rope(k, cos, sin)


class MultiRead(nn.Module):
    """A 4-read pointwise value reused by ``users`` pointwise/reduction users."""

    def __init__(self, users: int) -> None:
        super().__init__()
        self.users = users

    def forward(
        self, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        x = a * b + c * d
        outs = [x * 2, x - 1, x.sum(-1), x.amax(-1)]
        return tuple(outs[: self.users])


class BroadcastFiveReads(nn.Module):
    """Where the cost model should lose: five tiny reads (row and column vectors)
    build a huge value. 2.11 realizes it (5 reads > 4); the cost model sees few
    bytes read and inlines it into three reductions over different axes."""

    def forward(
        self,
        r1: torch.Tensor,
        c1: torch.Tensor,
        r2: torch.Tensor,
        c2: torch.Tensor,
        r3: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        x = (r1[:, None] * c1[None, :] + r2[:, None] - c2[None, :]) * r3[:, None]
        x = torch.tanh(x) * torch.sigmoid(x)
        return x.sum(0), x.sum(1), x.amax(1)


@dataclass
class Workload:
    name: str
    build: Callable[[int, str, bool], tuple[nn.Module, tuple[torch.Tensor, ...]]]
    expect_flips: bool
    tolerance: float = 1e-4
    notes: str = ""


def _decoder(residual: torch.dtype) -> Callable[[int, str, bool], Any]:
    def build(tokens: int, device: str, smoke: bool) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        dim, heads, layers = (256, 4, 2) if smoke else (2048, 16, 2)
        weights = torch.bfloat16 if device == "cuda" else torch.float32
        model = DecoderStack(layers, dim, heads, residual).to(device, weights)
        head = dim // heads
        angle = torch.arange(tokens, device=device)[:, None] * torch.rand(head // 2, device=device)
        angle = torch.cat((angle, angle), -1)
        inputs = (
            torch.randn(tokens, dim, device=device, dtype=weights),
            torch.randn(tokens, dim, device=device, dtype=residual),
            angle.cos().to(weights),
            angle.sin().to(weights),
        )
        return model, inputs

    return build


def _residual_rmsnorm(tokens: int, device: str, smoke: bool) -> Any:
    # An fp32 residual stream: both operands of the add are fp32.
    dim = 256 if smoke else 4096
    return ResidualRMSNorm(dim).to(device), (
        torch.randn(tokens, dim, device=device),
        torch.randn(tokens, dim, device=device),
    )


def _rope(tokens: int, device: str, smoke: bool) -> Any:
    heads, head = (4, 64) if smoke else (32, 128)
    return RopeQK(head).to(device), (
        torch.randn(heads, tokens, head, device=device),
        torch.randn(heads, tokens, head, device=device),
        torch.arange(tokens, device=device),
        torch.rand(1, device=device) + 0.5,
    )


def _multiread(users: int) -> Callable[[int, str, bool], Any]:
    def build(tokens: int, device: str, smoke: bool) -> Any:
        dim = 256 if smoke else 4096
        return MultiRead(users), tuple(torch.randn(tokens, dim, device=device) for _ in range(4))

    return build


def _broadcast(tokens: int, device: str, smoke: bool) -> Any:
    dim = 256 if smoke else 8192
    rows = [torch.randn(tokens, device=device) for _ in range(3)]
    cols = [torch.randn(dim, device=device) for _ in range(2)]
    return BroadcastFiveReads(), (rows[0], cols[0], rows[1], cols[1], rows[2])


WORKLOADS = [
    Workload(
        "decoder-fp32-residual",
        _decoder(torch.float32),
        False,
        3e-2,
        "Llama-style 2-layer stack; residual stream in fp32",
    ),
    Workload(
        "decoder-bf16-residual",
        _decoder(torch.bfloat16),
        False,
        3e-2,
        "Llama-style 2-layer stack; residual stream in bf16 (fp32 on CPU)",
    ),
    Workload(
        "residual-rmsnorm",
        _residual_rmsnorm,
        True,
        1e-3,
        "fp32 x + residual + bias reused by RMSNorm's reduction, its scale and an amax",
    ),
    # fp32 sin/cos of angles up to the token count: argument reduction differs
    # between eager and Triton at the 1e-4 level.
    Workload("rope-qk", _rope, True, 1e-3, "in-graph angles reused by cos, sin, q and k"),
    Workload("multiread-2-users", _multiread(2), True),
    Workload("multiread-3-users", _multiread(3), True),
    Workload("multiread-4-users", _multiread(4), True),
    Workload(
        "broadcast-5-reads",
        _broadcast,
        True,
        1e-4,
        "built to lose: tiny reads, a huge value; the cost model inlines it into 3 "
        "reductions where 2.11 realizes it",
    ),
]


# --------------------------------------------------------------------------
# Running


@dataclass
class Case:
    workload: str
    tokens: int
    original: dict[str, Any] = field(default_factory=dict)
    patched: dict[str, Any] = field(default_factory=dict)
    correct: bool = False
    max_error: float = 0.0
    latency_ms: dict[str, list[float]] = field(default_factory=dict)


def _flatten(out: Any) -> list[torch.Tensor]:
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _error(got: Any, want: Any) -> float:
    worst = 0.0
    for g, w in zip(_flatten(got), _flatten(want), strict=True):
        diff = (g.float() - w.float()).abs().max() / (w.float().abs().max() + 1e-6)
        worst = max(worst, diff.item())
    return worst


def _bench_ms(fn: Callable[[], Any]) -> float:
    import triton.testing  # noqa: PLC0415 - GPU only; CPU runs never time

    # CUDA graphs take the CPU launch overhead out, which otherwise swamps the
    # small token counts.
    return float(triton.testing.do_bench_cudagraph(fn, rep=100))


def run_case(workload: Workload, tokens: int, device: str, smoke: bool, reps: int) -> Case:
    torch.manual_seed(0)
    case = Case(workload.name, tokens)
    module, inputs = workload.build(tokens, device, smoke)
    module.eval()
    with torch.no_grad():
        expected = module(*inputs)
    compiled: dict[str, Any] = {}
    for mode in ("original", "patched"):
        set_backport(mode == "patched")
        # A new module object per mode: its own Dynamo cache entry, compiled
        # under the heuristic in force right now.
        fresh, _ = workload.build(tokens, device, smoke)
        fresh.load_state_dict(module.state_dict())
        fresh.eval()
        compiled[mode], stats = compile_fresh(fresh, inputs)
        setattr(case, mode, stats)
    backport_tool.revert()
    with torch.no_grad():
        errors = [_error(compiled[m](*inputs), expected) for m in compiled]
    case.max_error = max(errors)
    case.correct = case.max_error <= workload.tolerance
    if device == "cuda" and reps:
        case.latency_ms = {m: [] for m in compiled}
        for _ in range(reps):
            order = list(compiled)
            random.shuffle(order)
            for mode in order:
                fn = compiled[mode]
                with torch.no_grad():
                    case.latency_ms[mode].append(_bench_ms(lambda fn=fn: fn(*inputs)))
    return case


def summarize(case: Case) -> dict[str, Any]:
    data = asdict(case)
    if case.latency_ms:
        ratios = [
            p / o
            for p, o in zip(case.latency_ms["patched"], case.latency_ms["original"], strict=True)
        ]
        data["ratio_median"] = statistics.median(ratios)
        data["ratio_min"] = min(ratios)
        data["ratio_max"] = max(ratios)
    return data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--smoke", action="store_true", help="CI-sized shapes and token counts")
    parser.add_argument("--tokens", default=None, help="comma-separated token counts")
    parser.add_argument("--workloads", default=None, help="comma-separated workload names")
    parser.add_argument("--reps", type=int, default=5, help="interleaved latency repetitions")
    parser.add_argument("--out", default=None, help="write results as JSON here")
    args = parser.parse_args()

    # Every case compiles twice more; keep all compiled entries alive.
    torch._dynamo.config.recompile_limit = 10_000
    torch._dynamo.config.accumulated_recompile_limit = 100_000
    # Inductor only counts bytes when its metrics log artifact is on; keep it
    # on but drop its (long) records.
    torch._logging.set_logs(inductor_metrics=True)
    torch._logging.getArtifactLogger("torch._inductor.compile_fx", "inductor_metrics").addFilter(
        lambda record: False
    )
    default_tokens = "16,64" if args.smoke else "1,16,256,2048,8192"
    tokens = [int(t) for t in (args.tokens or default_tokens).split(",")]
    selected = set(args.workloads.split(",")) if args.workloads else None
    results: list[dict[str, Any]] = []
    started = time.time()
    meta = {
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
        "smoke": args.smoke,
        "python": sys.version.split()[0],
    }

    def save() -> None:
        # After every case, so that a run cut short keeps what it measured.
        if args.out:
            meta["seconds"] = round(time.time() - started, 1)
            with open(args.out, "w") as handle:
                json.dump({"meta": meta, "results": results}, handle, indent=1)

    for workload in WORKLOADS:
        if selected and workload.name not in selected:
            continue
        for count in tokens:
            case = run_case(workload, count, args.device, args.smoke, args.reps)
            row = summarize(case)
            row["expect_flips"] = workload.expect_flips
            row["notes"] = workload.notes
            results.append(row)
            ratio = f" ratio={row['ratio_median']:.3f}" if "ratio_median" in row else ""
            print(
                f"{workload.name:<22} tokens={count:<5} flips={case.patched['flips']} "
                f"kernels {case.original['kernels']}->{case.patched['kernels']} "
                f"bytes {case.original['bytes']}->{case.patched['bytes']} "
                f"correct={case.correct}{ratio}",
                flush=True,
            )
            save()
    bad = [r for r in results if not r["correct"]]
    missing = [r for r in results if r["expect_flips"] and r["patched"]["flips"] == 0]
    if bad:
        print("INCORRECT:", [(r["workload"], r["tokens"], r["max_error"]) for r in bad])
    if missing:
        print("NO FLIPS WHERE EXPECTED:", [(r["workload"], r["tokens"]) for r in missing])
    return 1 if bad or missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
