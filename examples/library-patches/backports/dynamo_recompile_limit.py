"""Let Dynamo recompile a function up to 1024 times before it gives up.

unsloth (``patch_torch_compile`` in unsloth-zoo's
``unsloth_zoo/patching_utils.py``, which unsloth calls) raises Dynamo's
``cache_size_limit`` to 1024: its compiled kernels see many shapes and
dtypes, and at the default limit of 8 Dynamo stops compiling the function and
runs it eagerly. The manifest names the option by that alias;
``cache_size_limit`` and ``recompile_limit`` are one setting, so this is the
limit Dynamo reads.
"""

RECOMPILE_LIMIT = 1024
