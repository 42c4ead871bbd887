from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

from backport_tool.source import (
    comparable_signature,
    fingerprint_of,
    function_facts,
    live_function_facts,
    normalize_signature,
    normalized_source,
)


def facts(source: str):  # type: ignore[no-untyped-def]
    node = ast.parse(source).body[0]
    assert isinstance(node, ast.FunctionDef)
    return function_facts(node)


BASE = '''
def decide(self, users: int) -> bool:
    """Doc."""
    return self.num_reads() > 4
'''


@pytest.mark.parametrize(
    "variant",
    [
        # comments, spacing, line breaks and the docstring do not count
        "def decide(self, users: int) -> bool:\n    # why\n    return self.num_reads()  >  4\n",
        "def decide(self, users: int) -> bool:\n    '''Other doc.'''\n"
        "    return (\n        self.num_reads() > 4\n    )\n",
    ],
)
def test_fingerprint_ignores_formatting_comments_and_docstrings(variant: str) -> None:
    assert facts(variant).fingerprint == facts(BASE).fingerprint


@pytest.mark.parametrize(
    "variant",
    [
        BASE.replace("> 4", ">= 4"),
        BASE.replace("users: int", "users: int, *, graph_reuse: bool = True"),
        BASE.replace("num_reads", "num_writes"),
    ],
)
def test_fingerprint_changes_with_the_code(variant: str) -> None:
    assert facts(variant).fingerprint != facts(BASE).fingerprint


def test_fingerprint_format_and_normalized_source() -> None:
    result = facts(BASE)
    assert result.fingerprint == fingerprint_of(result.source)
    assert result.fingerprint.startswith("sha256:")
    assert len(result.fingerprint) == len("sha256:") + 16
    assert result.source == (
        "def decide(self, users: int) -> bool:\n    return self.num_reads() > 4"
    )
    node = ast.parse("def f():\n    'only a docstring'\n").body[0]
    assert isinstance(node, ast.FunctionDef)
    assert normalized_source(node) == "def f():\n    pass"


def test_live_and_static_facts_agree(tmp_path: Path) -> None:
    (tmp_path / "live_src_mod.py").write_text(
        "class K:\n    def decide(self, users: 'int') -> 'bool':\n"
        "        # comment\n        return users > 1\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        module = importlib.import_module("live_src_mod")
        live = live_function_facts(module.K.decide)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("live_src_mod", None)
    static = ast.parse((tmp_path / "live_src_mod.py").read_text()).body[0]
    assert isinstance(static, ast.ClassDef)
    method = static.body[0]
    assert isinstance(method, ast.FunctionDef)
    assert live == function_facts(method)
    assert live is not None
    assert live.signature == "(self, users: int) -> bool"
    assert live_function_facts(len) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("(self, users:int)->bool", "(self, users: int) -> bool"),
        ("(a, /, b=1, *args, c: int = 2, **kw)", "(a, /, b=1, *args, c: int = 2, **kw)"),
        ("(*, x: 'Optional[int]' = None)", "(*, x: Optional[int] = None)"),
        ("()", "()"),
    ],
)
def test_signature_rendering(text: str, expected: str) -> None:
    assert normalize_signature(text) == expected


# A live read renders evaluated annotations, a static read the source text.
QUALIFIED = "(self, name: str, param: torch.nn.parameter.Parameter | None) -> None"


@pytest.mark.parametrize(
    ("live", "static"),
    [
        (QUALIFIED, "(self, name: str, param: Parameter | None) -> None"),
        (
            "(self, name: str, param: typing.Optional[torch.nn.parameter.Parameter]) -> None",
            "(self, name: str, param: Optional[Parameter]) -> None",
        ),
        ("(x: 'torch.Tensor') -> torch.Tensor", "(x: Tensor) -> 'Tensor'"),
        ("(x: dict[str, a.b.C] = {})", "(x:dict[str,C]={})"),
    ],
)
def test_signatures_compare_alike_however_annotations_are_qualified(live: str, static: str) -> None:
    assert comparable_signature(live) == comparable_signature(static)
    # What lock writes keeps the spelling it read.
    assert normalize_signature(live) != normalize_signature(static)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (QUALIFIED, "(self, name: str, parameter: Parameter | None) -> None"),
        (QUALIFIED, "(self, name: str, param: Parameter | None = None) -> None"),
        ("(self, x: a.B = 1)", "(self, x: B = 2)"),
        (QUALIFIED, "(self, name: str) -> None"),
        (QUALIFIED, "(self, name: str, param: Tensor | None) -> None"),
        (QUALIFIED, "(self, name: str, *, param: Parameter | None) -> None"),
        (QUALIFIED, "(self, param: Parameter | None, name: str) -> None"),
        (QUALIFIED, "(self, name: str, param: Parameter | None) -> bool"),
    ],
)
def test_signatures_that_really_differ_do_not_compare_alike(one: str, other: str) -> None:
    assert comparable_signature(one) != comparable_signature(other)
