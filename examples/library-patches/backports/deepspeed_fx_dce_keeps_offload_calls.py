"""FX dead-code elimination keeps the accelerator calls DeepSpeed puts in a graph.

DeepSpeed's DeepCompile offloads optimizer state during a compiled step: its
pass inserts into the graph calls whose results nothing uses, such as freeing
the allocator's cache (``empty_cache``) and waiting for the copies
(``synchronize``). FX's ``eliminate_dead_code`` drops every such call unless
its target is in ``torch.fx.node._side_effectful_functions``, the set
``Node.is_impure`` reads; so DeepSpeed adds the ops it inserts to that set
when it defines them (``register_offload_ops`` in
``deepspeed/compile/passes/offload_adam_states.py``).

Here the manifest adds the accelerator calls those ops wrap, by their
defining modules (a registry target with ``add:``): apply puts them in
torch's set in place, and revert() takes out exactly what it added. This
module holds nothing.

DeepSpeed's own ``dc::`` ops are created inside a function while it compiles.
An entry must name an object that exists when ``torch.fx.node`` is imported,
inside ``import torch`` under a lazy apply (too early for ``torch.library``,
which needs ``torch.ops``), or a module global of a module imported later,
which apply waits for: ops defined at the top of a library module
(``mylib.ops:RELOAD_OPT``) can be entries, ops made in a function cannot.
"""
