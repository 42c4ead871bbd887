from __future__ import annotations

import ast
import importlib
import inspect
import sys
import types
from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

from . import configs

if TYPE_CHECKING:
    # Annotations only: the patcher imports this module on the startup path,
    # which must not pay for the manifest's yaml.
    from .manifest import SymbolRef


class SymbolMissing(Exception):
    """A module or attribute named by a symbol does not exist."""


# Marks "the owner has no attribute of its own under this name".
ABSENT = object()


@dataclass(frozen=True)
class Resolved:
    """An attribute found through a symbol reference.

    ``owner`` is the object that the qualname's last part is looked up on (a
    class or a module). ``raw`` is the object as stored in ``defined_on``'s
    ``__dict__`` (so a staticmethod stays a staticmethod), ``own`` is what
    ``owner`` holds itself: ``raw`` when the attribute is not inherited, else
    :data:`ABSENT`.
    """

    owner: object
    name: str
    raw: object
    defined_on: object
    own: object

    @property
    def function(self) -> object:
        """The callable behind ``raw``, unwrapped from static/classmethod."""
        return unwrapped(self.raw)

    @property
    def defined_on_name(self) -> str:
        """Qualified name of where the attribute is defined (for reports)."""
        where = self.defined_on
        if isinstance(where, ModuleType):
            return where.__name__
        module = getattr(where, "__module__", "?")
        return f"{module}:{getattr(where, '__qualname__', repr(where))}"


def unwrapped(raw: object) -> object:
    """The function behind a staticmethod or classmethod, else ``raw``."""
    # type(), not isinstance(): isinstance also reads __class__, which some of
    # torch's deprecated module attributes turn into a warning.
    if issubclass(type(raw), (staticmethod, classmethod)):
        return raw.__func__  # type: ignore[attr-defined]
    return raw


# Functions and methods implemented in C: no Python source, and at best a
# text signature.
_BUILTINS = (
    types.BuiltinFunctionType,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
    types.ClassMethodDescriptorType,
    types.MethodWrapperType,
)


def is_builtin(obj: object) -> bool:
    """True for a function or method implemented in C (a builtin, or a method
    of a C type such as ``object.__init_subclass__``)."""
    return issubclass(type(obj), _BUILTINS)


def method_kind(raw: object) -> str | None:
    """``"classmethod"`` or ``"staticmethod"`` for an attribute stored as one
    (a C type's classmethod, such as ``object.__init_subclass__``, included),
    else None."""
    kind = type(raw)
    if issubclass(kind, (classmethod, types.ClassMethodDescriptorType)):
        return "classmethod"
    if issubclass(kind, staticmethod):
        return "staticmethod"
    return None


def import_module(name: str) -> ModuleType:
    """Import ``name``; raise :class:`SymbolMissing` if it (or a parent) does not exist.

    Any other exception raised while importing propagates: that module exists
    but is broken, which is a different problem from "absent".
    """
    # What importlib.import_module does first, without its locking and name
    # checks: an import that has finished is the entry in sys.modules (apply
    # resolves every target and required symbol this way).
    found = sys.modules.get(name)
    if found is not None and not getattr(getattr(found, "__spec__", None), "_initializing", False):
        return found
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        # Only "this module is absent" is missing. A module that exists but
        # imports something absent is broken, not missing.
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise SymbolMissing(f"module {name!r} not found") from None
        raise


def resolve_owner(ref: SymbolRef) -> tuple[object, str]:
    """Import ``ref``'s module and find the object its last part is looked up on,
    and where that is (for messages)."""
    owner: object = import_module(ref.module)
    parts = ref.qualname.split(".")[:-1]
    for index, part in enumerate(parts):
        try:
            owner = getattr(owner, part)
        except AttributeError:
            walked = _walked(ref, parts[:index])
            raise SymbolMissing(f"{walked} has no attribute {part!r}") from None
    return owner, _walked(ref, parts)


def _walked(ref: SymbolRef, parts: list[str]) -> str:
    return f"{ref.module}:{'.'.join(parts)}" if parts else ref.module


def resolve(ref: SymbolRef) -> Resolved:
    """Import ``ref``'s module and find the attribute, inherited ones included."""
    owner, walked = resolve_owner(ref)
    name = ref.qualname.rsplit(".", 1)[-1]
    if isinstance(owner, type):
        found = defined_in(owner.__mro__, name)
        if found is None:
            raise SymbolMissing(f"class {walked} has no attribute {name!r} (own or inherited)")
        klass, raw = found
        return Resolved(owner, name, raw, klass, raw if klass is owner else ABSENT)
    namespace = getattr(owner, "__dict__", None)
    if isinstance(namespace, dict) and name in namespace:
        raw = namespace[name]
        return Resolved(owner, name, raw, owner, raw)
    # Some modules serve attributes through __getattr__ (torch's config
    # modules keep their options outside __dict__).
    try:
        site = configs.site_of(owner, name)
        # Read without storing a copy of a list default as the user's value.
        value = configs.read(site) if site is not None else getattr(owner, name)
    except AttributeError:
        raise SymbolMissing(f"{walked} has no attribute {name!r}") from None
    return Resolved(owner, name, value, owner, ABSENT)


def defined_in(classes: Iterable[type], name: str) -> tuple[type, object] | None:
    """The first of ``classes`` whose ``__dict__`` has ``name``, and the raw value."""
    # The __dict__s rather than getattr: getattr would bind the function and
    # hide staticmethod/classmethod wrappers.
    for klass in classes:
        if name in vars(klass):
            return klass, vars(klass)[name]
    return None


def signature_text(obj: object) -> str | None:
    """Return the canonical signature of ``obj``, or None if it has none."""
    try:
        signature = inspect.signature(obj)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    # Under PEP 563 annotations are strings, which inspect renders quoted;
    # show them as the source wrote them.
    params = [
        p.replace(annotation=_Source(p.annotation)) if isinstance(p.annotation, str) else p
        for p in signature.parameters.values()
    ]
    sentinels = _empty_defaults(obj)
    for index, param in enumerate(params):
        if param.name in sentinels and param.default is param.empty:
            # A default that is inspect's own "no default" sentinel
            # (`default_value=inspect.Signature.empty`): inspect takes it for
            # none, which makes the signature invalid (a parameter without a
            # default after one with), and replace() raise.
            params[index] = param.replace(default=_Source(EMPTY_DEFAULT))
    for index, param in enumerate(params):
        if param.default is not param.empty and type(param.default) not in _PLAIN:
            text = repr(param.default)
            if ("<" in text or " at 0x" in text) and not _spells(text):
                params[index] = param.replace(default=_Source(_named(param.default, obj)))
    returns = signature.return_annotation
    return str(
        signature.replace(
            parameters=params,
            return_annotation=_Source(returns) if isinstance(returns, str) else returns,
        )
    )


# How a default that is inspect's "no default" sentinel is spelled, live and
# static alike (the static reader spells every name of it so).
EMPTY_DEFAULT = "inspect.Signature.empty"
EMPTY_NAMES = frozenset({"inspect.Signature.empty", "inspect.Parameter.empty", "inspect._empty"})


def _empty_defaults(obj: object) -> frozenset[str]:
    # The parameters of the function inspect.signature reads whose default
    # is inspect.Parameter.empty itself, from its __defaults__ and
    # __kwdefaults__ (the Signature cannot tell them from ones without).
    function = getattr(obj, "__func__", obj)
    try:
        function = inspect.unwrap(
            function,  # type: ignore[arg-type]
            stop=lambda f: hasattr(f, "__signature__"),
        )
    except ValueError:
        return frozenset()
    code = getattr(function, "__code__", None)
    if not isinstance(code, types.CodeType) or not isinstance(function, types.FunctionType):
        return frozenset()
    empty = inspect.Parameter.empty
    names: set[str] = set()
    defaults = function.__defaults__ or ()
    positional = code.co_varnames[: code.co_argcount]
    for name, value in zip(positional[len(positional) - len(defaults) :], defaults, strict=True):
        if value is empty:
            names.add(name)
    for name, value in (function.__kwdefaults__ or {}).items():
        if value is empty:
            names.add(name)
    return frozenset(names)


# Defaults whose repr is their source text; any other is looked at.
_PLAIN = frozenset({int, float, complex, str, bytes, bool, type(None), type(...)})


def _spells(text: str) -> bool:
    # The repr is an expression, the same in every process.
    if " at 0x" in text:
        return False
    try:
        ast.parse(text, mode="eval")
    except (SyntaxError, ValueError):
        return False
    return True


def _named(value: object, function: object) -> str:
    # A default whose repr is no expression (<function noop_context_fn at
    # 0x7f...>, <RedOpType.SUM: 0>): written as the name the function's
    # module has for it, as its source spells it, so that the text parses, is
    # the same in every process, and reads like a static read of the source.
    code_owner = inspect.unwrap(getattr(function, "__func__", function))  # type: ignore[arg-type]
    home = getattr(code_owner, "__globals__", None)
    if isinstance(home, dict):
        for name, held in home.items():
            if held is value:
                return str(name)
        for name, held in home.items():
            if isinstance(held, type):
                for attr, inner in vars(held).items():
                    if inner is value:
                        return f"{name}.{attr}"
    if isinstance(value, ModuleType):
        return value.__name__
    qualname = getattr(value, "__qualname__", None)
    if isinstance(qualname, str) and all(part.isidentifier() for part in qualname.split(".")):
        return qualname
    # Nothing names it (an object created in the def line): what stands for
    # it says so, and never changes between processes.
    return "..."


class _Source:
    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text
