"""Declared copies and undeclared references on the real torch 2.11.0."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.torch211

torch = pytest.importorskip("torch")

from helpers import write_patch_set  # noqa: E402

import backport_tool  # noqa: E402
from backport_tool import Status  # noqa: E402

# A wrapper around a function that other Inductor modules copy by name.
CODE_HASH = """
import backport_tool

CALLS = []


def code_hash(code, extra=""):
    CALLS.append(1)
    return backport_tool.original("torch._inductor.codecache:code_hash")(code, extra)
"""

REDUCE_TENSOR = """
import backport_tool


def reduce_tensor(tensor):
    return backport_tool.original("torch.multiprocessing.reductions:reduce_tensor")(tensor)
"""


def manifest(tmp_path: Path, symbol: str, replacement: str, source: str) -> Path:
    backport = {
        "id": "fix",
        "summary": "s",
        "applies_to": ">=2.11,<2.12",
        "module": "backports/fix.py",
        "targets": [{"symbol": symbol, "replacement": replacement}],
    }
    return write_patch_set(tmp_path, [backport], {"fix.py": source})


def test_every_inductor_copy_of_code_hash_runs_the_wrapper(tmp_path: Path) -> None:
    from torch._inductor import codecache, compile_fx, select_algorithm

    from backport_tool.locking import lock

    original = codecache.code_hash
    path = manifest(tmp_path, "torch._inductor.codecache:code_hash", "code_hash", CODE_HASH)
    # Undeclared, the copies torch's own modules hold make check partial.
    checked = backport_tool.check(path).by_id("fix")
    assert checked.status is Status.PARTIAL
    assert "torch._inductor.compile_fx:code_hash" in checked.targets[0].stale_references
    lock(path)  # declares them, read from torch's sources
    try:
        result = backport_tool.apply(path, eager=True).by_id("fix")
        assert result.status is Status.APPLIED, result.reason
        rebound = result.targets[0].rebound
        assert "torch._inductor.compile_fx:code_hash" in rebound
        assert "torch._inductor.select_algorithm:code_hash" in rebound
        wrapper = codecache.code_hash
        copies = [vars(compile_fx)["code_hash"], vars(select_algorithm)["code_hash"]]
        assert copies == [wrapper, wrapper]
        assert copies[0]("x") == original("x")  # no recursion
        assert backport_tool.check(path).by_id("fix").status is Status.APPLIED
    finally:
        backport_tool.revert()
    copies = [vars(compile_fx)["code_hash"], vars(select_algorithm)["code_hash"]]
    assert copies == [original, original]
    assert codecache.code_hash is original


def test_a_pickler_table_entry_is_a_stale_reference(tmp_path: Path) -> None:
    import torch.multiprocessing.reductions  # noqa: F401 - registers the reducers

    path = manifest(
        tmp_path, "torch.multiprocessing.reductions:reduce_tensor", "reduce_tensor", REDUCE_TENSOR
    )
    result = backport_tool.check(path).by_id("fix")
    assert result.status is Status.PARTIAL
    # Named by the class that keys the entry, the same in every process.
    assert (
        "multiprocessing.reduction:ForkingPickler._extra_reducers[<class torch.Tensor>]"
        in result.targets[0].stale_references
    ), result.targets[0].stale_references
