"""Whether a replacement fits the target it replaces: it must accept every call
that the original's signature accepts, and a method that uses zero-argument
``super()`` needs the ``__class__`` cell that only a class body gives it."""

from __future__ import annotations

import ast
import inspect
import textwrap
import types
from collections.abc import Iterator

from .source import without_docstring

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_KEYWORD = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def _signature(obj: object) -> inspect.Signature | None:
    try:
        return inspect.signature(obj)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def misfits(original: object, replacement: object) -> list[str]:
    """Why some call that ``original`` accepts would fail on ``replacement``."""
    want, have = _signature(original), _signature(replacement)
    if want is None or have is None:
        return []
    return list(_misfits(want, have))


def _misfits(want: inspect.Signature, have: inspect.Signature) -> Iterator[str]:
    wanted = list(want.parameters.values())
    had = list(have.parameters.values())
    by_name = {p.name: p for p in had}
    var_positional = any(p.kind is p.VAR_POSITIONAL for p in had)
    var_keyword = any(p.kind is p.VAR_KEYWORD for p in had)
    positional = [p for p in had if p.kind in _POSITIONAL]
    omittable: set[str] = set()
    passed = sum(1 for p in wanted if p.kind in _POSITIONAL)
    if passed > len(positional) and not var_positional:
        yield f"it takes {len(positional)} positional arguments, callers may pass {passed}"
    for param in wanted:
        if param.kind is param.VAR_POSITIONAL and not var_positional:
            yield f"it has no *{param.name}, callers may pass any number of arguments"
        elif param.kind is param.VAR_KEYWORD and not var_keyword:
            yield f"it has no **{param.name}, callers may pass any keyword"
        elif param.kind in _KEYWORD:
            mine = by_name.get(param.name)
            if (mine is None or mine.kind not in _KEYWORD) and not var_keyword:
                yield f"it has no keyword parameter {param.name!r}, callers may pass {param.name}="
        if param.default is not param.empty:
            omittable.add(param.name)
    # Every parameter callers may leave out needs a default here too, and a
    # parameter callers never pass must not be required.
    for index, mine in enumerate(had):
        if mine.kind in (mine.VAR_POSITIONAL, mine.VAR_KEYWORD) or mine.default is not mine.empty:
            continue
        theirs = want.parameters.get(mine.name)
        if theirs is None and mine.kind in _POSITIONAL:
            position = [p for p in wanted if p.kind in _POSITIONAL]
            theirs = position[index] if index < len(position) else None
        if theirs is None:
            yield f"it requires {mine.name!r}, which callers never pass"
        elif theirs.name in omittable:
            yield f"{mine.name!r} has no default, callers may leave out {theirs.name}"


def unwritten(function: object) -> bool:
    """True for a body that only raises NotImplementedError, or a value that is
    NotImplemented: a ``new`` skeleton not written yet."""
    if function is NotImplemented:
        return True
    tree = _tree(function)
    if tree is None:
        return False
    body = without_docstring(tree.body)
    if len(body) != 1 or not isinstance(body[0], ast.Raise):
        return False
    raised = body[0].exc
    if isinstance(raised, ast.Call):
        raised = raised.func
    return isinstance(raised, ast.Name) and raised.id == "NotImplementedError"


def uses_zero_argument_super(function: object) -> bool:
    """True when ``function`` calls ``super()`` without arguments."""
    code = getattr(function, "__code__", None)
    if code is None or "super" not in code.co_names:
        return False
    tree = _tree(function)
    if tree is None:
        return True  # cannot tell: treat it as using it, and say so
    return any(
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "super"
        and not node.args
        and not node.keywords
        for node in ast.walk(tree)
    )


def _tree(function: object) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    try:
        source = textwrap.dedent(inspect.getsource(function))  # type: ignore[arg-type]
        node = ast.parse(source).body[0]
    except (OSError, TypeError, SyntaxError, IndexError):
        return None
    return node if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else None


def bind_class_cell(function: types.FunctionType, owner: type) -> types.FunctionType | None:
    """A copy of ``function`` whose zero-argument ``super()`` sees ``owner``, as if
    it had been written in ``owner``'s body; None when that cannot be built."""
    if function.__closure__:
        return None
    tree = _tree(function)
    if tree is None or tree.decorator_list:
        return None
    # Compiled inside a class body, the compiler gives the function its
    # __class__ cell; line numbers stay those of the backport module.
    first = function.__code__.co_firstlineno
    ast.increment_lineno(tree, first - tree.lineno)
    holder = ast.ClassDef(
        name="_backport_tool_owner",
        bases=[],
        keywords=[],
        body=[tree],
        decorator_list=[],
        lineno=first,
        col_offset=0,
        end_lineno=tree.end_lineno,
        end_col_offset=0,
    )
    module = ast.fix_missing_locations(ast.Module(body=[holder], type_ignores=[]))
    try:
        compiled = compile(module, function.__code__.co_filename, "exec", dont_inherit=True)
    except SyntaxError:
        return None
    body = next(c for c in compiled.co_consts if isinstance(c, types.CodeType))
    code = next(
        c for c in body.co_consts if isinstance(c, types.CodeType) and c.co_name == tree.name
    )
    if code.co_freevars != ("__class__",):
        return None
    bound = types.FunctionType(
        code,
        function.__globals__,
        function.__name__,
        function.__defaults__,
        (types.CellType(owner),),
    )
    bound.__kwdefaults__ = function.__kwdefaults__
    bound.__annotations__ = dict(function.__annotations__)
    bound.__dict__.update(function.__dict__)
    bound.__module__ = function.__module__
    bound.__doc__ = function.__doc__
    return bound
