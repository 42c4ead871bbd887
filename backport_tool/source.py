"""Source facts shared by the live and the static readers: normalized source,
fingerprints and signatures of functions, all computed from the AST.

Both readers end in :func:`function_facts` on an ``ast.FunctionDef``, so a
fingerprint taken from an installed torch and one read out of a wheel agree
exactly when the code does.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import inspect
import linecache
import operator
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import CodeType, FunctionType

from .cache import entry, read_json, write_json

FINGERPRINT_PREFIX = "sha256:"

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef


@dataclass(frozen=True)
class FunctionFacts:
    """What the source of one function, or of the assignment that binds a value,
    says about it."""

    signature: str | None  # None for a value
    fingerprint: str
    source: str


def normalized_source(node: FunctionNode) -> str:
    """The function's code with comments, formatting and its docstring dropped."""
    # A shallow copy: only the body list is replaced, and unparse changes
    # nothing (a deep copy was half the cost of verifying a target).
    node = copy.copy(node)
    # A docstring documents; it does not change what the function does.
    node.body = without_docstring(node.body) or [ast.Pass()]
    return ast.unparse(node)


def without_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    """``body`` without its leading docstring, if it has one."""
    if (
        body
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    ):
        return body[1:]
    return body


def fingerprint_of(source: str) -> str:
    return FINGERPRINT_PREFIX + hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]


def signature_of(node: FunctionNode) -> str:
    return _render(node.args, node.returns)


def normalize_signature(text: str) -> str:
    """Return signature ``text`` in one canonical spelling (PEP 8 spacing, annotations
    unquoted), so that only real differences count; raise ``ValueError`` if it is
    not a signature."""
    func = parse_signature(text)
    return _render(func.args, func.returns)


# The form in which two signatures are compared (ValueError when ``text`` is
# not a signature). A live read renders evaluated annotations
# (typing.Optional[torch.nn.parameter.Parameter]), a static read the source
# text (Optional[Parameter]): one function, spelled two ways. So every dotted
# name in an annotation is cut to its last part; the fingerprint still sees
# any real change to the source.
def comparable_signature(text: str) -> str:
    func = parse_signature(text)
    args = func.args
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
    for arg in every:
        if arg is not None:
            arg.annotation = _unqualified(arg.annotation)
    return _render(args, _unqualified(func.returns))


# The form in which a signature read statically is compared with a recorded
# one: names, kinds and defaults, what a call binds to. The source spells an
# annotation as written (an alias: TypeAny), the live read evaluates it
# (type[typing.Any]), and no static read can tell them apart; the fingerprint
# sees any real change to an annotation. ValueError when ``text`` is not a
# signature.
def call_shape(text: str) -> str:
    args = parse_signature(text).args
    for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
        if arg is not None:
            arg.annotation = None
    return _render(args, None)


def _unqualified(node: ast.expr | None) -> ast.expr | None:
    if node is None:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:
            node = ast.parse(node.value, mode="eval").body
        except SyntaxError:
            return node
    unqualified: ast.expr = _LastNamePart().visit(node)
    return unqualified


class _LastNamePart(ast.NodeTransformer):
    def visit_Attribute(self, node: ast.Attribute) -> ast.expr:
        base = node.value
        while isinstance(base, ast.Attribute):
            base = base.value
        if isinstance(base, ast.Name):
            return ast.Name(node.attr, ast.Load())
        # Not a dotted name (f().x): only the names inside it are cut.
        self.generic_visit(node)
        return node


# ValueError when ``text`` is not a signature.
def parse_signature(text: str) -> ast.FunctionDef:
    text = text.strip()
    if not text.startswith("("):
        raise ValueError(text)
    try:
        module = ast.parse(f"def _{text}:\n    pass\n")
    except SyntaxError:
        raise ValueError(text) from None
    if len(module.body) != 1 or not isinstance(module.body[0], ast.FunctionDef):
        raise ValueError(text)
    return module.body[0]


def _unquote(node: ast.expr | None) -> str | None:
    if node is None:
        return None
    # inspect renders string annotations (PEP 563) with quotes; unquote them.
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:
            return ast.unparse(ast.parse(node.value, mode="eval").body)
        except SyntaxError:
            pass
    return ast.unparse(node)


def _param(arg: ast.arg, default: ast.expr | None, prefix: str = "") -> str:
    annotation = _unquote(arg.annotation)
    text = prefix + arg.arg + (f": {annotation}" if annotation else "")
    if default is not None:
        text += f" = {ast.unparse(default)}" if annotation else f"={ast.unparse(default)}"
    return text


def _render(args: ast.arguments, returns: ast.expr | None) -> str:
    # Written out rather than ast.unparse(args), which spells "x: int=1";
    # this matches inspect.Signature's "x: int = 1".
    positional = [*args.posonlyargs, *args.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
    defaults += args.defaults
    parts = [_param(a, d) for a, d in zip(positional, defaults, strict=True)]
    if args.posonlyargs:
        parts.insert(len(args.posonlyargs), "/")
    if args.vararg is not None:
        parts.append(_param(args.vararg, None, "*"))
    elif args.kwonlyargs:
        parts.append("*")
    parts += [_param(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)]
    if args.kwarg is not None:
        parts.append(_param(args.kwarg, None, "**"))
    result = _unquote(returns)
    return f"({', '.join(parts)})" + (f" -> {result}" if result else "")


def assignment_facts(node: ast.Assign | ast.AnnAssign) -> FunctionFacts:
    """Facts of a value target: its module-level (or class-level) assignment,
    normalized like a function's source, so that live and static reads agree."""
    source = ast.unparse(node)
    return FunctionFacts(None, fingerprint_of(source), source)


def function_facts(node: FunctionNode) -> FunctionFacts:
    source = normalized_source(node)
    return FunctionFacts(signature_of(node), fingerprint_of(source), source)


def property_facts(accessors: Sequence[FunctionNode]) -> FunctionFacts:
    """Facts of a property made of several defs (getter, setter, deleter): the
    getter's signature, and a fingerprint of every def, so that a change to
    any of them is seen."""
    getter = accessors[0]
    for node in accessors[1:]:
        if any(isinstance(d, ast.Attribute) and d.attr == "getter" for d in node.decorator_list):
            getter = node
    source = "\n".join(normalized_source(node) for node in accessors)
    return FunctionFacts(signature_of(getter), fingerprint_of(source), source)


def class_facts(node: ast.ClassDef) -> FunctionFacts:
    """Facts of a class target: the whole ``class`` statement, docstrings of the
    class and of the functions and classes in it dropped. No signature: a
    class's call signature may come from a base the static reader cannot see."""
    node = _without_docstrings(node)
    source = ast.unparse(node)
    return FunctionFacts(None, fingerprint_of(source), source)


def _without_docstrings(node: ast.ClassDef) -> ast.ClassDef:
    # Copies only the nodes whose body changes; the rest is shared.
    node = copy.copy(node)
    body: list[ast.stmt] = []
    for stmt in without_docstring(node.body):
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            method = copy.copy(stmt)
            method.body = without_docstring(stmt.body) or [ast.Pass()]
            body.append(method)
        elif isinstance(stmt, ast.ClassDef):
            body.append(_without_docstrings(stmt))
        else:
            body.append(stmt)
    node.body = body or [ast.Pass()]
    return node


def live_function_facts(obj: object) -> FunctionFacts | None:
    """Facts of a live function or class from its source file; None if it has
    no Python source."""
    path, key = _facts_entry(obj)
    if path is not None:
        entry = read_json(path)
        if isinstance(entry, dict) and entry.get("key") == key:
            got = entry.get("facts")
            if got is None:
                return None
            if (
                isinstance(got, list)
                and len(got) == 3
                and isinstance(got[0], str)
                and all(isinstance(part, str) for part in got[1:])
            ):
                return FunctionFacts(got[0], got[1], got[2])
    facts = _read_function_facts(obj)
    if path is not None:
        stored = None if facts is None else [facts.signature, facts.fingerprint, facts.source]
        write_json(path, {"key": key, "facts": stored})
    return facts


# Reading a target's source and normalizing it is the larger part of
# verifying it at apply time, so the facts are kept in the cache directory.
# An entry is keyed by the file's modification time and size as linecache
# has just checked them (the test by which the import system trusts a .pyc)
# and by the hash of the lines the function's code spans as linecache holds
# them, which are the lines inspect.getsource reads: an entry never stands for
# other source than the one reading it afresh would find.
# 2: a block whose dedent does not parse is read as written (parse_block).
_FACTS_FORMAT = "2"


def _facts_entry(obj: object) -> tuple[Path | None, str]:
    function = inspect.unwrap(obj) if callable(obj) else obj
    code = getattr(function, "__code__", None)
    if not isinstance(code, CodeType) or not isinstance(function, FunctionType):
        return None, ""
    filename = code.co_filename
    linecache.checkcache(filename)
    lines = linecache.getlines(filename)
    # The size and modification time linecache has just checked the file
    # against (None for lines that no file on disk backs: nothing is cached).
    checked = linecache.cache.get(filename)
    if checked is None or len(checked) != 4 or checked[1] is None:
        return None, ""
    size, mtime = checked[0], checked[1]
    first = code.co_firstlineno
    last = _last_line(code)
    if not lines or last < first or last > len(lines):
        return None, ""
    digest = hashlib.sha256("".join(lines[first - 1 : last]).encode("utf-8", "surrogateescape"))
    parts = (
        _FACTS_FORMAT,
        sys.version,
        filename,
        repr(mtime),
        str(size),
        function.__qualname__,
        str(first),
        digest.hexdigest(),
    )
    return entry("facts", ".json", *parts)


_second = operator.itemgetter(1)
_third = operator.itemgetter(2)


def _last_line(code: CodeType) -> int:
    # The last source line any instruction of the function (or of a function
    # nested in it) comes from, closing brackets of a statement included.
    # map/filter keep the walk over every instruction in C (filter drops the
    # None of instructions without a line).
    positions = getattr(code, "co_positions", None)
    if positions is not None:
        last = max(filter(None, map(_second, positions())), default=0)
    else:  # Python 3.10
        last = max(filter(None, map(_third, code.co_lines())), default=0)
    for const in code.co_consts:
        if isinstance(const, CodeType):
            last = max(last, _last_line(const))
    return last


def _read_function_facts(obj: object) -> FunctionFacts | None:
    try:
        text = inspect.getsource(obj)  # type: ignore[arg-type]
    except (OSError, TypeError):
        return None
    node = parse_block(text)
    if node is None:
        return None
    if isinstance(obj, type):
        return class_facts(node) if isinstance(node, ast.ClassDef) else None
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return None
    return function_facts(node)


def parse_block(text: str) -> ast.stmt | None:
    """The first statement of ``text``, the source of one def or class as
    :func:`inspect.getsource` gives it (indented as in its file); None if it
    does not parse.

    The live read parses it dedented, and dedenting changes the string
    literals in it (the lines of a multi-line string lose the indentation of
    the def, and whitespace-only lines their whitespace). Fingerprints
    recorded from live reads hash those literals so, and a static read of a
    def (:func:`as_read_live`) parses the same text through here, so that
    both agree on the same file.
    """
    try:
        module = ast.parse(textwrap.dedent(text))
    except SyntaxError:
        # A line of a string at a smaller indentation than the def (a
        # template at column 0 in a method) leaves nothing to dedent. The
        # block is read in place, its literals as written, rather than not at
        # all.
        try:
            module = ast.parse("if 1:\n" + text)
        except SyntaxError:
            return None
        first = module.body[0] if module.body else None
        if not isinstance(first, ast.If) or not first.body:
            return None
        return first.body[0]
    return module.body[0] if module.body else None


def as_read_live(node: ast.AST, lines: Sequence[str]) -> ast.AST:
    """``node``, a def or class that a static read found among ``lines`` (its
    module's lines, ends kept), as the live read parses it: the block
    :func:`inspect.getsource` would give, through :func:`parse_block`. Only
    a multi-line string can come out different, so other nodes are returned
    as they are; so is one whose block does not parse as the same def."""
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return node
    if not _has_multiline_string(node):
        return node
    # co_firstlineno of a decorated def, and inspect's first line of a
    # decorated class, is that of its first decorator.
    first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
    if not 0 < first <= len(lines):
        return node
    block = inspect.getblock(list(lines[first - 1 :]))
    parsed = parse_block("".join(block))
    if type(parsed) is not type(node) or getattr(parsed, "name", None) != node.name:
        return node
    return parsed


def _has_multiline_string(node: ast.AST) -> bool:
    for child in ast.walk(node):
        if isinstance(child, ast.JoinedStr) or (
            isinstance(child, ast.Constant) and isinstance(child.value, (str, bytes))
        ):
            end = getattr(child, "end_lineno", None)
            if end is None or end != child.lineno:
                return True
    return False
