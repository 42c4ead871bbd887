"""Correctness of the realize-on-reuse backports under tensor and sequence
parallelism. Run it under torchrun:

    torchrun --standalone --nproc-per-node 2 benchmarks/tp_correctness.py --out tp.json
    torchrun --standalone --nproc-per-node 1 benchmarks/tp_correctness.py --device cuda \\
        --tokens 2048 --dim 2048 --heads 16 --hidden 5632 --out tp-gpu.json

Each rank builds the same Llama-style decoder layers (RMSNorm, attention with
RoPE angles computed in the graph, SwiGLU MLP, a residual stream in fp32 or,
with ``--residual activation``, in the activations' dtype) and
shards them Megatron-style:

- ``tp``: attention heads and MLP columns split over the ranks; the row-parallel
  outputs are summed with a functional ``all_reduce`` before the residual add.
- ``sp``: as ``tp``, and the residual stream is split over the sequence: an
  ``all_gather`` before each column-parallel matmul, a ``reduce_scatter`` after
  each row-parallel one.

Every (mode, dtype) is compiled with ``torch.compile(fullgraph=True)`` three
times in the same process: with torch 2.11's heuristic (``off``), with the
faithful port of the cost model (``faithful``) and with the refined model
(``refined``); fresh compiles, FX-graph and AOTAutograd caches off. Each output
is compared with the same layers run eagerly on one device without any
sharding, and with the ``off`` output. Every realize decision is recorded: a
"flip" is a buffer where the 2.11 heuristic and the model in force disagree.
Rank 0 writes the JSON; the exit code is 1 when any output is outside its
tolerance.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed._functional_collectives as funcol
import torch.nn.functional as F
from realize_bench import (
    MODES,
    allow_fresh_compiles,
    clear_switches,
    compile_fresh,
    rope,
    set_mode,
)
from torch import Tensor

# Relative to the largest reference value. fp32 differs from eager only by
# summation order; bf16 rounds each matmul's partial sums before the collective.
TOLERANCE = {"float32": 1e-4, "bfloat16": 3e-2}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
# Each setting of the harness and the realize_bench mode it compiles under.
SETTINGS = {"off": "original", "faithful": "faithful", "refined": "refined"}
assert set(SETTINGS.values()) == set(MODES)


@dataclass(frozen=True)
class Shape:
    tokens: int
    dim: int
    heads: int
    hidden: int
    layers: int


# --------------------------------------------------------------------------
# The model, written once for one device and for a shard of it


def rms_norm(x: Tensor, weight: Tensor, dtype: torch.dtype) -> Tensor:
    x = x.float()
    normed = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
    return (normed * weight).to(dtype)


def rope_angles(positions: Tensor, inv_freq: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    # Computed in the graph, as serving engines do for each batch's positions.
    angle = positions[:, None].float() * inv_freq[None, :]
    angle = torch.cat((angle, angle), dim=-1)
    return angle.cos().to(dtype)[None], angle.sin().to(dtype)[None]


def make_weights(shape: Shape, dtype: torch.dtype, device: str) -> list[dict[str, Tensor]]:
    generator = torch.Generator().manual_seed(0)

    def param(*size: int, scale: float) -> Tensor:
        return (torch.randn(*size, generator=generator) * scale).to(device=device, dtype=dtype)

    d, h = shape.dim, shape.hidden
    return [
        {
            "norm1": param(d, scale=0.1).float() + 1,
            "norm2": param(d, scale=0.1).float() + 1,
            "wq": param(d, d, scale=d**-0.5),
            "wk": param(d, d, scale=d**-0.5),
            "wv": param(d, d, scale=d**-0.5),
            "wo": param(d, d, scale=d**-0.5),
            "wg": param(d, h, scale=d**-0.5),
            "wu": param(d, h, scale=d**-0.5),
            "wd": param(h, d, scale=h**-0.5),
        }
        for _ in range(shape.layers)
    ]


def shard(weights: list[dict[str, Tensor]], rank: int, world: int) -> list[dict[str, Tensor]]:
    """This rank's slice: column-parallel q/k/v/gate/up, row-parallel o/down."""

    def cols(w: Tensor) -> Tensor:
        return w.chunk(world, dim=1)[rank].contiguous()

    def rows(w: Tensor) -> Tensor:
        return w.chunk(world, dim=0)[rank].contiguous()

    return [
        {
            "norm1": layer["norm1"],
            "norm2": layer["norm2"],
            **{k: cols(layer[k]) for k in ("wq", "wk", "wv", "wg", "wu")},
            **{k: rows(layer[k]) for k in ("wo", "wd")},
        }
        for layer in weights
    ]


Collective = Callable[[Tensor], Tensor]


def _identity(x: Tensor) -> Tensor:
    return x


def decoder(
    x: Tensor,
    residual: Tensor,
    positions: Tensor,
    weights: list[dict[str, Tensor]],
    *,
    head_dim: int,
    dtype: torch.dtype,
    gather: Collective = _identity,
    reduce: Collective = _identity,
) -> tuple[Tensor, Tensor]:
    """Decoder layers over ``x``; with the default collectives, the one-device
    model. ``gather`` runs before each column-parallel matmul and ``reduce``
    after each row-parallel one (all_reduce for TP; all_gather and
    reduce_scatter for SP)."""
    inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, device=x.device).float() / head_dim))
    cos, sin = rope_angles(positions, inv_freq, dtype)
    for layer in weights:
        residual = x.to(residual.dtype) + residual
        h = gather(rms_norm(residual, layer["norm1"], dtype))
        tokens = h.shape[0]
        q, k, v = (
            (h @ layer[w]).view(tokens, -1, head_dim).transpose(0, 1) for w in ("wq", "wk", "wv")
        )
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        attn = F.scaled_dot_product_attention(q[None], k[None], v[None], is_causal=True)[0]
        x = reduce(attn.transpose(0, 1).reshape(tokens, -1) @ layer["wo"])
        residual = x.to(residual.dtype) + residual
        h = gather(rms_norm(residual, layer["norm2"], dtype))
        x = reduce((F.silu(h @ layer["wg"]) * (h @ layer["wu"])) @ layer["wd"])
    return x, residual


def parallel(mode: str) -> dict[str, Collective]:
    group = dist.group.WORLD
    assert group is not None
    if mode == "tp":
        return {"reduce": lambda t: funcol.all_reduce(t, "sum", group)}
    return {
        "gather": lambda t: funcol.all_gather_tensor(t, 0, group),
        "reduce": lambda t: funcol.reduce_scatter_tensor(t, "sum", 0, group),
    }


# --------------------------------------------------------------------------
# One configuration


@dataclass
class Result:
    mode: str
    dtype: str
    backport: str
    error: float
    tolerance: float
    passed: bool
    decisions: int
    flips: int
    flips_to_realize: int
    flips_to_inline: int
    kernels: int
    flipped: list[str]
    error_vs_off: float | None = None


def relative_error(got: tuple[Tensor, ...], want: tuple[Tensor, ...]) -> float:
    worst = 0.0
    for g, w in zip(got, want, strict=True):
        scale = max(w.float().abs().max().item(), 1e-6)
        worst = max(worst, (g.float() - w.float()).abs().max().item() / scale)
    return worst


def gather_rows(t: Tensor, world: int) -> Tensor:
    if world == 1:
        return t
    out = torch.empty((t.shape[0] * world, *t.shape[1:]), dtype=t.dtype, device=t.device)
    dist.all_gather_into_tensor(out, t.contiguous())
    return out


def run_config(
    mode: str,
    dtype_name: str,
    backport: str,
    shape: Shape,
    inputs: tuple[Tensor, Tensor, Tensor],
    weights: list[dict[str, Tensor]],
    reference: tuple[Tensor, Tensor],
) -> tuple[Result, tuple[Tensor, Tensor]]:
    rank, world = dist.get_rank(), dist.get_world_size()
    dtype = DTYPES[dtype_name]
    x, residual, positions = inputs
    if mode == "sp":
        x, residual = (t.chunk(world, dim=0)[rank].contiguous() for t in (x, residual))
    local = shard(weights, rank, world)
    collectives = parallel(mode)
    head_dim = shape.dim // shape.heads

    class Layers(torch.nn.Module):
        def forward(self, x: Tensor, residual: Tensor, positions: Tensor) -> Any:
            return decoder(
                x, residual, positions, local, head_dim=head_dim, dtype=dtype, **collectives
            )

    compiled, stats = compile_fresh(Layers(), (x, residual, positions))
    with torch.no_grad():
        out = compiled(x, residual, positions)
    if mode == "sp":
        out = tuple(gather_rows(t, world) for t in out)
    error = relative_error(out, reference)
    tolerance = TOLERANCE[dtype_name]
    result = Result(
        mode=mode,
        dtype=dtype_name,
        backport=backport,
        error=error,
        tolerance=tolerance,
        passed=math.isfinite(error) and error <= tolerance,
        decisions=stats["decisions"],
        flips=stats["flips"],
        flips_to_realize=stats["flips_to_realize"],
        flips_to_inline=stats["flips_to_inline"],
        kernels=stats["kernels"],
        flipped=stats["flipped"],
    )
    return result, out


def run_all(args: argparse.Namespace, shape: Shape, device: str) -> list[Result]:
    results: list[Result] = []
    for dtype_name in args.dtypes.split(","):
        dtype = DTYPES[dtype_name]
        generator = torch.Generator().manual_seed(1)
        x = torch.randn(shape.tokens, shape.dim, generator=generator).to(device, dtype)
        residual = torch.randn(shape.tokens, shape.dim, generator=generator).to(
            device, torch.float32 if args.residual == "float32" else dtype
        )
        positions = torch.arange(shape.tokens, device=device)
        weights = make_weights(shape, dtype, device)
        with torch.no_grad():
            reference = decoder(
                x, residual, positions, weights, head_dim=shape.dim // shape.heads, dtype=dtype
            )
        for mode in args.modes.split(","):
            outputs = {}
            # Rotate the order so that no setting always compiles first.
            names, turn = list(SETTINGS), len(results) // len(SETTINGS)
            order = names[turn % len(names) :] + names[: turn % len(names)]
            group = []
            for backport in order:
                set_mode(SETTINGS[backport])
                result, outputs[backport] = run_config(
                    mode, dtype_name, backport, shape, (x, residual, positions), weights, reference
                )
                group.append(result)
            set_mode("original")
            for result in group:
                result.error_vs_off = relative_error(outputs[result.backport], outputs["off"])
            results.extend(sorted(group, key=lambda r: names.index(r.backport)))
            dist.barrier()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument(
        "--backend",
        choices=("gloo", "nccl"),
        help="default: nccl on cuda, gloo on cpu; gloo on cuda lets several ranks share one GPU",
    )
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--modes", default="tp,sp")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument(
        "--residual",
        default="float32",
        choices=("float32", "activation"),
        help="dtype of the residual stream: fp32, or the activations' dtype",
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    device = args.device
    if device == "cuda":
        # More ranks than GPUs share them (gloo only: NCCL refuses that).
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
    dist.init_process_group(args.backend or ("nccl" if device == "cuda" else "gloo"))
    rank, world = dist.get_rank(), dist.get_world_size()
    shape = Shape(args.tokens, args.dim, args.heads, args.hidden, args.layers)
    if shape.heads % world or shape.hidden % world or shape.tokens % world:
        raise SystemExit(f"heads, hidden and tokens must divide by the world size {world}")

    clear_switches()
    allow_fresh_compiles()
    results = run_all(args, shape, device)

    # Every rank checks its own copy of the outputs; a failure anywhere counts.
    failed = torch.tensor([sum(not r.passed for r in results)], dtype=torch.int64)
    if dist.get_backend() == "nccl":
        failed = failed.cuda()
    dist.all_reduce(failed)
    if rank == 0:
        report = {
            "torch": torch.__version__,
            "device": torch.cuda.get_device_name() if device == "cuda" else platform.processor(),
            "backend": dist.get_backend(),
            "world_size": world,
            "shape": asdict(shape),
            "residual": args.residual,
            "results": [asdict(r) for r in results],
            "failed_on_any_rank": int(failed.item()),
        }
        text = json.dumps(report, indent=2)
        if args.out:
            args.out.write_text(text + "\n", encoding="utf-8")
        print(text)
    dist.barrier()
    dist.destroy_process_group()
    return 1 if failed.item() else 0


if __name__ == "__main__":
    sys.exit(main())
