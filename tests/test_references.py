"""Applied means torch runs the fix: the declared copies of the original in other
modules and classes are rebound, nothing else is touched, and check reports the
references the manifest does not declare."""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import PatchSet

import backport_tool
from backport_tool import Status, SymbolRef, check, patcher, revert

# Modules that copy the target module's free_function the ways real code does.
COPIERS = {
    "copier": """
        from {module} import free_function
        from {module} import free_function as renamed

        def call(a):
            return free_function(a)

        class Holder:
            method = free_function
            static = staticmethod(free_function)
    """,
    "reexport": """
        from copier import free_function  # a re-export of a copy
    """,
    "tables": """
        import functools
        from {module} import free_function

        TABLE = {{"key": free_function}}
        LISTED = [free_function]
        BOUND = functools.partial(free_function, b=5)

        def _make():
            held = free_function
            def inner(a):
                return held(a)
            return inner

        CLOSURE = _make()
        TUPLE = (1, free_function)


        class Box:
            pass


        BOX = Box()
        BOX.fn = free_function
        METHOD = free_function.__get__(BOX)
    """,
}


# Every reference tables.py keeps that no rebinding can reach, as reported.
STALE = (
    "tables:BOUND.func",
    "tables:BOX.fn",
    "tables:CLOSURE.__closure__[0].cell_contents",
    "tables:LISTED[0]",
    "tables:METHOD.__func__",
    "tables:TABLE['key']",
    "tables:TUPLE[1]",
)
# The module globals and class attributes that copy it: declared, they are
# rebound; undeclared, check names them.
COPIES = [
    "copier:Holder.method",
    "copier:Holder.static",
    "copier:free_function",
    "copier:renamed",
    "reexport:free_function",
    "tables:free_function",
]


def write_copiers(patchset: PatchSet, names: tuple[str, ...]) -> None:
    for name in names:
        source = textwrap.dedent(COPIERS[name]).format(module=patchset.module)
        (patchset.site / f"{name}.py").write_text(source)


@pytest.fixture
def copiers(patchset: PatchSet) -> Iterator[tuple[str, ...]]:
    names = tuple(COPIERS)
    write_copiers(patchset, names)
    yield names
    for name in names:
        sys.modules.pop(name, None)


def fresh(name: str) -> Any:
    return importlib.import_module(name)


@pytest.mark.parametrize("moment", ["eager", "lazy", "late"])
def test_every_module_and_class_binding_runs_the_fix(
    patchset: PatchSet, copiers: object, moment: str
) -> None:
    entry = patchset.add("fix", "free_function")
    entry["targets"][0]["copies"] = COPIES
    manifest = patchset.write()
    if moment == "late":
        fresh("copier")
        fresh("reexport")
    report = backport_tool.apply(manifest, eager=moment != "lazy")
    copier = fresh("copier")
    reexport = fresh("reexport")
    fresh("tables")
    module = sys.modules[patchset.module]
    result = (backport_tool.current_report() or report).by_id("fix")
    assert result.status is Status.APPLIED, result.reason
    # Every moment gives the same report, once the modules are imported.
    assert result.reason == f"replaced {patchset.sym('free_function')} and 6 declared copies"
    # free_function(a, b=2) is a + b; the fix is a * b.
    assert module.free_function(3) == 6
    assert copier.free_function(3) == copier.renamed(3) == copier.call(3) == 6
    assert copier.Holder.static(3) == 6
    assert reexport.free_function(3) == 6
    revert()
    assert module.free_function(3) == copier.free_function(3) == copier.call(3) == 5
    assert copier.Holder.static(3) == reexport.free_function(3) == 5
    assert isinstance(vars(copier.Holder)["static"], staticmethod)


def test_a_plain_copy_of_a_staticmethod_target_gets_the_plain_replacement(
    patchset: PatchSet,
) -> None:
    # ``H = Widget.helper`` holds the function the staticmethod wraps: the
    # copy must get a function too. A staticmethod object there is not what
    # the class hands out, and torch.compile(fullgraph=True) cannot call it.
    (patchset.site / "static_copier.py").write_text(
        f"from {patchset.module} import Widget\nH = Widget.helper\n"
    )
    entry = patchset.add("fix", "Widget.helper")
    entry["targets"][0]["copies"] = ["static_copier:H"]
    manifest = patchset.write()
    copier = fresh("static_copier")
    try:
        original = copier.H
        report = backport_tool.apply(manifest, eager=True)
        assert report.by_id("fix").status is Status.APPLIED, report.by_id("fix").reason
        assert type(copier.H) is type(original)
        assert copier.H is vars(patchset.target().Widget)["helper"].__func__
        assert copier.H(2) == 40
        revert()
        assert copier.H is original
    finally:
        sys.modules.pop("static_copier", None)


def test_check_names_every_undeclared_reference_and_apply_scans_nothing(
    patchset: PatchSet, copiers: object
) -> None:
    tables = fresh("tables")
    copier = fresh("copier")
    fresh("reexport")
    patchset.add("fix", "free_function")
    manifest = patchset.write()
    result = backport_tool.check(manifest).by_id("fix")
    assert result.status is Status.PARTIAL
    (target,) = result.targets
    assert target.stale_references == tuple(sorted(COPIES + list(STALE)))
    assert result.reason.endswith(
        "; 13 references to the original that apply does not reach: "
        + ", ".join(sorted(COPIES + list(STALE)))
        + ". A module global or class attribute is a copy: run `backport-tool lock` to "
        "declare it (one lock cannot read in the sources goes under copies: by hand, and lock "
        "keeps it). For the others (dict, list or tuple entries, partials, closures, bound "
        "methods), make them call the fix (an after_apply hook can re-register it), then run "
        "`backport-tool lock --acknowledge` to record them as reviewed"
    )
    assert result.is_problem
    # apply changes the target only: no copy is guessed.
    applied = backport_tool.apply(manifest, eager=True).by_id("fix")
    assert applied.status is Status.APPLIED, applied.reason
    assert sys.modules[patchset.module].free_function(3) == 6
    assert copier.free_function(3) == tables.TABLE["key"](3) == 5


def test_declared_and_acknowledged_references_do_not_make_it_partial(
    patchset: PatchSet, copiers: object
) -> None:
    fresh("tables")
    fresh("copier")
    fresh("reexport")
    entry = patchset.add("fix", "free_function")
    entry["targets"][0]["copies"] = COPIES
    entry["targets"][0]["acknowledged"] = list(STALE)
    result = backport_tool.check(patchset.write()).by_id("fix")
    assert result.status is Status.READY, result.reason
    assert result.targets[0].stale_references == ()


def test_a_declared_copy_that_no_longer_holds_the_original_is_drift(
    patchset: PatchSet, copiers: object
) -> None:
    copier = fresh("copier")
    copier.renamed = len
    entry = patchset.add("fix", "free_function")
    entry["targets"][0]["copies"] = ["copier:renamed"]
    manifest = patchset.write()
    for result in (
        backport_tool.check(manifest).by_id("fix"),
        backport_tool.apply(manifest, eager=True).by_id("fix"),
    ):
        assert result.status is Status.DRIFT
        assert result.reason == (
            f"declared copy copier:renamed of {patchset.sym('free_function')} no longer holds "
            "the original; torch changed how it binds the function: run `backport-tool lock` "
            "to record its copies again"
        )
    assert backport_tool.applied() == ()


WRAPPER = """
import backport_tool


def free_function(a, b=2):
    # A wrapper: the original, times ten.
    return backport_tool.original("{module}:free_function")(a, b) * 10
"""


def test_a_wrapper_calls_the_original_and_never_itself(patchset: PatchSet, copiers: object) -> None:
    patchset.write_backport("fix.py", WRAPPER.format(module=patchset.module))
    entry = patchset.add("fix", "free_function")
    entry["targets"][0]["copies"] = ["copier:free_function"]
    module = patchset.target()
    copier = fresh("copier")
    result = backport_tool.apply(patchset.write(), eager=True).by_id("fix")
    assert result.status is Status.APPLIED, result.reason
    assert module.free_function(3) == copier.free_function(3) == 50
    revert()
    with pytest.raises(backport_tool.UsageError) as raised:
        backport_tool.original(f"{patchset.module}:free_function")
    assert str(raised.value) == (
        f"original('{patchset.module}:free_function'): no applied backport replaces "
        f"{patchset.module}:free_function; call it only from a replacement (or code it "
        "runs) while its backport is applied"
    )


HOOKS = """
import {module} as target
import tables


def free_function(a, b=2):
    return a * b


def after_apply():
    tables.TABLE["key"] = free_function
    tables.LISTED[0] = free_function
{extra}

def before_revert():
    tables.TABLE["key"] = backport_tool.original("{module}:free_function")
    tables.LISTED[0] = backport_tool.original("{module}:free_function")


import backport_tool
"""


def test_after_apply_re_registers_and_before_revert_restores(
    patchset: PatchSet, copiers: object
) -> None:
    tables = fresh("tables")
    patchset.write_backport("fix.py", HOOKS.format(module=patchset.module, extra=""))
    entry = patchset.add("fix", "free_function")
    entry["targets"][0]["copies"] = ["tables:free_function"]
    # Reviewed: the hooks re-register two of them, the others stay.
    entry["targets"][0]["acknowledged"] = list(STALE)
    manifest = patchset.write()
    before = backport_tool.check(manifest).by_id("fix")
    assert before.status is Status.READY, before.reason
    result = backport_tool.apply(manifest, eager=True).by_id("fix")
    assert result.status is Status.APPLIED, result.reason
    assert tables.TABLE["key"](3) == tables.LISTED[0](3) == 6
    revert()
    assert tables.TABLE["key"](3) == tables.LISTED[0](3) == 5


def test_a_failing_after_apply_rolls_everything_back(patchset: PatchSet, copiers: object) -> None:
    tables = fresh("tables")
    copier = fresh("copier")
    extra = "    raise RuntimeError('registry moved')\n"
    patchset.write_backport("fix.py", HOOKS.format(module=patchset.module, extra=extra))
    entry = patchset.add("fix", "free_function")
    entry["targets"][0]["copies"] = ["copier:free_function"]
    module = sys.modules[patchset.module]
    result = backport_tool.apply(patchset.write(), eager=True).by_id("fix")
    assert result.status is Status.FAILED
    assert result.reason == (
        "after_apply raised RuntimeError: registry moved; rolled back, nothing changed"
    )
    assert module.free_function(3) == copier.free_function(3) == 5
    assert backport_tool.applied() == ()
    # before_revert took back what the hook registered before it raised.
    assert tables.TABLE["key"](3) == tables.LISTED[0](3) == 5


@pytest.mark.parametrize(
    ("replacement", "problem"),
    [
        (
            "def compute(self):\n    return 0\n",
            "it takes 1 positional arguments, callers may pass 2; it has no keyword parameter "
            "'x', callers may pass x=",
        ),
        (
            "def compute(self, y: int) -> int:\n    return y\n",
            "it has no keyword parameter 'x', callers may pass x=",
        ),
        (
            "def compute(self, x: int, *, extra) -> int:\n    return x\n",
            "it requires 'extra', which callers never pass",
        ),
        (
            "def free_function(a, b):\n    return a\n",
            "'b' has no default, callers may leave out b",
        ),
        (
            "def compute(self, *, x: int) -> int:\n    return x\n",
            "it takes 1 positional arguments, callers may pass 2",
        ),
    ],
)
def test_a_replacement_that_cannot_take_the_originals_calls_fails_check(
    patchset: PatchSet, replacement: str, problem: str
) -> None:
    patchset.write_backport("fix.py", replacement)
    name = replacement.split("(", maxsplit=1)[0].removeprefix("def ")
    symbol = "free_function" if name == "free_function" else "Widget.compute"
    patchset.add("fix", symbol)
    result = backport_tool.check(patchset.write()).by_id("fix")
    assert result.status is Status.FAILED
    assert result.reason == (
        f"backports/fix.py:{name} cannot replace {patchset.sym(symbol)}: {problem}"
    )


def test_a_compatible_replacement_may_accept_more(patchset: PatchSet) -> None:
    patchset.write_backport(
        "fix.py", "def compute(self, x: int, extra: int = 0, *a, **k) -> int:\n    return x\n"
    )
    patchset.add("fix", "Widget.compute")
    assert backport_tool.check(patchset.write()).by_id("fix").status is Status.READY


SUPER = """
def inherited(self, x: int) -> int:
    # A method copied from upstream, zero-argument super() and all.
    return super().inherited(x) * 2
"""

TARGET_WITH_OVERRIDE = """
class Base:
    def inherited(self, x: int) -> int:
        return x + 100


class Widget(Base):
    def inherited(self, x: int) -> int:
        return x
"""


def test_zero_argument_super_works_in_a_method_replacement(patchset: PatchSet) -> None:
    (patchset.site / f"{patchset.module}.py").write_text(TARGET_WITH_OVERRIDE)
    patchset.write_backport("fix.py", SUPER)
    patchset.add("fix", "Widget.inherited")
    module = patchset.target()
    result = backport_tool.apply(patchset.write(), eager=True).by_id("fix")
    assert result.status is Status.APPLIED, result.reason
    assert module.Widget().inherited(1) == 202
    revert()
    assert module.Widget().inherited(1) == 1


def test_zero_argument_super_in_a_module_function_replacement_is_refused(
    patchset: PatchSet,
) -> None:
    patchset.write_backport("fix.py", "def free_function(a, b=2):\n    return super().x\n")
    patchset.add("fix", "free_function")
    result = backport_tool.check(patchset.write()).by_id("fix")
    assert result.status is Status.FAILED
    assert result.reason == (
        "backports/fix.py:free_function calls super() without arguments, which needs the "
        "class it is a method of, and it cannot be bound to one here; write "
        "super(Class, self) instead"
    )


VALUES_TARGET = """
SIDE_EFFECTS = {"print", "open"}
LIMIT = 4


class Config:
    names = ("a", "b")
"""

VALUES_FIX = """
SIDE_EFFECTS = {"print", "open", "exec"}
LIMIT = 8
names = ("a", "b", "c")
new_helper = len
"""


def test_value_targets_are_replaced_rebound_and_fingerprinted(patchset: PatchSet) -> None:
    (patchset.site / f"{patchset.module}.py").write_text(VALUES_TARGET)
    (patchset.site / "uses_values.py").write_text(
        f"from {patchset.module} import LIMIT, SIDE_EFFECTS\n"
    )
    patchset.write_backport("fix.py", VALUES_FIX)
    entry = patchset.add("fix", "SIDE_EFFECTS", "LIMIT", "Config.names")
    # Values are never looked for by identity: the copy is declared.
    entry["targets"][0]["copies"] = ["uses_values:SIDE_EFFECTS"]
    module = patchset.target()
    uses = fresh("uses_values")
    try:
        manifest = patchset.write()
        checked = backport_tool.check(manifest).by_id("fix")
        assert checked.status is Status.READY, checked.reason
        fingerprints = [t.actual_fingerprint for t in checked.targets]
        assert all(f and f.startswith("sha256:") for f in fingerprints)
        # The same fingerprints as a static read of the same source.
        static = backport_tool.check(manifest, source=str(patchset.site)).by_id("fix")
        assert [t.actual_fingerprint for t in static.targets] == fingerprints
        result = backport_tool.apply(manifest, eager=True).by_id("fix")
        assert result.status is Status.APPLIED, result.reason
        assert module.SIDE_EFFECTS == uses.SIDE_EFFECTS == {"print", "open", "exec"}
        assert module.LIMIT == 8
        assert uses.LIMIT == 4  # an int is shared by identity, never rebound
        assert module.Config.names == ("a", "b", "c")
        revert()
        assert module.SIDE_EFFECTS == uses.SIDE_EFFECTS == {"print", "open"}
        assert (module.LIMIT, module.Config.names) == (4, ("a", "b"))
    finally:
        sys.modules.pop("uses_values", None)


def test_a_changed_value_is_drift(patchset: PatchSet) -> None:
    (patchset.site / f"{patchset.module}.py").write_text(VALUES_TARGET)
    patchset.write_backport("fix.py", VALUES_FIX)
    entry = patchset.add("fix", "SIDE_EFFECTS")
    entry["targets"][0]["fingerprint"] = "sha256:0000000000000000"
    result = backport_tool.check(patchset.write()).by_id("fix")
    assert result.status is Status.DRIFT
    assert "source fingerprint" in result.reason


def test_create_adds_an_attribute_and_revert_deletes_it(patchset: PatchSet) -> None:
    import builtins

    patchset.write_backport("fix.py", VALUES_FIX)
    entry = patchset.add("fix")
    entry["targets"] = [
        {
            "symbol": "builtins:backport_tool_test_helper",
            "replacement": "new_helper",
            "create": True,
        },
        {"symbol": patchset.sym("Widget.brand_new"), "replacement": "LIMIT", "create": True},
    ]
    module = patchset.target()
    result = backport_tool.apply(patchset.write(), eager=True).by_id("fix")
    assert result.status is Status.APPLIED, result.reason
    assert builtins.backport_tool_test_helper is len  # type: ignore[attr-defined]
    assert module.Widget.brand_new == 8
    revert()
    assert not hasattr(builtins, "backport_tool_test_helper")
    assert not hasattr(module.Widget, "brand_new")


def test_create_of_an_attribute_that_exists_is_drift(patchset: PatchSet) -> None:
    entry = patchset.add("fix", "Widget.compute")
    entry["targets"][0]["create"] = True
    result = backport_tool.check(patchset.write()).by_id("fix")
    assert result.status is Status.DRIFT
    assert result.reason == (
        f"target {patchset.sym('Widget.compute')} is marked create: true, but it exists "
        f"already (on {patchset.module}:Widget); upstream may have added it: check whether "
        "the backport is still needed"
    )


def test_a_classmethod_target_is_not_its_own_stale_reference(patchset: PatchSet) -> None:
    (patchset.site / f"{patchset.module}.py").write_text(
        "class Widget:\n    @classmethod\n    def make(cls, x):\n        return x\n\n\n"
        "class Copy:\n    make = Widget.__dict__['make']\n"
    )
    patchset.write_backport("fix.py", "def make(cls, x):\n    return x * 2\n")
    entry = patchset.add("fix", "Widget.make")
    entry["targets"][0]["copies"] = [f"{patchset.module}:Copy.make"]
    module = patchset.target()
    manifest = patchset.write()
    checked = backport_tool.check(manifest).by_id("fix")
    assert checked.status is Status.READY, checked.reason
    assert checked.targets[0].rebound == (f"{patchset.module}:Copy.make",)
    result = backport_tool.apply(manifest, eager=True).by_id("fix")
    assert result.status is Status.APPLIED, result.reason
    assert module.Widget.make(2) == module.Copy.make(2) == 4
    assert isinstance(vars(module.Copy)["make"], classmethod)


def test_a_method_of_a_nested_class_is_not_its_own_reference(patchset: PatchSet) -> None:
    # torch.fx.passes.tools_common:FxNetAccFusionsFinder.FusionGroup.add_node
    # was reported as an undeclared reference to itself: only the classes at
    # a module's top level named their entries.
    (patchset.site / f"{patchset.module}.py").write_text(
        "class Outer:\n    class Inner:\n        def add(self, x):\n            return x\n\n"
        "        class Deepest:\n            def add(self, x):\n                return x\n"
    )
    patchset.write_backport("fix.py", "def add(self, x):\n    return x * 2\n")
    patchset.add("fix", "Outer.Inner.add", "Outer.Inner.Deepest.add")
    module = patchset.target()
    manifest = patchset.write()
    checked = backport_tool.check(manifest).by_id("fix")
    assert checked.status is Status.READY, checked.reason
    assert backport_tool.apply(manifest, eager=True).by_id("fix").status is Status.APPLIED
    assert module.Outer.Inner().add(2) == module.Outer.Inner.Deepest().add(2) == 4


def test_check_after_apply_of_a_created_attribute_is_not_drift(patchset: PatchSet) -> None:
    patchset.write_backport("fix.py", VALUES_FIX)
    entry = patchset.add("fix")
    entry["targets"] = [
        {"symbol": patchset.sym("Widget.brand_new"), "replacement": "LIMIT", "create": True}
    ]
    manifest = patchset.write()
    patchset.target()
    assert backport_tool.apply(manifest, eager=True).by_id("fix").status is Status.APPLIED
    # The attribute did not exist before the backport: check judges that state.
    result = backport_tool.check(manifest).by_id("fix")
    assert result.status is Status.APPLIED, result.reason
    # There is no original to call.
    with pytest.raises(backport_tool.UsageError):
        backport_tool.original(patchset.sym("Widget.brand_new"))


def test_a_copy_bound_in_some_environments_only_is_bound_where_it_holds_the_original(
    patchset: PatchSet,
) -> None:
    # An import fallback binds the original only where the fast module is
    # missing: lock declares it conditional, and apply and check accept both
    # environments instead of calling one of them drift.
    package = f"{patchset.module}_pkg"
    root = patchset.site / package
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "core.py").write_text("def f(a):\n    return a\n")
    (root / "fallback.py").write_text(
        f"try:\n    from {package}_fast import f\nexcept ImportError:\n"
        f"    from {package}.core import f\n"
    )
    patchset.write_backport("fix.py", "def f(a):\n    return a * 10\n")
    patchset.backports.append(
        {
            "id": "fix",
            "summary": "t",
            "applies_to": ">=1.0,<2.0",
            "module": "backports/fix.py",
            "targets": [{"symbol": f"{package}.core:f", "replacement": "f"}],
        }
    )
    manifest = patchset.write()
    names = [package, f"{package}.core", f"{package}.fallback", f"{package}_fast"]
    try:
        backport_tool.lock(manifest)
        target = backport_tool.load_manifest(manifest).get("fix").targets[0]
        assert [str(c) for c in target.copies] == [f"{package}.fallback:f"]
        assert [str(c) for c in target.conditional] == [f"{package}.fallback:f"]
        assert "conditional_copies:" in manifest.read_text()
        # Without the fast module the fallback holds the original: bound.
        fallback = fresh(f"{package}.fallback")
        assert backport_tool.check(manifest).by_id("fix").status is Status.READY
        result = backport_tool.apply(manifest, eager=True).by_id("fix")
        assert result.reason == f"replaced {package}.core:f and 1 declared copy"
        assert fallback.f(1) == 10
        revert()
        assert fallback.f(1) == 1
        # With it, the fallback holds the fast module's function: left alone.
        (patchset.site / f"{package}_fast.py").write_text("def f(a):\n    return -a\n")
        del sys.modules[f"{package}.fallback"]
        fallback = fresh(f"{package}.fallback")
        checked = backport_tool.check(manifest).by_id("fix")
        assert checked.status is Status.READY, checked.reason
        result = backport_tool.apply(manifest, eager=True).by_id("fix")
        assert result.status is Status.APPLIED, result.reason
        assert result.reason == f"replaced {package}.core:f"
        assert fallback.f(1) == -1
        assert sys.modules[f"{package}.core"].f(1) == 10
    finally:
        for name in names:
            sys.modules.pop(name, None)


def test_an_inherited_target_is_not_partial_for_what_holds_the_base_function(
    patchset: PatchSet,
) -> None:
    # The base class's own attribute and an alias of it are the base's: the
    # patch of the subclass never reaches them, and must not be told to.
    (patchset.site / "basecopy.py").write_text(
        f"from {patchset.module} import Base\nALIAS = Base.inherited\n"
    )
    patchset.add("fix", "Widget.inherited")
    manifest = patchset.write()
    try:
        base = fresh("basecopy")
        backport_tool.lock(manifest)
        target = backport_tool.load_manifest(manifest).get("fix").targets[0]
        assert target.copies == ()
        checked = backport_tool.check(manifest).by_id("fix")
        assert checked.status is Status.READY, checked.reason
        assert checked.targets[0].stale_references == ()
        backport_tool.apply(manifest, eager=True)
        module = sys.modules[patchset.module]
        assert module.Widget().inherited(1) == 3001
        assert module.Base().inherited(1) == base.ALIAS(None, 1) == 101
    finally:
        sys.modules.pop("basecopy", None)


def test_lock_keeps_a_copy_declared_by_hand_while_it_holds_the_original(
    patchset: PatchSet, copiers: object
) -> None:
    # The copiers are modules lock never reads (another top-level package, as
    # functorch is to torch): declared by hand, they stay declared while the
    # process shows them holding the original, and go once they do not.
    entry = patchset.add("fix", "free_function")
    entry["targets"][0]["copies"] = COPIES
    manifest = patchset.write()
    backport_tool.lock(manifest)
    target = backport_tool.load_manifest(manifest).get("fix").targets[0]
    assert [str(c) for c in target.copies] == sorted(COPIES)
    fresh("tables").free_function = None
    backport_tool.lock(manifest)
    target = backport_tool.load_manifest(manifest).get("fix").targets[0]
    assert [str(c) for c in target.copies] == sorted(
        c for c in COPIES if c != "tables:free_function"
    )


def test_lock_acknowledge_records_what_check_reports(patchset: PatchSet, copiers: object) -> None:
    from backport_tool.locking import acknowledge

    # lock declares the copies inside the target's own package (none here: the
    # copiers are other top-level modules, like a user's code); --acknowledge
    # records what check still reports.
    fresh("tables")
    fresh("copier")
    fresh("reexport")
    patchset.add("fix", "free_function")
    manifest = patchset.write()
    assert backport_tool.check(manifest).by_id("fix").status is Status.PARTIAL
    acknowledge(manifest)
    target = backport_tool.load_manifest(manifest).get("fix").targets[0]
    assert target.copies == ()
    assert target.acknowledged == tuple(sorted(COPIES + list(STALE)))
    result = backport_tool.check(manifest).by_id("fix")
    assert result.status is Status.READY, result.reason


def test_lock_acknowledge_that_cannot_write_its_second_pass_says_what_was_written(
    patchset: PatchSet, copiers: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backport_tool import locking

    fresh("tables")
    fresh("copier")
    fresh("reexport")
    patchset.add("fix", "free_function")
    manifest = patchset.write()
    real_lock = locking.lock

    def second_pass_fails(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("acknowledge"):
            raise backport_tool.UsageError(f"cannot write {manifest}: Disk quota exceeded")
        return real_lock(*args, **kwargs)

    monkeypatch.setattr(locking, "lock", second_pass_fails)
    with pytest.raises(backport_tool.UsageError) as raised:
        locking.acknowledge(manifest)
    assert str(raised.value) == (
        f"cannot write {manifest}: Disk quota exceeded (lock's own updates were written "
        "before: the manifest is locked, without the acknowledged references)"
    )
    assert backport_tool.load_manifest(manifest).get("fix").targets[0].acknowledged == ()


REENTRANT = """
import backport_tool


def free_function(a, b=2):
    return a * b


def {hook}(*args):
    backport_tool.revert()
"""
REFUSED = (
    "revert() was called from the {hook} hook of 'fix'; hooks run while backport-tool is "
    "applying or reverting, so they must not apply or revert backports themselves. Do it "
    "after apply() returns"
)


# The probe runs while apply is half-way through too: a revert() there
# emptied the registry while the report still said applied.
@pytest.mark.parametrize(
    ("hook", "then"), [("after_apply", "; rolled back, nothing changed"), ("upstream_probe", "")]
)
def test_a_hook_that_applies_or_reverts_gets_a_clear_error(
    patchset: PatchSet, hook: str, then: str
) -> None:
    patchset.write_backport("fix.py", REENTRANT.format(hook=hook))
    patchset.add("fix", "free_function")
    module = patchset.target()
    result = backport_tool.apply(patchset.write(), eager=True).by_id("fix")
    assert result.status is Status.FAILED
    assert result.reason == f"{hook} raised UsageError: " + REFUSED.format(hook=hook) + then
    assert backport_tool.applied() == ()
    assert module.free_function(3) == 5


def test_the_end_of_a_nested_hook_leaves_the_outer_one_refusing() -> None:
    # A hook that imports another backport's target runs that one's hook
    # inside it; once that ends, the outer hook still may not revert.
    with patcher.hook_running("outer", "after_apply"):
        with patcher.hook_running("inner", "after_apply"):
            pass
        with pytest.raises(backport_tool.UsageError, match="after_apply hook of 'outer'"):
            backport_tool.revert()
    assert backport_tool.revert() == ()


def test_ctrl_c_in_after_apply_of_a_scope_rolls_it_back(patchset: PatchSet) -> None:
    # An interrupt is no failure to report, but the scope never began: the
    # backport must not stay counted as held by it.
    patchset.write_backport(
        "fix.py",
        "def free_function(a, b=2):\n    return a * b\n\n\n"
        "def after_apply():\n    raise KeyboardInterrupt\n",
    )
    patchset.add("fix", "free_function")
    module = patchset.target()
    manifest = patchset.write()
    for _ in range(2):
        with pytest.raises(KeyboardInterrupt), backport_tool.enabled("fix", manifest=manifest):
            pytest.fail("the block ran")
        assert backport_tool.applied() == ()
        assert module.free_function(3) == 5


REUSED = """
from reuselib import better as free_function
"""


def test_revert_leaves_a_reused_library_function_alone(patchset: PatchSet) -> None:
    # The fix is a library's own function: revert must not touch the library.
    (patchset.site / "reuselib.py").write_text("def better(a, b=2):\n    return a * b\n")
    (patchset.site / "reuselib_user.py").write_text("from reuselib import better\n")
    patchset.write_backport("fix.py", REUSED)
    patchset.add("fix", "free_function")
    module = patchset.target()
    try:
        reuselib = fresh("reuselib")
        user = fresh("reuselib_user")
        better = reuselib.better
        assert backport_tool.apply(patchset.write(), eager=True).by_id("fix").status is (
            Status.APPLIED
        )
        assert module.free_function(3) == 6
        revert()
        assert reuselib.better is user.better is better
        assert module.free_function(3) == 5
    finally:
        for name in ("reuselib", "reuselib_user"):
            sys.modules.pop(name, None)


HOSTILE = """
import importlib.util
import sys

from {module} import free_function

CALLED = []


class Hostile:
    def __eq__(self, other):
        CALLED.append("eq")
        return False

    def __hash__(self):
        CALLED.append("hash")
        return 1

    def __repr__(self):
        CALLED.append("repr")
        return "hostile"

    def __getattr__(self, name):
        CALLED.append("getattr " + name)
        raise AttributeError(name)

    @property
    def __dict__(self):
        CALLED.append("__dict__")
        return {{}}


class Registry(dict):
    def items(self):
        CALLED.append("items")
        return super().items()


KEYED = {{Hostile(): free_function}}
HELD = Hostile()
object.__setattr__(HELD, "fn", free_function)
REGISTRY = Registry(fast=free_function)

# A lazily loaded module: looking at it must not load it.
_spec = importlib.util.find_spec("lazy_victim")
_spec.loader = importlib.util.LazyLoader(_spec.loader)
LAZY = importlib.util.module_from_spec(_spec)
sys.modules["lazy_victim"] = LAZY
_spec.loader.exec_module(LAZY)
CALLED.clear()  # building KEYED hashed its key: only the walk counts
"""


def test_the_walk_runs_no_foreign_code_and_names_stable_paths(patchset: PatchSet) -> None:
    (patchset.site / "lazy_victim.py").write_text("raise RuntimeError('loaded')\n")
    (patchset.site / "hostile.py").write_text(HOSTILE.format(module=patchset.module))
    patchset.add("fix", "free_function")
    try:
        hostile = fresh("hostile")
        result = backport_tool.check(patchset.write()).by_id("fix")
        assert hostile.CALLED == []
        # HELD's class hides its __dict__ behind a property: named by its type.
        assert result.targets[0].stale_references == (
            "hostile:HELD.<Hostile>",
            "hostile:KEYED[<key Hostile>]",
            "hostile:REGISTRY['fast']",
            "hostile:free_function",
        )
    finally:
        for name in ("hostile", "lazy_victim"):
            sys.modules.pop(name, None)


def test_check_source_compares_the_copies_of_the_other_version(patchset: PatchSet) -> None:
    source = patchset.site / f"{patchset.module}.py"
    source.write_text(source.read_text() + "\nALIAS = free_function\n")
    entry = patchset.add("fix", "free_function")
    manifest = patchset.write()
    static = backport_tool.check(manifest, source=str(patchset.site)).by_id("fix")
    assert static.status is Status.PARTIAL
    assert static.reason == (
        f"{patchset.site} binds {patchset.sym('free_function')} also at "
        f"{patchset.sym('ALIAS')}, which the manifest does not declare, so apply would not "
        f"reach it; run `backport-tool lock --source {patchset.site}` to declare it"
    )
    entry["targets"][0]["copies"] = [patchset.sym("ALIAS")]
    static = backport_tool.check(patchset.write(), source=str(patchset.site)).by_id("fix")
    assert static.status is Status.READY, static.reason
    entry["targets"][0]["copies"] = [patchset.sym("ALIAS"), patchset.sym("GONE")]
    static = backport_tool.check(patchset.write(), source=str(patchset.site)).by_id("fix")
    assert static.status is Status.DRIFT
    assert static.reason.startswith(f"declared copy {patchset.sym('GONE')} of ")
    # One version binds it, another does not: a conditional copy.
    entry["targets"][0]["copies"] = [patchset.sym("ALIAS")]
    entry["targets"][0]["conditional_copies"] = [patchset.sym("GONE")]
    manifest = patchset.write()
    static = backport_tool.check(manifest, source=str(patchset.site)).by_id("fix")
    assert static.status is Status.READY, static.reason
    # lock keeps it, as another version of the range may bind it.
    backport_tool.lock(manifest, source=str(patchset.site))
    target = backport_tool.load_manifest(manifest).get("fix").targets[0]
    assert target.conditional == frozenset({SymbolRef.parse(patchset.sym("GONE"))})


def test_a_copy_in_a_backport_module_is_never_changed(patchset: PatchSet) -> None:
    entry = patchset.add("fix", "free_function")
    entry["targets"][0]["copies"] = ["_backport_tool_bp_fix:free_function"]
    result = backport_tool.check(patchset.write()).by_id("fix")
    assert result.status is Status.FAILED
    assert result.reason == (
        "declared copy _backport_tool_bp_fix:free_function: it is backport-tool's own code or "
        "a backport module, which backport-tool never changes; remove it from copies:"
    )


def test_the_backport_module_and_paths_through_sys_modules_are_never_references(
    patchset: PatchSet,
) -> None:
    # A module that keeps sys.modules as a global (triton.language.extra does)
    # reaches every module's namespace, the backport module's included; what
    # the backport module imports of the original is its own business.
    (patchset.site / "keeps_modules.py").write_text("from sys import modules\n")
    importlib.import_module("keeps_modules")
    patchset.write_backport(
        "fix.py",
        f"from {patchset.module} import free_function as _original\n\n\n"
        "def free_function(a, b=2):\n    return a * b\n",
    )
    patchset.add("fix", "free_function")
    try:
        result = backport_tool.check(patchset.write()).by_id("fix")
    finally:
        sys.modules.pop("keeps_modules", None)
    assert result.status is Status.READY, result.reason
    assert result.targets[0].stale_references == ()


def test_lock_acknowledge_records_the_references_of_an_opt_in_backport(
    patchset: PatchSet, copiers: object
) -> None:
    from backport_tool.locking import acknowledge

    # An opt-in backport is disabled until enabled; lock --acknowledge walks
    # it all the same, as lock records it.
    fresh("tables")
    fresh("copier")
    fresh("reexport")
    patchset.add("fix", "free_function", opt_in=True)
    manifest = patchset.write()
    assert backport_tool.check(manifest, enable=["fix"]).by_id("fix").status is Status.PARTIAL
    acknowledge(manifest)
    target = backport_tool.load_manifest(manifest).get("fix").targets[0]
    assert target.acknowledged == tuple(sorted(COPIES + list(STALE)))
    result = backport_tool.check(manifest, enable=["fix"]).by_id("fix")
    assert result.status is Status.READY, result.reason


@pytest.fixture
def rvpkg(patchset: PatchSet) -> Iterator[Path]:
    # A package whose __init__ re-exports impl.fn, as torch re-exports its
    # functions; removed from sys.modules afterwards.
    root = patchset.site / "rvpkg"
    root.mkdir()
    (root / "__init__.py").write_text("from rvpkg.impl import fn\n")
    (root / "impl.py").write_text("def fn(x):\n    return x\n")
    patchset.write_backport("rv.py", "def fn(x):\n    return -x\n")
    yield root
    for name in [m for m in sys.modules if m == "rvpkg" or m.startswith("rvpkg.")]:
        del sys.modules[name]


def _rv(patchset: PatchSet, backport_id: str, symbol: str, **target: Any) -> None:
    entry = patchset.add(backport_id, module="backports/rv.py")
    entry["targets"] = [{"symbol": symbol, "replacement": "fn", **target}]


def test_lazy_apply_of_a_function_and_its_undeclared_re_export_keeps_the_first(
    patchset: PatchSet, rvpkg: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Under lazy apply the re-export is bound to the first backport's
    # replacement while it is in force; the second must see a conflict, not
    # take that replacement for the original.
    _rv(patchset, "a", "rvpkg.impl:fn")
    _rv(patchset, "b", "rvpkg:fn")
    backport_tool.apply(patchset.write())
    rv = importlib.import_module("rvpkg")
    report = backport_tool.current_report()
    assert report is not None
    assert report.by_id("a").status is Status.APPLIED
    assert report.by_id("b").status is Status.FAILED
    assert report.by_id("b").reason.startswith(
        "conflict: rvpkg:fn is the same function as a target of backport 'a'"
    )
    revert()
    assert sys.modules["rvpkg.impl"].fn(1) == 1
    assert rv.fn(1) == -1  # bound while a was in force: named by revert
    assert "what was bound to its replacement while it was in force keeps it" in caplog.text
    assert ": rvpkg:fn. Import or build" in caplog.text


def test_a_target_named_by_its_re_export_is_walked(patchset: PatchSet, rvpkg: Path) -> None:
    (rvpkg / "regs.py").write_text("from rvpkg import impl\nREG = {'k': impl.fn}\n")
    _rv(patchset, "fix", "rvpkg:fn", copies=["rvpkg.impl:fn"])
    importlib.import_module("rvpkg.regs")
    result = backport_tool.check(patchset.write()).by_id("fix")
    assert result.status is Status.PARTIAL
    assert result.targets[0].stale_references == ("rvpkg.regs:REG['k']",)


HOSTILE_META = """
from rvpkg import impl

SIDE = []


class Meta(type):
    def __getattribute__(cls, name):
        if name in ("__name__", "__mro__", "__qualname__"):
            SIDE.append(name)
            raise RuntimeError("read through the metaclass")
        return super().__getattribute__(name)

    def __eq__(cls, other):
        SIDE.append("__eq__")
        return NotImplemented

    def __hash__(cls):
        SIDE.append("__hash__")
        return 1


class Key(metaclass=Meta):
    def __hash__(self):
        return 7


class Slots(metaclass=Meta):
    __slots__ = ("held",)


OBJ = Slots()
OBJ.held = impl.fn
TABLE = {Key(): impl.fn, Key(): impl.fn, ("aten", "add"): impl.fn}
"""


def test_the_walk_reads_no_metaclass_and_tells_keys_apart(patchset: PatchSet, rvpkg: Path) -> None:
    # Types with a metaclass of their own are read off their slots; entries
    # whose keys show only their type are told apart by order, so that
    # acknowledging one never hides another.
    (rvpkg / "meta.py").write_text(HOSTILE_META)
    _rv(patchset, "fix", "rvpkg.impl:fn", copies=["rvpkg:fn"])
    meta = importlib.import_module("rvpkg.meta")
    side = list(meta.SIDE)
    result = backport_tool.check(patchset.write()).by_id("fix")
    assert side == meta.SIDE
    assert result.status is Status.PARTIAL
    assert result.targets[0].stale_references == (
        "rvpkg.meta:OBJ.<Slots>",
        "rvpkg.meta:TABLE[('aten', 'add')]",
        "rvpkg.meta:TABLE[<key Key #2>]",
        "rvpkg.meta:TABLE[<key Key>]",
    )


CALLABLE_OBJECT = """
import functools


class tagged:
    def __init__(self, function):
        self.function = function
        functools.update_wrapper(self, function)

    def __call__(self, *args, **kwargs):
        return self.function(*args, **kwargs)


@tagged
def compute(self, x):
    return x + 1000
"""


def test_a_callable_object_replacing_a_method_is_refused(patchset: PatchSet) -> None:
    # No __get__: set on the class it would not receive self, and every call
    # would miss an argument, whatever the signature it wraps says.
    patchset.write_backport("fix.py", CALLABLE_OBJECT)
    patchset.add("fix", "Widget.compute")
    manifest = patchset.write()
    result = backport_tool.check(manifest).by_id("fix")
    assert result.status is Status.FAILED
    assert result.reason == (
        "backports/fix.py:compute is a tagged object, not a function: set on "
        f"{patchset.module}:Widget, it would not receive self. Make the decorator return a "
        "function (functools.wraps), or give its class a __get__"
    )
    assert backport_tool.apply(manifest, eager=True).by_id("fix").status is Status.FAILED
    assert patchset.target().Widget().compute(1) == 2


@pytest.mark.parametrize(
    "refusal",
    [
        "import not_installed_dependency_xyz",
        # torch.utils._cxx_pytree without optree (or with one too old).
        "raise ImportError('needs optree>=0.13')",
    ],
)
def test_a_copy_whose_module_needs_an_uninstalled_package_is_not_missing(
    patchset: PatchSet, refusal: str
) -> None:
    # torch.testing._internal.common_fsdp binds has_triton, and needs
    # expecttest: never imported where expecttest is not installed.
    (patchset.site / "needsdep_copier.py").write_text(
        f"{refusal}\nfrom {patchset.module} import free_function\n"
    )
    entry = patchset.add("fix", "free_function")
    entry["targets"][0]["copies"] = ["needsdep_copier:free_function"]
    patchset.target()
    manifest = patchset.write()
    result = check(manifest).by_id("fix")
    assert result.status is Status.READY, result.reason
    # A copy whose own module is gone still is.
    entry["targets"][0]["copies"] = ["gone_copier_xyz:free_function"]
    result = check(patchset.write()).by_id("fix")
    assert result.status is Status.MISSING
    assert result.reason.endswith(
        "declared copy gone_copier_xyz:free_function: import raised ModuleNotFoundError: "
        "No module named 'gone_copier_xyz'"
    )


def test_the_home_of_a_re_exported_target_is_an_undeclared_copy(
    patchset: PatchSet, tmp_path: Path
) -> None:
    # The target names the function by its re-export (upstream moved it into
    # a private module): the package's own callers use its home, which apply
    # does not reach. check walked only for functions its declared modules
    # made, so it said ready where lock and check --source name the home.
    package = f"{patchset.module}_pkg"
    (patchset.site / package).mkdir()
    (patchset.site / package / "__init__.py").write_text("")
    (patchset.site / package / "_impl.py").write_text(
        "def free_function(a, b=2):\n    return a + b\n"
    )
    (patchset.site / package / "core.py").write_text(
        f"from {package} import _impl\n\nfree_function = _impl.free_function\n"
    )
    entry = patchset.add("fix", "free_function")
    entry["targets"][0]["symbol"] = f"{package}.core:free_function"
    manifest = patchset.write()
    try:
        result = backport_tool.check(manifest).by_id("fix")
        assert result.status is Status.PARTIAL, result.reason
        assert result.targets[0].stale_references == (f"{package}._impl:free_function",)
        backport_tool.lock(manifest)
        assert backport_tool.check(manifest).by_id("fix").status is Status.READY
    finally:
        for name in [m for m in sys.modules if m.startswith(package)]:
            del sys.modules[name]


def test_an_enum_member_target_is_refused_by_check_and_apply(patchset: PatchSet) -> None:
    # Enum's metaclass refuses to reassign a member: check said ready, and
    # apply failed.
    (patchset.site / f"{patchset.module}.py").write_text(
        "import enum\n\n\nclass Hint(enum.Enum):\n    INNER = 1\n    OUTER = 2\n"
    )
    patchset.write_backport("fix.py", "INNER = 3\n")
    patchset.add("fix", "Hint.INNER")
    module = patchset.target()
    manifest = patchset.write()
    reason = (
        f"target {patchset.module}:Hint.INNER: a member of the Enum {patchset.module}.Hint, "
        "which Python does not let anyone reassign; target the functions or methods that use "
        "it instead"
    )
    for report in (backport_tool.check(manifest), backport_tool.apply(manifest, eager=True)):
        result = report.by_id("fix")
        assert (result.status, result.reason) == (Status.FAILED, reason)
    assert module.Hint.INNER.value == 1
