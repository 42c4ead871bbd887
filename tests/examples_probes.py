"""Run in a fresh interpreter by tests/test_examples.py: put the example patch
set in force one way (lazy, eager, late, scoped, or not at all), then drive
the torch code path each backport changes and say whether the fix ran.

    python examples_probes.py MODE MANIFEST

prints one JSON object: per backport id, whether its fix was observed before
and after the patch set was put in force, and the statuses apply reported.
Each probe calls torch the way its users do (``nn.Linear``, ``torch.compile``,
Inductor's ``compile_fx``, Dynamo's capture, FX's dead-code elimination,
``nn.TransformerEncoderLayer``), never the replacement itself.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import backport_tool

# Shapes Dynamo sees in the recompile probe: more than the default limit of 8.
SHAPES = 12
# The model the LayerNorm probe built last, for the scoped mode to save.
BUILT: dict[str, Any] = {}
SAVED_MODEL = "layernorm-model.pt"


def inductor_compile_threads() -> bool:
    """Inductor's decision to compile in a worker pool says no, and starts none."""
    from concurrent.futures import Future

    from torch._inductor.async_compile import AsyncCompile, get_compile_threads

    # use_process_pool() is what Inductor asks before it compiles a kernel;
    # the pool it would start is replaced by one that only records the ask.
    asked: list[object] = []

    class RecordingPool:
        def submit(self, task: object) -> Future[object]:
            asked.append(task)
            done: Future[object] = Future()
            done.set_result("ready")
            return done

    real_pool, ready = AsyncCompile.__dict__["process_pool"], AsyncCompile._ready_future
    AsyncCompile.process_pool = staticmethod(RecordingPool)  # type: ignore[assignment,method-assign]
    AsyncCompile._ready_future = None
    try:
        uses_pool = AsyncCompile.use_process_pool()  # type: ignore[no-untyped-call]
    finally:
        AsyncCompile.process_pool = real_pool  # type: ignore[method-assign]
        AsyncCompile._ready_future = ready
    return get_compile_threads() == 1 and not uses_pool and not asked


def dynamo_runtime_env_builtins() -> bool:
    """Capture a function returning a builtin, then build it back into a function."""
    import torch
    from torch._dynamo import convert_frame
    from torch._dynamo.utils import get_metrics_context

    def returns_a_builtin(x: torch.Tensor) -> tuple[torch.Tensor, type]:
        return x + 1, int

    x = torch.ones(3)
    with get_metrics_context():
        captured = convert_frame.fullgraph_capture(returns_a_builtin, (x,), {})
    try:
        rebuilt = captured.forward_callable()
    except RuntimeError as error:
        if "Missing required external references" in str(error):
            return False
        raise
    total, kind = rebuilt(x)
    return kind is int and torch.equal(total, x + 1)


def skip_pre_grad_passes() -> bool:
    """Inductor's compile_fx runs the pre-grad passes (a custom one counts)."""
    import torch
    import torch._inductor.config as inductor_config
    from torch._inductor.compile_fx import compile_fx

    ran: list[int] = []

    def counting_pass(graph: torch.fx.Graph) -> None:
        ran.append(len(graph.nodes))

    def double_relu(x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x) * 2

    def run_graph_as_is(gm: torch.fx.GraphModule, example_inputs: Any, **kwargs: Any) -> Any:
        # Stands in for Inductor's lowering, which this probe does not need.
        return gm

    graph = torch.fx.symbolic_trace(double_relu)
    with inductor_config.patch(pre_grad_custom_pass=counting_pass):
        compile_fx(graph, [torch.randn(4)], inner_compile=run_graph_as_is)
    return not ran


def dynamo_recompile_limit() -> bool:
    """torch.compile recompiles for each new static shape until the limit."""
    import torch

    torch._dynamo.reset()
    compiled_graphs: list[int] = []

    def counting_backend(gm: torch.fx.GraphModule, example_inputs: Any) -> Any:
        compiled_graphs.append(len(example_inputs))
        return gm.forward

    def affine(x: torch.Tensor) -> torch.Tensor:
        return x * 2 + 1

    compiled = torch.compile(affine, backend=counting_backend, dynamic=False)
    for n in range(1, SHAPES + 1):
        compiled(torch.ones(n))
    torch._dynamo.reset()
    return len(compiled_graphs) == SHAPES


def init_empty_weights() -> bool:
    """A module built now holds its parameters on the meta device."""
    import torch

    layer = torch.nn.Linear(4, 3)
    return all(
        isinstance(p, torch.nn.Parameter) and p.device.type == "meta" for p in layer.parameters()
    )


def zero3_linear() -> bool:
    """nn.Linear's forward reaches F.linear, whose output now comes from the Function."""
    import torch

    layer = torch.nn.Linear(4, 3)
    if layer.weight.is_meta:
        # accelerate-init-empty-weights is in force too: give the layer real
        # storage (in place, without registering parameters again).
        layer.to_empty(device="cpu")
        layer.reset_parameters()
    # The first call of F.linear inside a fullgraph region: the Function class
    # must exist by then, for Dynamo cannot trace a class statement.
    x = torch.randn(2, 5, 4)
    try:
        compiled = torch.compile(layer, backend="eager", fullgraph=True)(x)
    except Exception:
        return False
    finally:
        torch._dynamo.reset()
    if not torch.allclose(compiled, torch._C._nn.linear(x, layer.weight, layer.bias)):
        return False
    # ZeRO-3 trains under autocast: there the output is bfloat16 and the
    # weight float32, and the backward must still run and match the builtin's.
    for autocast in (False, True):
        x = torch.randn(2, 5, 4, requires_grad=True)
        for t in (layer.weight, layer.bias):
            t.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            y = layer(x)
        if type(y.grad_fn).__name__ != "LinearForZero3Backward":
            return False
        y.float().sum().backward()
        grads = [t.grad for t in (x, layer.weight, layer.bias)]
        reference = [t.detach().clone().requires_grad_() for t in (x, layer.weight, layer.bias)]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            want_y = torch._C._nn.linear(*reference)
        want_y.float().sum().backward()  # type: ignore[no-untyped-call]
        # bfloat16 keeps 8 bits of mantissa: the two compute in different orders.
        rtol, atol = (1e-2, 1e-2) if autocast else (1e-5, 1e-8)  # allclose's defaults
        if not all(
            got is not None
            and want.grad is not None
            and got.dtype == want.grad.dtype
            and torch.allclose(got, want.grad, rtol=rtol, atol=atol)
            for got, want in zip(grads, reference, strict=True)
        ):
            return False
    return True


def fx_dce_keeps_offload_calls() -> bool:
    """Calls nothing uses, put in a graph as by DeepSpeed's offload pass; then FX DCE runs."""
    import torch

    graph = torch.fx.Graph()
    x = graph.placeholder("x")
    y = graph.call_function(torch.relu, (x,))
    # Free the allocator's cache, then wait for the copies: no node uses either result.
    graph.call_function(torch.cuda.empty_cache, ())
    graph.call_function(torch.cuda.synchronize, ())
    graph.output(y)
    module = torch.fx.GraphModule(torch.nn.Module(), graph)
    module.graph.eliminate_dead_code()
    kept = {node.target for node in module.graph.nodes if node.op == "call_function"}
    return {torch.cuda.empty_cache, torch.cuda.synchronize} <= kept


def layernorm_fp32() -> bool:
    """Norms built by nn.TransformerEncoderLayer and by nn.LayerNorm compute in float32."""
    import torch
    import torch.nn.functional as F
    from torch.utils._python_dispatch import TorchDispatchMode

    # The dtype of each input ATen's native_layer_norm runs on.
    class LayerNormInputs(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()  # type: ignore[no-untyped-call]
            self.dtypes: list[torch.dtype] = []

        def __torch_dispatch__(
            self, func: Any, types: Any, args: Any = (), kwargs: Any = None
        ) -> Any:
            if func is torch.ops.aten.native_layer_norm.default:
                self.dtypes.append(args[0].dtype)
            return func(*args, **(kwargs or {}))

    layer = torch.nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dtype=torch.bfloat16)
    norms = [layer.norm1, torch.nn.LayerNorm(8, dtype=torch.bfloat16)]
    x = torch.randn(3, 8, dtype=torch.bfloat16)
    for norm in norms:
        if norm.weight.is_meta:
            # accelerate-init-empty-weights is in force too: give it storage.
            norm.to_empty(device="cpu")
            norm.reset_parameters()
    BUILT["layernorm"] = layer
    if not all(getattr(norm, "computes_in_fp32", False) for norm in norms):
        return False
    for norm in norms:
        want = F.layer_norm(x.float(), (8,), norm.weight.float(), norm.bias.float(), norm.eps)
        with LayerNormInputs() as seen:
            got = norm(x)
        # What ATen's kernel was given: torch's own CPU kernel already
        # accumulates bfloat16 in float32, so the output alone cannot tell.
        if seen.dtypes != [torch.float32]:
            return False
        if got.dtype != torch.bfloat16 or not torch.equal(got, want.to(torch.bfloat16)):
            return False
    return True


def save_built_model() -> dict[str, Any]:
    """torch.save the layer the LayerNorm probe built last, into the working directory."""
    import torch

    layer = BUILT["layernorm"]
    torch.save(layer, SAVED_MODEL)
    return {
        "path": SAVED_MODEL,
        "computes_in_fp32": getattr(layer.norm1, "computes_in_fp32", False),
    }


PROBES: dict[str, Callable[[], bool]] = {
    "vllm-dynamo-runtime-env-builtins": dynamo_runtime_env_builtins,
    "vllm-inductor-compile-threads": inductor_compile_threads,
    "vllm-skip-pre-grad-passes": skip_pre_grad_passes,
    "unsloth-dynamo-recompile-limit": dynamo_recompile_limit,
    "accelerate-init-empty-weights": init_empty_weights,
    "deepspeed-zero3-linear": zero3_linear,
    "deepspeed-fx-dce-keeps-offload-calls": fx_dce_keeps_offload_calls,
    "unsloth-layernorm-fp32": layernorm_fp32,
}
TARGET_MODULES = (
    "torch._dynamo.convert_frame",
    "torch._dynamo.config",
    "torch._inductor.config",
    "torch._inductor.compile_fx",
    "torch.nn.functional",
    "torch.fx.node",
    "torch.nn.modules.normalization",
    "torch.nn.modules.transformer",
)
IDS = list(PROBES)


def probe_all() -> dict[str, bool]:
    return {backport_id: probe() for backport_id, probe in PROBES.items()}


def statuses() -> dict[str, str]:
    report = backport_tool.current_report()
    assert report is not None
    return {result.id: result.status.value for result in report.results}


def main(mode: str, manifest: str) -> dict[str, Any]:
    out: dict[str, Any] = {"mode": mode}
    if mode == "control":
        out["after"] = probe_all()
    elif mode == "lazy":
        backport_tool.apply(manifest, enable=IDS, subprocesses=False)
        out["torch_imported_at_apply"] = "torch" in sys.modules
        out["after"] = probe_all()  # the probes import the targets' modules
        out["statuses"] = statuses()
    elif mode == "eager":
        backport_tool.apply(manifest, eager=True, enable=IDS, subprocesses=False)
        out["statuses"] = statuses()
        out["after"] = probe_all()
    elif mode == "late":
        import importlib

        for name in TARGET_MODULES:
            importlib.import_module(name)
        out["before"] = probe_all()
        backport_tool.apply(manifest, enable=IDS, subprocesses=False)
        out["statuses"] = statuses()
        out["after"] = probe_all()
    elif mode == "scoped":
        scoped: dict[str, bool] = {}
        for backport_id, probe in PROBES.items():
            with backport_tool.enabled(backport_id, manifest=manifest):
                scoped[backport_id] = probe()
        out["after"] = scoped
        # The layer was built inside its block; it is saved after the block ended.
        out["saved"] = save_built_model()
        out["outside"] = probe_all()  # every block has ended
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
