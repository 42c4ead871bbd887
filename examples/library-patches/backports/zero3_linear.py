"""Route every ``F.linear`` through an autograd Function that owns its backward.

DeepSpeed's ZeRO-3 (``deepspeed/runtime/zero/partition_parameters.py`` and
``linear.py``) replaces ``torch.nn.functional.linear`` while a model is built
and trained under ``zero.Init``: a partitioned weight is gathered only for
the forward, so its gradient must be computed by a Function that saved what
it needs, not by the builtin's autograd node. ``torch.nn.functional.linear``
is the builtin ``torch._C._nn.linear``; backport-tool replaces it at
``torch.nn.functional`` (never in ``torch._C``), where ``nn.Linear.forward``
looks it up.

The Function classes are built once torch's import has finished (in
``after_apply``): apply may run this module while ``import torch`` is still
executing, before ``torch.autograd`` is complete. They must exist before a
``torch.compile(fullgraph=True)`` region first calls ``F.linear``: a class
statement inside the traced code is something Dynamo cannot trace. A device
type other than the CPU and this machine's accelerator gets its class on first
use.
"""

from __future__ import annotations

from typing import Any

_linear: Any = None  # bound by apply to the original
_built: dict[str, Any] = {}


def _linear_function(device_type: str) -> Any:
    # One Function per device type: autocast is per device type, and
    # custom_fwd/custom_bwd must name it. Under autocast the forward's output
    # is in the autocast dtype (bfloat16) while the weight stays float32;
    # custom_bwd runs the backward under the forward's autocast state, so its
    # matmuls cast alike instead of failing on mixed dtypes. DeepSpeed's
    # LinearFunctionForZeroStage3 is decorated the same way for that reason.
    if device_type not in _built:
        import torch

        class LinearForZero3(torch.autograd.Function):
            @staticmethod
            @torch.amp.custom_fwd(device_type=device_type)
            def forward(ctx: Any, input: Any, weight: Any, bias: Any) -> Any:
                ctx.save_for_backward(input, weight, bias)
                return _linear(input, weight, bias)

            @staticmethod
            @torch.amp.custom_bwd(device_type=device_type)
            def backward(ctx: Any, grad_output: Any) -> Any:
                input, weight, bias = ctx.saved_tensors
                grad_input = grad_weight = grad_bias = None
                if ctx.needs_input_grad[0]:
                    grad_input = grad_output.matmul(weight)
                flat_grad = grad_output.reshape(-1, grad_output.shape[-1])
                if ctx.needs_input_grad[1]:
                    grad_weight = flat_grad.t().matmul(input.reshape(-1, input.shape[-1]))
                if bias is not None and ctx.needs_input_grad[2]:
                    grad_bias = flat_grad.sum(0)
                return grad_input, grad_weight, grad_bias

        _built[device_type] = LinearForZero3
    return _built[device_type]


def after_apply() -> None:
    import torch

    _linear_function("cpu")
    accelerator = getattr(torch, "accelerator", None)
    found = accelerator.current_accelerator() if accelerator is not None else None
    if found is not None:
        _linear_function(found.type)


def linear(input, weight, bias=None):  # type: ignore[no-untyped-def]
    return _linear_function(input.device.type).apply(input, weight, bias)
