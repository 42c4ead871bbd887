"""Targets whose original is C code, on the real torch 2.11.0 (CPU): the
builtin ``torch.nn.functional.linear`` wrapped by a replacement that calls
it, and ``nn.Module.__init_subclass__``, a classmethod inherited from
``object``, replaced by a classmethod. Also classmethod and staticmethod
replacements of Python originals."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import PatchSet, write_patch_set

import backport_tool
from backport_tool import Presence, Status

torch = pytest.importorskip("torch")

torch211 = pytest.mark.torch211

LINEAR = "torch.nn.functional:linear"
INIT_SUBCLASS = "torch.nn.modules.module:Module.__init_subclass__"
REDUCE_EX_TARGET = "torch.nn.modules.module:Module.__reduce_ex__"


def entry(backport_id: str, module: str, *targets: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": backport_id,
        "summary": f"test {backport_id}",
        "applies_to": ">=2.11.0,<2.12",
        "module": f"backports/{module}",
        "targets": list(targets),
    }


def subclass(name: str, base: type, tag: str | None = None, **body: Any) -> type:
    """``class NAME(BASE, tag=TAG)`` with ``body`` as its namespace."""
    keywords = {} if tag is None else {"tag": tag}
    return types.new_class(name, (base,), keywords, lambda namespace: namespace.update(body))


def backport_module(backport_id: str) -> Any:
    return sys.modules["_backport_tool_bp_" + backport_id.replace("-", "_")]


COUNT_LINEAR = """
CALLS = []
_linear = None  # bound by apply to the original


def linear(input, weight, bias=None):
    CALLS.append(tuple(input.shape))
    return _linear(input, weight, bias)
"""


def linear_manifest(tmp_path: Path, backport_id: str, **target: Any) -> Path:
    return write_patch_set(
        tmp_path,
        [
            entry(
                backport_id,
                "count_linear.py",
                {"symbol": LINEAR, "replacement": "linear", "original": "_linear", **target},
            )
        ],
        {"count_linear.py": COUNT_LINEAR},
    )


def run_linear(calls: list[tuple[int, ...]]) -> int:
    """Run an nn.Linear; how many calls the wrapper counted for it."""
    layer = torch.nn.Linear(4, 3)
    x = torch.randn(2, 4)
    before = len(calls)
    expected = torch._C._nn.linear(x, layer.weight, layer.bias)
    assert torch.equal(layer(x), expected)
    return len(calls) - before


@torch211
def test_check_reports_a_builtin_found_and_says_what_it_cannot_compare(tmp_path: Path) -> None:
    path = linear_manifest(tmp_path, "count-linear-check")
    checked = backport_tool.check(path).by_id("count-linear-check")
    assert checked.status is Status.READY, checked.reason
    (report,) = checked.targets
    assert report.presence is Presence.FOUND
    assert report.actual_signature is None  # linear has no text signature
    assert report.actual_fingerprint is None
    assert report.note == (
        f"{LINEAR} is C code, with no Python source to fingerprint, no text signature and no "
        "declared signature: the drift check of this target is limited to presence"
    )
    assert checked.reason == f"would apply: targets found; {report.note}"
    assert report.to_dict()["note"] == report.note
    # The control: check applies nothing, and nn.Linear does not reach the wrapper.
    assert run_linear(backport_module("count-linear-check").CALLS) == 0
    assert torch.nn.functional.linear is torch._C._nn.linear


@torch211
def test_a_declared_signature_of_a_builtin_fits_the_replacement(tmp_path: Path) -> None:
    path = linear_manifest(
        tmp_path, "count-linear-declared", signature="(input, weight, bias=None)"
    )
    checked = backport_tool.check(path).by_id("count-linear-declared")
    assert checked.status is Status.READY, checked.reason
    assert "signatures match" not in checked.reason  # nothing to compare it with
    assert checked.targets[0].note is not None
    assert "the declared signature is what the replacement must fit" in checked.targets[0].note
    # A replacement that does not take what the declared signature does fails.
    path = linear_manifest(
        tmp_path, "count-linear-declared", signature="(input, weight, bias=None, *, scale=1.0)"
    )
    checked = backport_tool.check(path).by_id("count-linear-declared")
    assert checked.status is Status.FAILED
    assert checked.reason.endswith(
        "cannot replace torch.nn.functional:linear: it has no keyword parameter 'scale', "
        "callers may pass scale="
    )


@torch211
def test_eager_apply_of_a_builtin_wrapper_and_revert(tmp_path: Path) -> None:
    builtin = torch._C._nn.linear
    path = linear_manifest(tmp_path, "count-linear-eager")
    result = backport_tool.apply(path, eager=True).by_id("count-linear-eager")
    assert result.status is Status.APPLIED, result.reason
    calls = backport_module("count-linear-eager").CALLS
    assert run_linear(calls) == 1
    assert torch._C._nn.linear is builtin  # torch._C is never changed
    checked = backport_tool.check(path).by_id("count-linear-eager")
    assert checked.status is Status.APPLIED, checked.reason
    assert checked.targets[0].presence is Presence.FOUND
    assert "limited to presence" in checked.reason
    backport_tool.revert()
    assert torch.nn.functional.linear is builtin
    assert run_linear(calls) == 0


@torch211
def test_lazy_apply_of_a_builtin_wrapper_after_the_module_was_used(tmp_path: Path) -> None:
    # torch.nn.functional was imported (and used) long before: the lazy
    # apply() puts the wrapper in force at once.
    builtin = torch._C._nn.linear
    torch.nn.Linear(4, 3)(torch.randn(2, 4))
    path = linear_manifest(tmp_path, "count-linear-lazy")
    report = backport_tool.apply(path, subprocesses=False)
    result = report.by_id("count-linear-lazy")
    assert result.status is Status.APPLIED, result.reason
    calls = backport_module("count-linear-lazy").CALLS
    assert run_linear(calls) == 1
    backport_tool.revert()
    assert torch.nn.functional.linear is builtin
    assert run_linear(calls) == 0


@torch211
def test_lazy_apply_before_import_torch(tmp_path: Path) -> None:
    path = linear_manifest(tmp_path, "count-linear-startup")
    program = tmp_path / "prog.py"
    program.write_text(
        textwrap.dedent(
            f"""
            import json, sys
            import backport_tool

            backport_tool.apply({str(path)!r}, subprocesses=False)
            assert "torch" not in sys.modules
            import torch

            builtin = torch._C._nn.linear
            status = backport_tool.current_report().by_id("count-linear-startup").status.value
            wrapper = sys.modules["_backport_tool_bp_count_linear_startup"]
            torch.nn.Linear(4, 3)(torch.randn(2, 4))
            during = len(wrapper.CALLS)
            backport_tool.revert()
            torch.nn.Linear(4, 3)(torch.randn(2, 4))
            print(json.dumps([status, during, len(wrapper.CALLS),
                              torch.nn.functional.linear is builtin]))
            """
        )
    )
    environ = dict(os.environ)
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [environ.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, str(program)],
        capture_output=True,
        text=True,
        env=environ,
        timeout=600,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == '["applied", 1, 1, true]'


REDUCE_EX = """
def reduce_ex(self, protocol, /):
    return object.__reduce_ex__(self, protocol)
"""


@torch211
def test_a_builtin_with_a_text_signature_is_compared(tmp_path: Path) -> None:
    # object.__reduce_ex__, a method of a C type, inherited by nn.Module.
    def check(signature: str) -> backport_tool.BackportResult:
        target = {"symbol": REDUCE_EX_TARGET, "replacement": "reduce_ex", "signature": signature}
        path = write_patch_set(
            tmp_path, [entry("reduce-ex", "reduce_ex.py", target)], {"reduce_ex.py": REDUCE_EX}
        )
        return backport_tool.check(path).by_id("reduce-ex")

    same = check("(self, protocol, /)")
    assert same.status is Status.READY, same.reason
    assert same.targets[0].actual_signature == "(self, protocol, /)"
    assert same.targets[0].defined_on == "builtins:object"
    assert same.targets[0].note == (
        f"{REDUCE_EX_TARGET} is C code, with no Python source to fingerprint; its text "
        "signature is compared"
    )
    assert same.reason.startswith("would apply: targets found, signatures match; ")
    drifted = check("(self, protocol, extra, /)")
    assert drifted.status is Status.DRIFT
    assert drifted.reason.startswith(
        f"target {REDUCE_EX_TARGET} has signature (self, protocol, /), the backport expects "
        "(self, protocol, extra, /)"
    )


@torch211
def test_a_method_of_an_immutable_c_type_is_refused_by_check(tmp_path: Path) -> None:
    # torch.Size's attributes cannot be set: check says so, not only apply.
    target = {"symbol": "torch:Size.__getitem__", "replacement": "getitem"}
    source = "def getitem(self, key, /):\n    return tuple.__getitem__(self, key)\n"
    path = write_patch_set(
        tmp_path, [entry("size-getitem", "getitem.py", target)], {"getitem.py": source}
    )
    reason = (
        "target torch:Size.__getitem__: torch.Size is an immutable type (C code), whose "
        "attributes cannot be set; target a Python class or module that exposes it instead"
    )
    for report in (backport_tool.check(path), backport_tool.apply(path, eager=True)):
        result = report.by_id("size-getitem")
        assert (result.status, result.reason) == (Status.FAILED, reason)


ADD = """

def add(*args, **kwargs):
    import torch

    return torch._C._VariableFunctions.add(*args, **kwargs)
"""


@torch211
def test_lock_records_a_text_signature_and_no_fingerprint(tmp_path: Path) -> None:
    pytest.importorskip("ruamel.yaml")
    path = write_patch_set(
        tmp_path,
        [
            entry(
                "builtins",
                "both.py",
                {"symbol": LINEAR, "replacement": "linear"},
                {"symbol": REDUCE_EX_TARGET, "replacement": "reduce_ex"},
                {"symbol": "torch:add", "replacement": "add"},
            )
        ],
        {
            "both.py": COUNT_LINEAR.replace("_linear(", "__import__('torch')._C._nn.linear(")
            + REDUCE_EX
            + ADD
        },
    )
    entries = {e.symbol: e for e in backport_tool.lock(path)}
    assert entries[LINEAR].action.value == "unchanged"
    assert entries[LINEAR].detail == (
        "found (2.11.0); no fingerprint: it is C code, with no Python source; no text "
        "signature either, so check compares its presence"
    )
    assert entries[REDUCE_EX_TARGET].action.value == "updated"
    assert entries[REDUCE_EX_TARGET].detail == (
        "signature (self, protocol, /); no fingerprint: it is C code, with no Python source; "
        f"copies not searched: cannot search the copies of {REDUCE_EX_TARGET}: "
        "torch.nn.modules.module:Module inherits '__reduce_ex__' from object, which is "
        "compiled code that static reads cannot see"
    )
    targets = yaml.safe_load(path.read_text())["backports"][0]["targets"]
    assert targets == [
        {"symbol": LINEAR, "replacement": "linear"},
        {
            "symbol": REDUCE_EX_TARGET,
            "replacement": "reduce_ex",
            "signature": "(self, protocol, /)",
        },
        # torch.add is defined in torch._C._VariableFunctions, which apply
        # never changes: no copy there, unlike torch._numpy's `from torch import add`.
        {
            "symbol": "torch:add",
            "replacement": "add",
            "copies": ["torch._numpy._binary_ufuncs_impl:add"],
        },
    ]
    assert backport_tool.check(path).by_id("builtins").status is Status.READY


@torch211
def test_static_reads_cannot_see_c_code(tmp_path: Path) -> None:
    site = Path(torch.__file__).parent.parent
    path = write_patch_set(
        tmp_path,
        [
            entry("linear-static", "count_linear.py", {"symbol": LINEAR, "replacement": "linear"}),
            entry(
                "subclass-static",
                "subclasses.py",
                {"symbol": INIT_SUBCLASS, "replacement": "__init_subclass__"},
            ),
        ],
        {"count_linear.py": COUNT_LINEAR, "subclasses.py": SUBCLASSES},
    )
    report = backport_tool.check(path, source=str(site))
    linear = report.by_id("linear-static")
    assert linear.status is Status.READY, linear.reason
    assert linear.targets[0].presence is Presence.UNKNOWN
    assert linear.reason == (
        f"would apply: 0 of 1 targets found, {LINEAR} not readable from source "
        "(torch.nn.functional binds torch._C._nn.linear, and torch._C._nn.linear is compiled "
        "code (only its stub torch/_C/_nn.pyi is Python text), which static reads cannot see)"
    )
    subclass = report.by_id("subclass-static")
    assert subclass.targets[0].presence is Presence.UNKNOWN
    assert subclass.reason.endswith(
        "(torch.nn.modules.module:Module inherits '__init_subclass__' from object, which is "
        "compiled code that static reads cannot see)"
    )
    # The matrix reads the same way.
    (cells,) = backport_tool.build_matrix([str(site)], path).cells
    for backport_id in ("linear-static", "subclass-static"):
        cell = cells[backport_id]
        assert cell.result.reason == report.by_id(backport_id).reason
        assert cell.drift == ()


SUBCLASSES = """
SEEN = []


@classmethod
def __init_subclass__(cls, tag=None, **kwargs):
    SEEN.append((cls.__name__, tag))
    super().__init_subclass__(**kwargs)
"""

SUBCLASSES_ORIGINAL = """
SEEN = []
_init_subclass = None  # bound by apply to object.__init_subclass__


@classmethod
def __init_subclass__(cls, tag=None, **kwargs):
    SEEN.append((cls.__name__, tag))
    _init_subclass(cls, **kwargs)
"""

PLAIN = """
def __init_subclass__(cls, **kwargs):
    pass
"""


@torch211
@pytest.mark.parametrize("source", [SUBCLASSES, SUBCLASSES_ORIGINAL], ids=["super", "original"])
def test_a_classmethod_replaces_an_inherited_builtin_classmethod(
    tmp_path: Path, source: str
) -> None:
    module = torch.nn.Module
    assert "__init_subclass__" not in vars(module)
    target: dict[str, Any] = {"symbol": INIT_SUBCLASS, "replacement": "__init_subclass__"}
    if source is SUBCLASSES_ORIGINAL:
        target["original"] = "_init_subclass"
    path = write_patch_set(
        tmp_path, [entry("record-subclasses", "subclasses.py", target)], {"subclasses.py": source}
    )
    checked = backport_tool.check(path).by_id("record-subclasses")
    assert checked.status is Status.READY, checked.reason
    assert checked.targets[0].defined_on == "builtins:object"
    assert "limited to presence" in (checked.targets[0].note or "")
    result = backport_tool.apply(path, eager=True).by_id("record-subclasses")
    assert result.status is Status.APPLIED, result.reason
    seen = backport_module("record-subclasses").SEEN
    try:
        subclass("Plain", module)
        tagged = subclass("Tagged", module, tag="zero3", forward=lambda self, x: x * 2)
        deeper = subclass("Deeper", torch.nn.Linear)
        assert seen == [("Plain", None), ("Tagged", "zero3"), ("Deeper", None)]
        # The subclasses still work as modules.
        assert torch.equal(tagged()(torch.ones(2)), torch.full((2,), 2.0))
        assert deeper(4, 3)(torch.randn(2, 4)).shape == (2, 3)
        assert isinstance(vars(module)["__init_subclass__"], classmethod)
        again = backport_tool.check(path).by_id("record-subclasses")
        assert again.status is Status.APPLIED, again.reason
    finally:
        backport_tool.revert()
    assert "__init_subclass__" not in vars(module)
    inherited = next(
        vars(k)["__init_subclass__"] for k in module.__mro__ if "__init_subclass__" in vars(k)
    )
    assert inherited is vars(object)["__init_subclass__"]

    subclass("After", module)
    assert [name for name, _ in seen] == ["Plain", "Tagged", "Deeper"]
    with pytest.raises(TypeError):
        subclass("Refused", module, tag="x")


@torch211
def test_a_plain_function_for_a_builtin_classmethod_is_refused(tmp_path: Path) -> None:
    target = {"symbol": INIT_SUBCLASS, "replacement": "__init_subclass__"}
    path = write_patch_set(
        tmp_path, [entry("plain-subclass", "plain.py", target)], {"plain.py": PLAIN}
    )
    reason = (
        f"backports/plain.py:__init_subclass__ is a plain function, and the original "
        f"{INIT_SUBCLASS} is a classmethod of C code (on builtins:object); set on the class, a "
        "plain function would not receive the class: define the replacement with @classmethod"
    )
    for report in (backport_tool.check(path), backport_tool.apply(path, eager=True)):
        result = report.by_id("plain-subclass")
        assert (result.status, result.reason) == (Status.FAILED, reason)
    assert "__init_subclass__" not in vars(torch.nn.Module)
    subclass("StillWorks", torch.nn.Module)


KINDS_TARGET = """
class Widget:
    @classmethod
    def make(cls, x):
        return (cls.__name__, x)

    @staticmethod
    def helper(x):
        return x * 2

    def method(self, x):
        return x
"""

KINDS_FIX = """
@classmethod
def make(cls, x):
    return (cls.__name__, x * 10)


@staticmethod
def helper(x):
    return x * 20


@classmethod
def method(cls, x):
    return x
"""


def test_classmethod_and_staticmethod_objects_replace_their_kind(patchset: PatchSet) -> None:
    (patchset.site / f"{patchset.module}.py").write_text(KINDS_TARGET)
    patchset.write_backport("fix.py", KINDS_FIX)
    patchset.add("fix", "Widget.make", "Widget.helper")
    module = patchset.target()
    make, helper = vars(module.Widget)["make"], vars(module.Widget)["helper"]
    manifest_path = patchset.write()
    checked = backport_tool.check(manifest_path).by_id("fix")
    assert checked.status is Status.READY, checked.reason
    result = backport_tool.apply(manifest_path, eager=True).by_id("fix")
    assert result.status is Status.APPLIED, result.reason

    class Sub(module.Widget):  # type: ignore[name-defined,misc]
        pass

    assert Sub.make(2) == ("Sub", 20)
    assert module.Widget().helper(2) == module.Widget.helper(2) == 40
    # Installed as written: never a classmethod of a classmethod.
    assert isinstance(vars(module.Widget)["make"], classmethod)
    assert not isinstance(vars(module.Widget)["make"].__func__, classmethod)
    backport_tool.revert()
    assert vars(module.Widget)["make"] is make
    assert vars(module.Widget)["helper"] is helper


def test_a_replacement_of_another_kind_is_refused(patchset: PatchSet) -> None:
    (patchset.site / f"{patchset.module}.py").write_text(KINDS_TARGET)
    patchset.write_backport(
        "fix.py", KINDS_FIX.replace("@staticmethod\ndef helper", "@classmethod\ndef helper")
    )
    patchset.add("one", "Widget.helper")
    patchset.add("two", "Widget.method")
    report = backport_tool.check(patchset.write())
    assert report.by_id("one").status is Status.FAILED
    assert report.by_id("one").reason == (
        f"backports/fix.py:helper is a classmethod, and the original {patchset.module}:"
        "Widget.helper is a staticmethod; define the replacement as the original is defined"
    )
    assert report.by_id("two").reason == (
        f"backports/fix.py:method is a classmethod, and the original {patchset.module}:"
        "Widget.method is neither a classmethod nor a staticmethod; define the replacement as "
        "the original is defined"
    )


@torch211
def test_enabled_scopes_of_builtin_targets(tmp_path: Path) -> None:
    # DeepSpeed's ZeRO-3 puts both in force while it builds a model.
    builtin = torch._C._nn.linear
    path = write_patch_set(
        tmp_path,
        [
            entry(
                "zero3-hooks",
                "zero3.py",
                {"symbol": LINEAR, "replacement": "linear", "original": "_linear"},
                {"symbol": INIT_SUBCLASS, "replacement": "__init_subclass__"},
            )
        ],
        {"zero3.py": COUNT_LINEAR + SUBCLASSES},
    )
    for _ in range(2):  # the second scope patches what the first verified
        with backport_tool.enabled("zero3-hooks", manifest=path) as result:
            assert result.status is Status.APPLIED, result.reason
            module = backport_module("zero3-hooks")
            subclass("Built", torch.nn.Module)
            assert run_linear(module.CALLS) == 1
        assert torch.nn.functional.linear is builtin
        assert "__init_subclass__" not in vars(torch.nn.Module)
    assert [name for name, _ in module.SEEN] == ["Built", "Built"]
    subclass("Outside", torch.nn.Module)
    assert run_linear(module.CALLS) == 0
    assert len(module.SEEN) == 2
