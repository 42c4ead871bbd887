"""Whether a replacement fits the target it replaces: it must accept every call
that the original's signature accepts, and a method that uses zero-argument
``super()`` needs the ``__class__`` cell that only a class body gives it.

What this module reads of a replacement's code comes from the source text of
its backport module as it was hashed and executed, passed in by the caller;
never from the file on disk, which may have changed since the pin was checked.
A caller that does not know that text passes None: nothing is then read, a
skeleton is not recognized, and a method that uses ``super()`` is refused.
"""

from __future__ import annotations
import __future__

import ast
import builtins
import copy
import functools
import inspect
import operator
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .errors import FOREIGN_FAILURES
from .source import FunctionNode, parse_signature, without_docstring

_PO = inspect.Parameter.POSITIONAL_ONLY
_POK = inspect.Parameter.POSITIONAL_OR_KEYWORD
_KO = inspect.Parameter.KEYWORD_ONLY
_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def _signature(obj: object) -> inspect.Signature | None:
    try:
        return inspect.signature(obj)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _behind(obj: object) -> object:
    # The function a classmethod or staticmethod holds: a classmethod's is
    # compared with its class parameter, as a C type's classmethod's text
    # signature shows it.
    return obj.__func__ if isinstance(obj, (classmethod, staticmethod)) else obj


def misfits(
    original: object,
    replacement: object,
    declared: str | None = None,
    *,
    by_position: bool = False,
) -> list[str]:
    """Why some call that ``original`` accepts would fail on ``replacement``, or
    would hand an argument to another parameter than the one of its name.

    A classmethod or staticmethod is compared by the function it holds (a
    classmethod's with its class parameter). ``declared`` is the signature
    the manifest declares for the original, used when the original has none
    to read (C code without a text signature). ``by_position``: the original
    is only ever called with positional arguments (a property's getter,
    setter and deleter), so its parameters' names do not count.

    Callers pass a positional-only parameter by position alone, so the
    replacement may name it anything. A keyword argument the replacement has no
    parameter for may land in its ``**kwargs``, and an extra positional one in
    its ``*args``; but a keyword must not land in ``**kwargs`` while the
    replacement has a positional-only parameter of that name, or while the
    same argument passed by position would reach a named parameter.
    """
    want, have = _signature(_behind(original)), _signature(_behind(replacement))
    if want is None and declared is not None:
        want = _declared(declared)
    if want is None or have is None:
        return []
    if by_position:
        want = want.replace(
            parameters=[
                p.replace(kind=_PO) if p.kind is _POK else p for p in want.parameters.values()
            ]
        )
    # One failing call can break two rules; each reason is said once.
    return list(dict.fromkeys(_misfits(want, have)))


# Stands for a declared default, which is never evaluated.
_DEFAULT = object()


def _declared(text: str) -> inspect.Signature | None:
    try:
        node = parse_signature(text)
    except ValueError:
        return None
    args = node.args
    positional = [*args.posonlyargs, *args.args]
    defaults = [False] * (len(positional) - len(args.defaults)) + [True] * len(args.defaults)
    params = [
        inspect.Parameter(
            arg.arg,
            _PO if i < len(args.posonlyargs) else _POK,
            default=_DEFAULT if has else inspect.Parameter.empty,
        )
        for i, (arg, has) in enumerate(zip(positional, defaults, strict=True))
    ]
    if args.vararg is not None:
        params.append(inspect.Parameter(args.vararg.arg, inspect.Parameter.VAR_POSITIONAL))
    params += [
        inspect.Parameter(
            arg.arg, _KO, default=inspect.Parameter.empty if default is None else _DEFAULT
        )
        for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True)
    ]
    if args.kwarg is not None:
        params.append(inspect.Parameter(args.kwarg.arg, inspect.Parameter.VAR_KEYWORD))
    try:
        return inspect.Signature(params)
    except ValueError:  # duplicate names: not a signature Python would take
        return None


@dataclass(frozen=True)
class _Shape:
    """The parameters of one signature, grouped the way calls bind to them."""

    positional: tuple[inspect.Parameter, ...]
    named: dict[str, inspect.Parameter]  # every parameter but *args and **kwargs
    index: dict[str, int]  # position of each positional parameter
    var_positional: inspect.Parameter | None
    var_keyword: inspect.Parameter | None
    # Callers pass every required positional-only parameter, so at least this
    # many positional arguments.
    fewest: int

    @classmethod
    def of(cls, signature: inspect.Signature) -> _Shape:
        params = list(signature.parameters.values())
        positional = tuple(p for p in params if p.kind in (_PO, _POK))
        return cls(
            positional,
            {p.name: p for p in params if p.kind not in _VARIADIC},
            {p.name: i for i, p in enumerate(positional)},
            next((p for p in params if p.kind is p.VAR_POSITIONAL), None),
            next((p for p in params if p.kind is p.VAR_KEYWORD), None),
            sum(1 for p in positional if p.kind is _PO and p.default is p.empty),
        )

    def keyword(self, name: str) -> inspect.Parameter | None:
        """The parameter that a caller's ``name=`` binds to, if one does."""
        param = self.named.get(name)
        return param if param is not None and param.kind is not _PO else None

    def most(self) -> str:
        """How many positional arguments callers may pass, in words."""
        return "any number of" if self.var_positional else str(len(self.positional))


def _misfits(want_signature: inspect.Signature, have_signature: inspect.Signature) -> Iterator[str]:
    want, have = _Shape.of(want_signature), _Shape.of(have_signature)
    wanted, had = len(want.positional), len(have.positional)
    if wanted > had and not have.var_positional:
        yield f"it takes {had} positional arguments, callers may pass {wanted}"
    for param in want_signature.parameters.values():
        if param.kind is param.VAR_POSITIONAL:
            if not have.var_positional:
                yield f"it has no *{param.name}, callers may pass any number of arguments"
        elif param.kind is param.VAR_KEYWORD:
            if not have.var_keyword:
                yield f"it has no **{param.name}, callers may pass any keyword"
        elif param.kind is not _PO:
            yield from _passed_by_name(param, want, have)
    if want.var_keyword:
        # The original's **kwargs takes a keyword of any other name, one of its
        # positional-only names included; the replacement must not also get
        # that name by position.
        for position, mine in enumerate(have.positional):
            if (
                mine.kind is _POK
                and want.keyword(mine.name) is None
                and (want.var_positional or wanted > position)
            ):
                yield (
                    f"it takes {mine.name!r} as positional argument {position + 1}, "
                    f"callers may pass {mine.name}= after {want.most()} positional arguments"
                )
    for mine in have_signature.parameters.values():
        if mine.kind not in _VARIADIC and mine.default is mine.empty:
            yield from _unset(mine, want, have)


def _passed_by_name(param: inspect.Parameter, want: _Shape, have: _Shape) -> Iterator[str]:
    """What goes wrong when callers pass ``param`` (not positional-only) by its
    name, or by its position when it has one."""
    name = param.name
    mine = have.named.get(name)
    if mine is None:
        if not have.var_keyword:
            yield f"it has no keyword parameter {name!r}, callers may pass {name}="
            return
        # name= lands in **kwargs; the same argument passed by position must
        # not land in a named parameter instead, which would then read its
        # default whenever callers use the name.
        # (A required one there: _unset says so.)
        at = want.index.get(name, len(have.positional))
        other = have.positional[at] if at < len(have.positional) else None
        if other is not None and other.default is not other.empty:
            yield (
                f"it takes positional argument {at + 1} as {other.name!r}, callers may "
                f"pass it as {name}=, which lands in **{have.var_keyword.name} instead"
            )
        return
    if mine.kind is _PO:
        yield f"it takes {name!r} by position only, callers may pass {name}="
    if mine.kind is _KO:
        theirs = want.index.get(name)
        # Past the replacement's last positional parameter (and with no *args)
        # the positional count is the problem, reported once above.
        if theirs is not None and (have.var_positional or theirs < len(have.positional)):
            yield (
                f"it takes {name!r} by keyword only, "
                f"callers may pass it as positional argument {theirs + 1}"
            )
        return
    position = have.index[name]
    theirs = want.index.get(name)
    if theirs is not None:
        if theirs != position:
            yield (
                f"it takes {name!r} as positional argument {position + 1}, "
                f"callers may pass it as positional argument {theirs + 1}"
            )
    elif want.var_positional or len(want.positional) > position:
        yield (
            f"it takes {name!r} as positional argument {position + 1}, "
            f"callers may pass {name}= after {want.most()} positional arguments"
        )


def _unset(mine: inspect.Parameter, want: _Shape, have: _Shape) -> Iterator[str]:
    """Why some call may leave ``mine``, a required parameter of the
    replacement, without a value; causes reported elsewhere are not repeated."""
    name = mine.name
    theirs = want.keyword(name)
    if mine.kind is _KO:
        if theirs is None:
            yield _required(name, callers_may_pass=want.var_keyword is not None)
        elif theirs.default is not theirs.empty:
            yield f"{name!r} has no default, callers may leave out {name}"
        # A required one passed by position is reported in _passed_by_name.
        return
    position = have.index[name]
    if want.fewest > position:
        return  # every call passes this position
    if theirs is not None:
        if theirs.default is not theirs.empty:
            yield f"{name!r} has no default, callers may leave out {name}"
        # Required: a call that leaves this position out passes it by name or
        # at another position, and _passed_by_name reports where that fails.
        return
    if position >= len(want.positional):
        may = want.var_positional is not None or (
            mine.kind is _POK and want.var_keyword is not None
        )
        yield _required(name, callers_may_pass=may)
        return
    at = want.positional[position]
    if at.default is not at.empty:
        yield f"{name!r} has no default, callers may leave out {at.name}"
    elif at.name != name and at.name not in have.named and have.var_keyword:
        # Callers may pass at.name= instead of the position; it lands in the
        # replacement's **kwargs and leaves this one unset. (Without **kwargs,
        # or with a parameter of that name, _passed_by_name said why already.)
        yield f"{name!r} has no default, callers may pass {at.name}= instead"


def _required(name: str, *, callers_may_pass: bool) -> str:
    if callers_may_pass:
        return f"it requires {name!r}, which callers may leave out"
    return f"it requires {name!r}, which callers never pass"


def unwritten(function: object, source: str | bytes | None) -> bool:
    """True for a body that only raises NotImplementedError, or a value that is
    NotImplemented: a ``new`` skeleton not written yet.

    ``source`` is the text of the module that defined ``function``, as it ran.
    """
    if function is NotImplemented:
        return True
    # Parsing the module costs more than the rest of fitting a replacement:
    # only a function that names NotImplementedError can be a skeleton.
    if not any(
        "NotImplementedError" in obj.__code__.co_names
        for obj in _unwrapping(function)
        if isinstance(obj, types.FunctionType)
    ):
        return False
    tree = _parse(source)
    located = _located(function, tree) if tree is not None else None
    if located is None:
        return False
    body = without_docstring(located[1].body)
    if len(body) != 1 or not isinstance(body[0], ast.Raise):
        return False
    raised = body[0].exc
    if isinstance(raised, ast.Call):
        raised = raised.func
    return isinstance(raised, ast.Name) and raised.id == "NotImplementedError"


def uses_zero_argument_super(function: object, source: str | bytes | None) -> bool:
    """True when ``function``, or a function it wraps, calls ``super()`` without
    arguments. ``source`` is the text of the module that defined it, as it ran.

    A decorator's wrapper does not call ``super()`` itself, so the functions it
    wraps count too: those kept as ``__wrapped__`` and those the wrapper closes
    over, as far as the module's source defines them.
    """
    tree: ast.Module | object | None = _UNPARSED  # parsed only when needed
    for found in _reachable(function):
        code = found.__code__
        if "super" not in code.co_names:
            continue
        if tree is _UNPARSED:
            tree = _parse(source)
        node = _node(tree, code) if isinstance(tree, ast.Module) else None
        if node is None:
            if found is function:
                return True  # cannot tell: treat it as using it, and say so
            continue  # defined elsewhere (the decorator's own code): not ours
        if _calls_zero_argument_super(node):
            return True
    return False


@dataclass(frozen=True)
class Bound:
    """A replacement rebuilt so that its zero-argument ``super()`` sees the class
    it is set on, as if it had been written in that class's body."""

    function: Callable[..., Any]


# Why a replacement could not be rebuilt, each to follow "it cannot be bound to
# one here: ".
NOT_A_FUNCTION = "it is not a function, nor wraps one, defined in its backport module"
NOT_IN_SOURCE = "its definition is not in the source of its backport module as it ran"
HIDDEN_BY_DECORATOR = (
    "it is wrapped by a decorator that does not keep the function it wraps as "
    "__wrapped__ (functools.wraps does)"
)
NO_SUPER = "it does not call super() without arguments"
NOT_DECORATED = (
    "it wraps the function that calls super() other than with decorators, so the "
    "wrapper cannot be made again"
)
NOT_WRAPPED_AGAIN = "its decorators, applied again, did not wrap the rebuilt function"


def bind_class_cell(function: object, owner: type, source: str | bytes | None) -> Bound | str:
    """``function`` rebuilt so that its zero-argument ``super()`` sees ``owner``,
    as if it had been written in ``owner``'s body; or why it cannot be.

    ``source`` is the text of the module that defined ``function``, exactly as
    it was hashed and executed: the rebuilt code is compiled from it, never from
    the file, which may have changed since. A function decorated with
    decorators that are plain names or attributes and keep what they wrap as
    ``__wrapped__`` (``functools.wraps``) is rebuilt inside and decorated again.
    """
    tree = _parse(source)
    located = _located(function, tree) if tree is not None else None
    if tree is None or located is None or not _calls_zero_argument_super(located[1]):
        # The super() call may sit in a function that a wrapper closes over
        # without saying so; then the wrapper is what hides it.
        if tree is not None and any(
            found is not function
            and (node := _node(tree, found.__code__)) is not None
            and _calls_zero_argument_super(node)
            for found in _reachable(function)
        ):
            return HIDDEN_BY_DECORATOR
        if located is not None:
            return NO_SUPER
        return NOT_IN_SOURCE if isinstance(function, types.FunctionType) else NOT_A_FUNCTION
    inner, node = located
    outside = [name for name in inner.__code__.co_freevars if name != "__class__"]
    if outside:
        # The copy is compiled at the top of a module, where nothing encloses
        # it, so the variables it takes from its enclosing function are gone.
        return f"it uses {', '.join(outside)} from the function it is defined in"
    if inner is not function and not node.decorator_list:
        # Wrapped by a call such as functools.update_wrapper(wrapper, inner):
        # nothing says how to make that wrapper again.
        return NOT_DECORATED
    decorators: list[tuple[str, object]] = []
    if inner is not function:
        # The module holds a wrapper that closes over ``inner``, so the only
        # way to a wrapper around the rebuilt copy is to apply the decorators
        # again, as importing the module did; one that registers something
        # registers the copy too. Only a decorator that is a plain name or
        # attribute is looked up again, in the function's globals: a call such
        # as ``@lru_cache(maxsize=8)`` would evaluate its arguments again, and
        # an expression may do anything. The result must wrap the copy (its
        # __wrapped__), or it is refused below.
        # When ``inner is function`` the decorators returned the function
        # itself (``typing.no_type_check``, a registry): the copy keeps what
        # they set in its __dict__, and they are not run again.
        for expression in node.decorator_list:
            text = ast.unparse(expression)
            if not _plain(expression):
                return (
                    f"its decorator @{text} is not a plain name, and the function could "
                    "only be rebuilt by evaluating it again"
                )
            decorator = _resolve(expression, inner.__globals__)
            if decorator is _MISSING:
                return f"its decorator @{text} is no longer in its module's globals"
            if decorator is classmethod or decorator is staticmethod:
                continue  # the caller passes the function behind it, and wraps it again
            decorators.append((text, decorator))
    rebuilt = _rebuilt(inner, node, owner)
    if isinstance(rebuilt, str):
        return rebuilt
    if inner is function:
        return Bound(rebuilt)
    wrapped: object = rebuilt
    for text, decorator in reversed(decorators):
        try:
            wrapped = decorator(wrapped)  # type: ignore[operator]
        except FOREIGN_FAILURES as error:  # a decorator may raise anything
            return f"its decorator @{text} raised {type(error).__name__} when applied again"
    if not any(found is rebuilt for found in _unwrapping(wrapped)) or not callable(wrapped):
        return NOT_WRAPPED_AGAIN
    if not _same_wrapping(function, wrapped):
        # A name bound again later in the module is another decorator now:
        # what would be installed is not what the module defined.
        return (
            "its decorators, looked up again by name, wrap it differently from the module's "
            f"own {getattr(function, '__qualname__', 'function')} (a decorator's name was "
            "bound to something else after it was applied); keep each decorator's name bound "
            "to the decorator"
        )
    # What was set on the module's wrapper after it was made stays set; its
    # __wrapped__ is the old function, so that one is not copied.
    mine, theirs = getattr(wrapped, "__dict__", None), getattr(function, "__dict__", {})
    if isinstance(mine, dict):
        for key, value in theirs.items():
            if key != "__wrapped__":
                mine.setdefault(key, value)
    return Bound(wrapped)


def _plain(expression: ast.expr) -> bool:
    if isinstance(expression, ast.Attribute):
        return _plain(expression.value)
    return isinstance(expression, ast.Name)


_MISSING = object()
_UNPARSED = object()


def _resolve(expression: ast.expr, namespace: dict[str, Any]) -> object:
    """The object that a plain name or attribute names now, or _MISSING."""
    if isinstance(expression, ast.Attribute):
        value = _resolve(expression.value, namespace)
        return _MISSING if value is _MISSING else getattr(value, expression.attr, _MISSING)
    assert isinstance(expression, ast.Name)
    return namespace.get(expression.id, getattr(builtins, expression.id, _MISSING))


# The __future__ features a module was compiled with are in its code's flags;
# the copy must be compiled with them too (PEP 563 annotations, say).
_FUTURE_FLAGS: int = functools.reduce(
    operator.or_,
    (getattr(__future__, name).compiler_flag for name in __future__.all_feature_names),
    0,
)


def _rebuilt(
    function: types.FunctionType, node: FunctionNode, owner: type
) -> types.FunctionType | str:
    # Compiled inside a class body, the compiler gives the function its
    # __class__ cell. The node keeps the line numbers of the backport module,
    # and its decorators: they are only evaluated when the class body runs,
    # which it never does; the function's code is taken out of it.
    tree = copy.deepcopy(node)
    first = _first_line(tree)
    holder = ast.ClassDef(
        # Private names (self.__x) are mangled with the class the function was
        # written in, so that the code reads the names it read when it ran.
        name=_mangling_class(function.__qualname__),
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
    original = function.__code__
    try:
        compiled = compile(
            module,
            original.co_filename,
            "exec",
            flags=original.co_flags & _FUTURE_FLAGS,
            dont_inherit=True,
        )
    except (SyntaxError, ValueError):
        return NOT_IN_SOURCE
    code = next(
        (
            inner
            for body in compiled.co_consts
            if isinstance(body, types.CodeType)
            for inner in body.co_consts
            if isinstance(inner, types.CodeType) and inner.co_name == tree.name
        ),
        None,
    )
    if code is None or not _same_shape(code, original):
        return NOT_IN_SOURCE
    if code.co_freevars != ("__class__",):
        return NO_SUPER
    if sys.version_info >= (3, 11):
        code = code.replace(co_qualname=original.co_qualname)
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
    bound.__qualname__ = function.__qualname__
    return bound


def _mangling_class(qualname: str) -> str:
    # The innermost class around the definition; a part followed by <locals>
    # is a function. Python mangles no name inside a class whose name is
    # underscores only: the stand-in for a module-level function.
    parts = qualname.split(".")[:-1]
    classes = [
        part
        for i, part in enumerate(parts)
        if part != "<locals>" and (i + 1 == len(parts) or parts[i + 1] != "<locals>")
    ]
    return classes[-1] if classes else "_"


def _same_shape(rebuilt: types.CodeType, original: types.CodeType) -> bool:
    # A guard against a definition found by name and line that is not the one
    # that ran (a function imported from elsewhere, say): its code must take
    # the same arguments and locals.
    return (
        rebuilt.co_name,
        rebuilt.co_firstlineno,
        rebuilt.co_argcount,
        rebuilt.co_posonlyargcount,
        rebuilt.co_kwonlyargcount,
        rebuilt.co_varnames,
        rebuilt.co_names,
    ) == (
        original.co_name,
        original.co_firstlineno,
        original.co_argcount,
        original.co_posonlyargcount,
        original.co_kwonlyargcount,
        original.co_varnames,
        original.co_names,
    )


def _parse(source: str | bytes | None) -> ast.Module | None:
    # None: the caller does not know the source that ran. Bytes are decoded as
    # compile() decoded them (PEP 263 coding cookie).
    if source is None:
        return None
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError):
        return None


def _first_line(node: FunctionNode) -> int:
    # A decorated function's code starts at its first decorator.
    return min([node.lineno, *(d.lineno for d in node.decorator_list)])


def _node(tree: ast.Module, code: types.CodeType) -> FunctionNode | None:
    """The definition in ``tree`` that compiled to ``code``, by name and line."""
    for node in ast.walk(tree):
        if (
            isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.name == code.co_name
            and _first_line(node) == code.co_firstlineno
        ):
            return node
    return None


# How far to follow __wrapped__ and closures: decorators nest a few deep, and
# an object whose every attribute exists (a mock) must not loop forever.
_REACH = 32


def _same_wrapping(original: object, again: object) -> bool:
    # Layer by layer down __wrapped__, the same kind of wrapper: the same
    # type, and for a function the same code (a decorator's inner def).
    # The innermost layers are the function and its rebuilt copy.
    old, new = list(_unwrapping(original)), list(_unwrapping(again))
    if len(old) != len(new):
        return False
    for a, b in zip(old[:-1], new[:-1], strict=True):
        if type(a) is not type(b):
            return False
        if isinstance(a, types.FunctionType) and a.__code__ is not b.__code__:  # type: ignore[attr-defined]
            return False
    return True


def _unwrapping(obj: object) -> Iterator[object]:
    """``obj``, then what it wraps as ``__wrapped__``, and so on."""
    seen: set[int] = set()
    while obj is not None and id(obj) not in seen and len(seen) < _REACH:
        seen.add(id(obj))
        yield obj
        obj = getattr(obj, "__wrapped__", None)


def _located(function: object, tree: ast.Module) -> tuple[types.FunctionType, FunctionNode] | None:
    """The innermost function that ``function`` wraps through ``__wrapped__``
    (``function`` itself when it wraps none) and that ``tree`` defines, with its
    definition: the ``def`` a decorated replacement was written as."""
    found = None
    for obj in _unwrapping(function):
        if isinstance(obj, types.FunctionType):
            node = _node(tree, obj.__code__)
            if node is not None:
                found = (obj, node)
    return found


def _reachable(function: object) -> Iterator[types.FunctionType]:
    """``function`` and the functions it wraps: through ``__wrapped__``, and
    through its closure, where a decorator without ``functools.wraps`` keeps
    them."""
    seen: set[int] = set()
    todo = [function]
    while todo and len(seen) < _REACH:
        obj = todo.pop(0)
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, types.FunctionType):
            yield obj
            for cell in obj.__closure__ or ():
                try:
                    contents = cell.cell_contents
                except ValueError:  # an empty cell
                    continue
                if isinstance(contents, types.FunctionType):
                    todo.append(contents)
        wrapped = getattr(obj, "__wrapped__", None)
        if wrapped is not None:
            todo.append(wrapped)


def _calls_zero_argument_super(node: FunctionNode) -> bool:
    return any(
        isinstance(call, ast.Call)
        and isinstance(call.func, ast.Name)
        and call.func.id == "super"
        and not call.args
        and not call.keywords
        for call in ast.walk(node)
    )
