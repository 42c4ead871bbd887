"""A target's ``original:`` key: apply binds the original to a global of the
backport module, so a wrapper calls it as a plain name. Validation and
binding on synthetic target modules; on the real torch 2.11, a wrapper that
calls its original inside ``torch.compile(fullgraph=True)``, and the control:
the look-up by string through ``backport_tool.original()``."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import PatchSet, write_patch_set

import backport_tool
from backport_tool import ManifestError, Status, enabled, state

ALIASED = """
_compute = None
_helper: object


def compute(self, x: int) -> int:
    return _compute(self, x) * 10


def helper(x: int) -> int:
    return _helper(x) + 1


def other(self, x: int) -> int:
    return x + 2000
"""


def aliased(patchset: PatchSet, source: str = ALIASED) -> Path:
    patchset.write_backport("fix.py", source)
    entry = patchset.add("fix", "Widget.compute", "Widget.helper")
    entry["targets"][0]["original"] = "_compute"
    entry["targets"][1]["original"] = "_helper"
    return patchset.write()


def test_apply_binds_the_original_to_the_global_the_wrapper_calls(patchset: PatchSet) -> None:
    manifest = aliased(patchset)
    mod = patchset.target()
    compute = vars(mod.Widget)["compute"]
    helper = vars(mod.Widget)["helper"]
    assert backport_tool.check(manifest).by_id("fix").status is Status.READY
    result = backport_tool.apply(manifest, eager=True).by_id("fix")
    assert result.status is Status.APPLIED, result.reason
    module = sys.modules["_backport_tool_bp_fix"]
    # A staticmethod target: the global holds the function behind it.
    assert module._compute is compute
    assert module._helper is helper.__func__
    assert mod.Widget().compute(1) == 20
    assert mod.Widget.helper(2) == 5
    backport_tool.revert()
    assert vars(mod.Widget)["compute"] is compute
    assert vars(mod.Widget)["helper"] is helper
    # The globals keep the originals after revert: a call already inside a
    # wrapper in another thread still finds them. Applying binds them again.
    assert module._compute is compute
    with enabled("fix", manifest=manifest):
        assert mod.Widget().compute(1) == 20
        assert module._compute is compute
    assert mod.Widget().compute(1) == 2


@pytest.mark.parametrize(
    ("binding", "where"),
    [
        ("def _compute(self, x):\n    return x\n", 0),
        ("_compute = len\n", 0),
        ("from os import path as _compute\n", 0),
        ("def helper2():\n    global _compute\n    _compute = 1\n", 1),
    ],
)
def test_the_module_must_leave_the_name_to_apply(
    patchset: PatchSet, binding: str, where: int
) -> None:
    source = ALIASED + "\n\n" + binding
    line = len(ALIASED.splitlines()) + 3 + where
    assert "_compute" in source.splitlines()[line - 1]
    manifest = aliased(patchset, source)
    mod = patchset.target()
    reason = (
        f"backports/fix.py:{line} binds _compute, the name that original: gives to the original "
        f"of {patchset.sym('Widget.compute')}; apply binds it: leave it unassigned (or "
        "_compute = None, for linters)"
    )
    for report in (backport_tool.check(manifest), backport_tool.apply(manifest, eager=True)):
        result = report.by_id("fix")
        assert result.status is Status.FAILED
        assert result.reason == reason
    assert mod.Widget().compute(1) == 2
    assert backport_tool.applied() == ()


def test_an_original_name_no_function_reads_is_refused(patchset: PatchSet) -> None:
    # original: _comptue, while the wrapper calls _compute (None): the wrapper
    # would fail only when torch calls it.
    patchset.write_backport("fix.py", ALIASED)
    entry = patchset.add("fix", "Widget.compute")
    entry["targets"][0]["original"] = "_comptue"
    manifest = patchset.write()
    mod = patchset.target()
    reason = (
        "original: _comptue is read by no function of backports/fix.py, so "
        "backports/fix.py:compute cannot call the original through it; give original: the "
        "name the code reads"
    )
    for report in (backport_tool.check(manifest), backport_tool.apply(manifest, strict=False)):
        result = report.by_id("fix")
        assert (result.status, result.reason) == (Status.FAILED, reason)
    assert mod.Widget().compute(1) == 2
    # A helper, a method or a decorated function that reads it is a reader.
    for reader in (
        "def call(*a):\n    return _comptue(*a)\n",
        "class Calls:\n    @staticmethod\n    def call(*a):\n        return _comptue(*a)\n",
        "import functools\n\n\n@functools.lru_cache\ndef call(a):\n    return _comptue(a)\n",
    ):
        patchset.write_backport("fix.py", ALIASED + "\n\n" + reader)
        state.reset()
        assert backport_tool.check(patchset.write()).by_id("fix").status is Status.READY


def test_the_replacement_must_be_a_function_of_the_backport_module(patchset: PatchSet) -> None:
    patchset.write_backport(
        "fix.py", f"from {patchset.module} import Base\n\ncompute = Base.inherited\n"
    )
    entry = patchset.add("fix", "Widget.compute")
    entry["targets"][0]["original"] = "_compute"
    result = backport_tool.apply(patchset.write(), eager=True).by_id("fix")
    assert result.status is Status.FAILED
    assert result.reason == (
        "original: _compute is bound in backports/fix.py, but backports/fix.py:compute is not a "
        "function of that module, so it cannot read it; call "
        f"backport_tool.original({patchset.sym('Widget.compute')!r}) instead"
    )


def test_two_backports_of_one_module_cannot_share_a_name(patchset: PatchSet) -> None:
    patchset.write_backport("fix.py", ALIASED.replace("_helper", "_compute"))
    one = patchset.add("one", "Widget.compute")
    two = patchset.add("two", "Widget.other")
    one["targets"][0]["original"] = two["targets"][0]["original"] = "_compute"
    manifest = patchset.write()
    mod = patchset.target()
    report = backport_tool.apply(manifest, eager=True)
    assert report.by_id("one").status is Status.APPLIED
    assert report.by_id("two").status is Status.FAILED
    assert report.by_id("two").reason == (
        "patching failed, nothing changed: PatchConflict: the original of "
        f"{patchset.sym('Widget.other')} goes "
        "to '_compute' of the backport module, which holds an original of backport 'one'"
    )
    assert mod.Widget().other(1) == 3


def manifest_error(tmp_path: Path, *targets: dict[str, Any]) -> str:
    entry = {
        "id": "x",
        "summary": "s",
        "applies_to": ">=1",
        "module": "backports/fix.py",
        "targets": list(targets),
    }
    path = write_patch_set(tmp_path, [entry], {"fix.py": ""})
    with pytest.raises(ManifestError) as caught:
        backport_tool.load_manifest(path)
    return "\n".join(caught.value.problems)


@pytest.mark.parametrize(
    ("original", "message"),
    [
        (1, "expected a string, got an integer 1"),
        ("not valid", "expected a Python identifier, the global of the backport module that "),
        ("class", "got 'class'"),
        ("__name__", "(not a dunder or a hook name), got '__name__'"),
        ("after_apply", "(not a dunder or a hook name), got 'after_apply'"),
        ("f", "expected another name than the replacement's, got 'f'"),
    ],
)
def test_an_original_name_that_cannot_be_bound_is_invalid(
    tmp_path: Path, original: object, message: str
) -> None:
    problems = manifest_error(tmp_path, {"symbol": "m:f", "replacement": "f", "original": original})
    assert "backports[0].targets[0].original: " in problems
    assert message in problems


def test_each_target_binds_its_own_name_and_never_a_replacement(tmp_path: Path) -> None:
    problems = manifest_error(
        tmp_path,
        {"symbol": "m:f", "replacement": "f", "original": "_f"},
        {"symbol": "m:g", "replacement": "g", "original": "_f"},
        {"symbol": "m:h", "replacement": "h", "original": "g"},
    )
    assert re.search(
        r"targets\[1\]\.original: '_f' is already the original of \S+targets\[0\]; give each "
        "target its own name",
        problems,
    )
    assert "targets[2].original: 'g' is the replacement of another target" in problems
    problems = manifest_error(
        tmp_path, {"symbol": "m:i", "replacement": "i", "original": "_i", "create": True}
    )
    assert "targets[0].original: a created attribute has no original to bind" in problems


# --- real torch 2.11 --------------------------------------------------------------

RMS_NORM = "torch.nn.functional:rms_norm"

# Dynamo inlines torch.nn.functional.rms_norm (a Python function); what the
# wrapper adds shows in the result: twice the norm.
BY_GLOBAL = """
_rms_norm = None


def rms_norm(input, normalized_shape, weight=None, eps=None):
    return _rms_norm(input, normalized_shape, weight, eps) * 2
"""

BY_STRING = """
import backport_tool


def rms_norm(input, normalized_shape, weight=None, eps=None):
    original = backport_tool.original("torch.nn.functional:rms_norm")
    return original(input, normalized_shape, weight, eps) * 2
"""

# What original() did before: the look-up under the patch lock.
UNDER_THE_LOCK = """
from backport_tool.state import STATE


def rms_norm(input, normalized_shape, weight=None, eps=None):
    with STATE.patch_lock:
        original = STATE.originals["torch.nn.functional:rms_norm"]
    return original(input, normalized_shape, weight, eps) * 2
"""


def torch_manifest(
    tmp_path: Path,
    backport_id: str,
    source: str,
    *,
    symbol: str = RMS_NORM,
    original: str | None = None,
) -> Path:
    # One id per backport module: Dynamo's guards find a module again by its
    # name, and a second module of one name (after a state reset) would be
    # found in place of the first.
    target = {"symbol": symbol, "replacement": symbol.rpartition(":")[2]}
    if original is not None:
        target["original"] = original
    entry = {
        "id": backport_id,
        "summary": "a wrapper that calls its original",
        "applies_to": ">=2.11.0,<2.12",
        "module": "backports/wrap.py",
        "targets": [target],
    }
    return write_patch_set(tmp_path, [entry], {"wrap.py": source})


@pytest.fixture
def torch211() -> Iterator[Any]:
    torch = pytest.importorskip("torch")
    torch._dynamo.reset()
    yield torch
    backport_tool.revert()
    torch._dynamo.reset()


def graphs_of(torch: Any, fn: Callable[..., Any], *args: Any) -> tuple[Any, list[str]]:
    """Run ``fn`` compiled with fullgraph=True; the code of each FX graph."""
    codes: list[str] = []

    def backend(gm: Any, example_inputs: Any) -> Any:
        codes.append(gm.code)
        return gm.forward

    return torch.compile(fn, fullgraph=True, backend=backend)(*args), codes


def normed_plus_one(x: Any) -> Any:
    import torch.nn.functional as F

    return F.rms_norm(x, (4,)) + 1


@pytest.mark.torch211
def test_a_wrapper_calling_its_original_global_compiles_with_fullgraph(
    torch211: Any, tmp_path: Path
) -> None:
    torch = torch211
    manifest = torch_manifest(tmp_path, "by-global", BY_GLOBAL, original="_rms_norm")
    x = torch.randn(2, 4)
    plain = torch.rms_norm(x, (4,))
    result = backport_tool.apply(manifest, eager=True).by_id("by-global")
    assert result.status is Status.APPLIED, result.reason
    out, codes = graphs_of(torch, normed_plus_one, x)
    torch.testing.assert_close(out, plain * 2 + 1)
    # One graph: Dynamo traced through the wrapper into the original.
    assert len(codes) == 1
    assert "torch.rms_norm(l_x_, (4,), None, None)" in codes[0]
    assert "rms_norm * 2" in codes[0]
    # Inductor, the default backend, compiles it the same way.
    torch._dynamo.reset()
    compiled = torch.compile(normed_plus_one, fullgraph=True)
    torch.testing.assert_close(compiled(x), plain * 2 + 1)
    backport_tool.revert()
    # Dynamo guards on the target: reverted, the compiled function recompiles.
    torch.testing.assert_close(compiled(x), plain + 1)


@pytest.mark.torch211
def test_a_compiled_function_sees_the_wrapper_only_inside_an_enabled_block(
    torch211: Any, tmp_path: Path
) -> None:
    torch = torch211
    manifest = torch_manifest(tmp_path, "by-global-scoped", BY_GLOBAL, original="_rms_norm")
    x = torch.randn(2, 4)
    plain = torch.rms_norm(x, (4,))
    codes: list[str] = []

    def backend(gm: Any, example_inputs: Any) -> Any:
        codes.append(gm.code)
        return gm.forward

    compiled = torch.compile(normed_plus_one, fullgraph=True, backend=backend)
    with enabled("by-global-scoped", manifest=manifest):
        torch.testing.assert_close(compiled(x), plain * 2 + 1)
    torch.testing.assert_close(compiled(x), plain + 1)
    with enabled("by-global-scoped", manifest=manifest):
        torch.testing.assert_close(compiled(x), plain * 2 + 1)
    # One graph with the wrapper, one without; each reused when it holds again.
    assert len(codes) == 2


@pytest.mark.torch211
def test_control_the_look_up_by_string_compiles_the_look_up_under_a_lock_does_not(
    torch211: Any, tmp_path: Path
) -> None:
    torch = torch211
    x = torch.randn(2, 4)
    plain = torch.rms_norm(x, (4,))
    # original() reads a snapshot without a lock: Dynamo inlines it, and
    # guards on backport-tool's own objects too (the module, STATE, the entry).
    backport_tool.apply(torch_manifest(tmp_path, "by-string", BY_STRING), eager=True)
    out, codes = graphs_of(torch, normed_plus_one, x)
    torch.testing.assert_close(out, plain * 2 + 1)
    assert len(codes) == 1
    backport_tool.revert()
    # A look-up under the patch lock, as original() did before: fullgraph fails.
    torch._dynamo.reset()
    locked = torch_manifest(tmp_path / "lock", "under-the-lock", UNDER_THE_LOCK)
    assert backport_tool.apply(locked, eager=True).by_id("under-the-lock").status is Status.APPLIED
    with pytest.raises(
        torch._dynamo.exc.Unsupported, match="Dynamo does not know how to enter a `RLock`"
    ):
        graphs_of(torch, normed_plus_one, x)


RELU = """
_relu = None


def relu(input, inplace=False):
    return _relu(input, inplace) * 2
"""


@pytest.mark.torch211
def test_a_target_dynamo_records_as_a_torch_call_runs_its_wrapper_twice(
    torch211: Any, tmp_path: Path
) -> None:
    # A limitation of torch, documented in docs/manifest.md: Dynamo records
    # a call to relu's original in the graph, and the graph's code names it
    # by its import path, torch.nn.functional.relu, which is the wrapper
    # while the backport is applied.
    torch = torch211
    import torch.nn.functional as F
    from torch._dynamo import trace_rules

    trace_rules.get_torch_obj_rule_map()  # built already, as after any earlier compile
    manifest = torch_manifest(
        tmp_path, "relu-twice", RELU, symbol="torch.nn.functional:relu", original="_relu"
    )
    assert backport_tool.apply(manifest, eager=True).by_id("relu-twice").status is Status.APPLIED
    x = torch.tensor([-1.0, 2.0])
    assert F.relu(x).tolist() == [0.0, 4.0]
    out, codes = graphs_of(torch, lambda t: F.relu(t) + 1, x)
    assert "torch.nn.functional.relu(l_t_, False)" in codes[0]
    assert out.tolist() == [1.0, 9.0]  # relu(2) * 2 * 2 + 1
