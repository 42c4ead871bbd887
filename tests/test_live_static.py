"""The live read (inspect, of the imported module) and the static read (ast, of
the same file) give the same facts of one def: what `lock` records from the
installed package and what `lock --source` / `check --source` read from its
sources must not differ for unchanged code, or they flip-flop and a version
drifts from itself."""

from __future__ import annotations

import importlib
import inspect
import itertools
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from backport_tool import SymbolRef
from backport_tool.findings import Presence
from backport_tool.inspection import LiveInspector, StaticInspector, SymbolFacts
from backport_tool.source import call_shape
from backport_tool.static import DirTree, StaticIndex
from backport_tool.symbols import signature_text

# How a default that is inspect's "no default" sentinel is spelled.
EMPTY_DEFAULT = "inspect.Signature.empty"

_names = itertools.count()

# Methods whose multi-line strings a dedent of the method's source changes:
# the lines of a template lose the method's indentation, and a
# whitespace-only line its whitespace.
TEMPLATES = '''
import textwrap


class Kernel:
    def codegen(self, name):
        def helper():
            """Nested docstring,
            over two lines."""
            return 1

        code = f"""
            def {name}(x):
                return x + 1
        """
        blank = "first\\n" """
<WS8>
        last"""
        return textwrap.dedent(code) + blank + str(helper())

    @staticmethod
    def flush_left(x):
        return x + len("""
at column 0
""")


def top_level(x):
    text = """
<WS4>
    whitespace-only line above"""
    return text * x
'''.replace("<WS8>", " " * 8).replace("<WS4>", " " * 4)

DEFAULTS = """
import inspect
from enum import Enum
from inspect import Parameter

class Hint(Enum):
    DEFAULT = 3


def arith(lower=1.0 / 8, upper=1.0 / 3, end=2 ** 63, neg=-2 ** 3, shift=1 << 10):
    return lower


def floats(a=float("inf"), b=-float("inf"), c=float("nan"), d=1e400):
    return a


def odd(fn=lambda x: x, marker=..., hint: Hint = Hint.DEFAULT):
    return fn


class Graph:
    def placeholder(self, name, type_expr=None, default_value=inspect.Signature.empty):
        return default_value

    def imported(self, name, default=Parameter.empty, *, kw=inspect.Parameter.empty):
        return default
"""

ALIASES = """
class Loops:
    def __str__(self):
        return "loops"

    __repr__ = __str__


def __str__():
    return "module level"


class Outer:
    __repr__ = __str__
"""


@pytest.fixture
def both(tmp_path: Path) -> Iterator[tuple[str, LiveInspector, StaticInspector]]:
    """A module written to ``tmp_path``, imported, and both readers of it."""
    name = f"live_static_mod_{next(_names)}"
    sys.path.insert(0, str(tmp_path))
    try:
        yield name, LiveInspector(), StaticInspector(StaticIndex(DirTree(tmp_path)))
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)


def _read(
    tmp_path: Path, both: tuple[str, LiveInspector, StaticInspector], text: str, qualname: str
) -> tuple[SymbolFacts, SymbolFacts]:
    name, live, static = both
    path = tmp_path / f"{name}.py"
    if not path.exists():
        path.write_text(text)
        importlib.import_module(name)
    ref = SymbolRef(name, qualname)
    found = live.inspect(ref), static.inspect(ref)
    for facts in found:
        assert facts.presence is Presence.FOUND, facts.message
        assert facts.function is not None
    return found


@pytest.mark.parametrize("qualname", ["Kernel.codegen", "Kernel.flush_left", "top_level"])
def test_multiline_strings_fingerprint_alike_live_and_static(
    tmp_path: Path, both: tuple[str, LiveInspector, StaticInspector], qualname: str
) -> None:
    live, static = _read(tmp_path, both, TEMPLATES, qualname)
    assert live.function is not None
    assert static.function is not None
    assert live.function.source == static.function.source
    assert live.function.fingerprint == static.function.fingerprint
    assert live.signature == static.signature


def test_a_class_with_templates_fingerprints_alike(
    tmp_path: Path, both: tuple[str, LiveInspector, StaticInspector]
) -> None:
    live, static = _read(tmp_path, both, TEMPLATES, "Kernel")
    assert live.function is not None
    assert static.function is not None
    assert live.function.fingerprint == static.function.fingerprint


@pytest.mark.parametrize(
    ("qualname", "expected"),
    [
        ("arith", "(lower=0.125, upper=0.3333333333333333, end=9223372036854775808, "),
        ("floats", "(a=inf, b=-inf, c=nan, d=inf)"),
        ("odd", "(fn=..., marker=Ellipsis, hint: "),
        ("Graph.placeholder", f"(self, name, type_expr=None, default_value={EMPTY_DEFAULT})"),
        ("Graph.imported", f"(self, name, default={EMPTY_DEFAULT}, *, kw={EMPTY_DEFAULT})"),
    ],
)
def test_defaults_read_alike_live_and_static(
    tmp_path: Path,
    both: tuple[str, LiveInspector, StaticInspector],
    qualname: str,
    expected: str,
) -> None:
    live, static = _read(tmp_path, both, DEFAULTS, qualname)
    assert live.signature is not None
    assert static.signature is not None
    assert live.signature.startswith(expected)
    assert call_shape(static.signature) == call_shape(live.signature)


def test_an_enum_member_default_is_named_not_valued(
    tmp_path: Path, both: tuple[str, LiveInspector, StaticInspector]
) -> None:
    live, static = _read(tmp_path, both, DEFAULTS, "odd")
    assert static.signature is not None
    assert "hint: Hint = Hint.DEFAULT" in static.signature
    assert live.signature is not None
    assert "= Hint.DEFAULT" in live.signature


def test_only_constant_expressions_are_evaluated(tmp_path: Path) -> None:
    # Read statically only: importing it would run the defaults. 2 ** 10 **
    # 10 would take the reader minutes and gigabytes; 1 / 0, a call of
    # anything but float("inf") and string arithmetic are left as the source
    # writes them.
    (tmp_path / "unevaluated_mod.py").write_text(
        'def unevaluated(huge=2 ** 10 ** 10, zero=1 / 0, call=len("ab"), s="a" * 3,'
        " shift=1 << 10 ** 6, ok=-(1 + 2)):\n    return huge\n"
    )
    static = StaticInspector(StaticIndex(DirTree(tmp_path)))
    started = time.monotonic()
    facts = static.inspect(SymbolRef("unevaluated_mod", "unevaluated"))
    assert time.monotonic() - started < 10
    assert facts.signature == (
        "(huge=2 ** 10 ** 10, zero=1 / 0, call=len('ab'), s='a' * 3, shift=1 << 10 ** 6, ok=-3)"
    )


def test_the_empty_sentinel_as_a_default_has_a_signature() -> None:
    def placeholder(name, type_expr=None, default_value=inspect.Signature.empty):  # type: ignore[no-untyped-def]
        return name

    def keyword(*, value=inspect.Parameter.empty, other=1):  # type: ignore[no-untyped-def]
        return value

    assert signature_text(placeholder) == (f"(name, type_expr=None, default_value={EMPTY_DEFAULT})")
    assert signature_text(keyword) == f"(*, value={EMPTY_DEFAULT}, other=1)"
    # A parameter with no default is still shown without one.
    assert signature_text(lambda a, b=2: a) == "(a, b=2)"


def test_a_class_body_alias_is_read_as_the_def_it_binds(
    tmp_path: Path, both: tuple[str, LiveInspector, StaticInspector]
) -> None:
    live, static = _read(tmp_path, both, ALIASES, "Loops.__repr__")
    _, own = _read(tmp_path, both, ALIASES, "Loops.__str__")
    assert live.function is not None
    assert static.function is not None
    assert static.function.fingerprint == live.function.fingerprint
    assert own.function is not None
    assert static.function.fingerprint == own.function.fingerprint
    assert static.signature == live.signature == "(self)"
    # A class body sees the module's names too.
    live, static = _read(tmp_path, both, ALIASES, "Outer.__repr__")
    assert live.function is not None
    assert static.function is not None
    assert static.function.fingerprint == live.function.fingerprint


# The reviewer's cases on the installed torch 2.11: each disagreed before.
TORCH_TARGETS = [
    "torch._inductor.scheduler:Scheduler.compute_dependencies",
    "torch._inductor.ir:View.create",
    "torch._inductor.ir:UserDefinedTritonKernel.codegen",
    "torch._inductor.codecache:CppCodeCache.load_async",
    "torch.nn.functional:rrelu",
    "torch.fx.node:_format_arg",
    "torch._inductor.lowering:slice_",
    "torch._inductor.ir:Loops.__repr__",
    "torch._inductor.ir:Reduction.create",
    "torch.fx.graph:Graph.placeholder",
    "torch.fx.graph:Graph.node_copy",
]


@pytest.mark.torch211
@pytest.mark.parametrize("symbol", TORCH_TARGETS)
def test_installed_torch_reads_alike_live_and_static(symbol: str) -> None:
    from backport_tool.copysites import installed_tree

    ref = SymbolRef.parse(symbol)
    live = LiveInspector().inspect(ref)
    static = StaticInspector(StaticIndex(installed_tree("torch"))).inspect(ref)
    assert live.function is not None
    assert static.function is not None
    assert live.function.fingerprint == static.function.fingerprint
    assert live.signature is not None
    assert static.signature is not None
    assert call_shape(live.signature) == call_shape(static.signature)
