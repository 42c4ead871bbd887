"""Inductor compiles in the calling process, with one thread.

vLLM (``vllm/env_override.py``) sets ``torch._inductor.config.compile_threads
= 1`` at import (vllm#10619: compile worker pools forked from a process that
holds CUDA state and many threads misbehave). Here the setting is a config
target with ``value: 1`` in the manifest, so revert() restores what was there
(the user's value or the default) and check() reports both. This module
holds nothing: the manifest says everything.
"""
