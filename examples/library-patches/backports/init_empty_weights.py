"""Create module parameters on the meta device, for one block.

accelerate's ``init_empty_weights()`` context manager (used by transformers
when it loads a large model) patches ``nn.Module.register_parameter`` while
the model is built: each parameter is registered as usual, then replaced by
a parameter of the same kind on the meta device, so building the model
allocates no memory for weights that the checkpoint will overwrite.

It is opt-in and meant for ``backport_tool.enabled("accelerate-init-empty-
weights")`` around the construction of a model. Buffers are left where they
are (accelerate's default, ``include_buffers=False``).
"""

from __future__ import annotations

from typing import Any

_register_parameter: Any = None  # bound by apply to the original


def register_parameter(self, name, param):  # type: ignore[no-untyped-def]
    _register_parameter(self, name, param)
    if param is None:
        return
    held = self._parameters[name]
    if held.device.type == "meta":
        return
    # Same class and attributes as the parameter the module asked for; only
    # its storage is gone.
    moved = type(held)(held.detach().to("meta"), requires_grad=held.requires_grad)
    moved.__dict__.update(held.__dict__)
    self._parameters[name] = moved
