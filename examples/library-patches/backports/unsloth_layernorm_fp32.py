"""``nn.LayerNorm`` normalizes in float32 and returns the input's dtype.

unsloth (``patch_layernorm`` in unsloth-zoo's ``unsloth_zoo/patching_utils.py``,
called from ``unsloth/kernels/layernorm.py``) sets ``torch.nn.LayerNorm`` to a
subclass whose forward runs its own kernel, which loads the input, weight and
bias as float32, normalizes, and stores the result in the input's dtype (as
torchtune's ``Fp32LayerNorm`` does). Here the subclass does the same with
``F.layer_norm``, so half-precision models normalize in float32.

It is a class target: apply replaces the class at
``torch.nn.modules.normalization`` and at the copies the manifest declares
(``torch.nn``, ``torch.nn.modules``, and ``torch.nn.modules.transformer``,
where ``TransformerEncoderLayer`` builds its norms), so a model built while it
is in force holds instances of this class; one built before, or after the end
of an ``enabled()`` block, holds torch's. It is opt-in: put it in force around
building the model. A model saved with ``torch.save`` pickles its norms as
``torch.nn.modules.normalization.LayerNorm`` and loads anywhere, with or
without this patch set.

The original is imported from its own module: lazy apply runs this module
while ``import torch`` is still executing, before ``torch.nn`` is set.
"""

from __future__ import annotations

from typing import Any

from torch.nn import functional as F
from torch.nn.modules.normalization import LayerNorm as _LayerNorm


class LayerNorm(_LayerNorm):
    """A LayerNorm that computes in float32 and casts its result back."""

    computes_in_fp32 = True  # says which class built a module, for callers and tests

    def forward(self, input: Any) -> Any:
        weight = None if self.weight is None else self.weight.float()
        bias = None if self.bias is None else self.bias.float()
        out = F.layer_norm(input.float(), self.normalized_shape, weight, bias, self.eps)
        return out.to(input.dtype)
