"""Skip Inductor's pre-grad passes while vLLM compiles (torch 2.11).

vLLM (``vllm/compilation/compiler_interface.py``, vllm#34092) replaces
``torch._inductor.compile_fx._recursive_pre_grad_passes`` with the identity
around its own compile call: in torch 2.11 the pre-grad passes run before the
FX-graph cache is looked up, so a cache hit still pays for them (about a
second on a 70B model), and they change nothing in vLLM's graphs. torch 2.12
runs them after the lookup (pytorch#176529), and vLLM drops the patch there
(vllm#38944).

It is opt-in: a process-wide apply() would turn the passes off for every
compile, where vLLM only turns them off for its own. Put it in force for one
block with ``backport_tool.enabled("vllm-skip-pre-grad-passes")``.
"""

from __future__ import annotations

from typing import Any


def _recursive_pre_grad_passes(gm: Any, example_inputs: Any) -> Any:
    """The graph, unchanged: no pre-grad pass runs (custom ones included)."""
    return gm
