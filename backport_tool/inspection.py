"""What a target or required symbol is, read either from the live interpreter or
statically from another version's sources. The loader decides statuses from
these facts alone, so both readers give the same verdict for the same code."""

from __future__ import annotations

import ast
import copy
import importlib.util
import logging
import math
import operator
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from . import patcher
from .errors import FOREIGN_FAILURES, describe
from .findings import Presence
from .manifest import SymbolRef
from .source import (
    FunctionFacts,
    FunctionNode,
    assignment_facts,
    class_facts,
    function_facts,
    live_function_facts,
    property_facts,
    signature_of,
)
from .symbols import (
    ABSENT,
    EMPTY_DEFAULT,
    EMPTY_NAMES,
    Resolved,
    SymbolMissing,
    is_builtin,
    resolve,
    signature_text,
)

if TYPE_CHECKING:
    from .static import Found, StaticIndex

logger = logging.getLogger("backport_tool")


@dataclass(frozen=True)
class SymbolFacts:
    symbol: str
    presence: Presence
    message: str = ""
    defined_on: str | None = None
    signature: str | None = None
    function: FunctionFacts | None = None
    resolved: Resolved | None = None
    # C code (a builtin function, a method of a C type): no source, no
    # fingerprint, and a signature only where it has a text signature.
    builtin: bool = False


class Inspector(Protocol):
    live: bool
    label: str

    def inspect(self, ref: SymbolRef, *, source: bool = True) -> SymbolFacts:
        """Find ``ref``; ``source=False`` skips reading its source (presence only)."""
        ...


class LiveInspector:
    """Imports modules in this interpreter and looks at the real objects.

    With ``settled``, a symbol whose module is not settled (not imported yet, or
    still executing: the lazy hook runs inside an import) is read statically
    from its installed source instead, so that the hook never imports
    anything or sees a half-initialized module.
    """

    live = True
    label = "installed"

    def __init__(self, settled: Callable[[str], bool] | None = None) -> None:
        self.settled = settled
        self._indexes: dict[Path, StaticIndex] = {}

    def inspect(self, ref: SymbolRef, *, source: bool = True) -> SymbolFacts:
        if self.settled is not None and not self.settled(ref.module):
            return self._from_source(ref)
        symbol = str(ref)
        try:
            resolved = resolve(ref)
        except SymbolMissing as exc:
            return SymbolFacts(symbol, Presence.MISSING, str(exc))
        except FOREIGN_FAILURES as exc:
            logger.debug("backport-tool: resolving %s failed", symbol, exc_info=True)
            return SymbolFacts(symbol, Presence.FAILED, f"import raised {describe(exc)}")
        unpatched = _unpatched(resolved)
        if unpatched is None:
            return SymbolFacts(
                symbol, Presence.MISSING, f"{symbol} was created by a backport in this process"
            )
        resolved = unpatched
        function = resolved.function
        if not source:
            # Presence only: a required symbol's report says no more.
            return SymbolFacts(symbol, Presence.FOUND, resolved=resolved)
        builtin = False
        if callable(function):
            facts = live_function_facts(function)
            # A class has no signature of its own (see class_facts).
            signature = None if isinstance(function, type) else signature_text(function)
            builtin = facts is None and is_builtin(function)
        else:
            # A value or a property: its facts are those of its source (the
            # assignment; the property's defs), exactly what a static read
            # of a wheel finds.
            read = self._from_source(ref)
            facts, signature = read.function, read.signature
        return SymbolFacts(
            symbol,
            Presence.FOUND,
            defined_on=resolved.defined_on_name,
            signature=signature,
            function=facts,
            resolved=resolved,
            builtin=builtin,
        )

    def _from_source(self, ref: SymbolRef) -> SymbolFacts:
        module = sys.modules.get(ref.module)
        try:
            spec = module.__spec__ if module is not None else importlib.util.find_spec(ref.module)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.origin or not spec.has_location:
            return SymbolFacts(str(ref), Presence.MISSING, f"module {ref.module!r} not found")
        origin = Path(spec.origin)
        depth = ref.module.count(".") + (1 if origin.name == "__init__.py" else 0)
        root = origin.parents[depth]
        if root not in self._indexes:
            # The static reader (and packaging's wheel tags, 5 ms) only for a
            # module that is not imported yet: apply of imported ones never.
            from .static import DirTree, StaticIndex  # noqa: PLC0415

            self._indexes[root] = StaticIndex(DirTree(root))
        return StaticInspector(self._indexes[root]).inspect(ref)


def _literal(node: ast.AST) -> ast.expr | None:
    # The value of `NAME = <literal>` as a live read spells it (its repr),
    # where that repr is itself Python.
    value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
    if value is None:
        return None
    if isinstance(value, ast.Constant) and value.value is ...:
        # `bfloat16: dtype = ...` in a stub says nothing of the value.
        return None
    try:
        spelled = repr(ast.literal_eval(value))
        return ast.parse(spelled, mode="eval").body
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        # A name bound to an expression (`LIMIT = 2 ** 3`) stays a name, as
        # tests/test_drift.py pins, though the live read shows its value.
        return None


# How many bits an int computed for a default may have: enough for any
# sentinel (2 ** 63, 1 << 64), small enough that no source can make the
# reader compute for long (2 ** 10 ** 10).
_MAX_INT_BITS = 4096

# What a call in a default may be, and what it gives: `float("inf")` is how
# Python spells infinity.
_FLOAT_WORDS = frozenset({"inf", "-inf", "+inf", "infinity", "-infinity", "+infinity", "nan"})

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.LShift: operator.lshift,
    ast.RShift: operator.rshift,
    ast.BitOr: operator.or_,
    ast.BitAnd: operator.and_,
    ast.BitXor: operator.xor,
}

_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
    ast.Invert: operator.invert,
}


_ENUM_BASES = frozenset({"Enum", "IntEnum", "StrEnum", "Flag", "IntFlag", "ReprEnum"})


class _NotConstant(Exception):
    pass


def _constant(node: ast.expr) -> object:
    # The value of an expression made of number literals only, computed
    # without running any code of the sources: arithmetic, unary signs and
    # float("inf"); _NotConstant for anything else.
    if isinstance(node, ast.Constant):
        if type(node.value) in (int, float, complex, bool):
            return node.value
        raise _NotConstant
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _number(_UNARY[type(node.op)](_constant(node.operand)))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _constant(node.left), _constant(node.right)
        if (
            isinstance(node.op, ast.Pow)
            and isinstance(left, int)
            and isinstance(right, int)
            and (right > _MAX_INT_BITS or abs(left).bit_length() * right > _MAX_INT_BITS)
        ):
            raise _NotConstant
        if isinstance(node.op, ast.LShift) and isinstance(right, int) and right > _MAX_INT_BITS:
            raise _NotConstant
        return _number(_BINARY[type(node.op)](left, right))
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "float"
        and len(node.args) == 1
        and not node.keywords
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
        and node.args[0].value.strip().lower() in _FLOAT_WORDS
    ):
        return float(node.args[0].value)
    raise _NotConstant


def _number(value: object) -> object:
    if isinstance(value, int) and value.bit_length() > _MAX_INT_BITS:
        raise _NotConstant
    return value


def _spelled(node: ast.expr) -> ast.expr | None:
    # A constant expression (`1.0 / 8`) as the live read spells its value
    # (its repr, 0.125); None when it is not one. A bare literal is left as
    # written: its source is its repr already.
    if isinstance(node, ast.Constant):
        # A literal is its repr, but for `...` (Ellipsis) and a float
        # literal too large to be finite (1e400: inf).
        if node.value is ...:
            return ast.Name("Ellipsis", ast.Load())
        if not (isinstance(node.value, float) and not math.isfinite(node.value)):
            return None
    try:
        value = _constant(node)
    except (_NotConstant, ArithmeticError, ValueError, TypeError):
        return None
    try:
        return ast.parse(repr(value), mode="eval").body
    except (SyntaxError, ValueError):
        return None


def _unpatched(resolved: Resolved) -> Resolved | None:
    # A target this process already patched is judged by its original, so that
    # check, lock and status read the code the backport replaced; None when
    # the backport created it.
    before = patcher.before_patch(resolved.owner, resolved.name)
    if before is None:
        return resolved
    where, raw = before
    if raw is ABSENT:
        return None
    own = raw if where is resolved.owner else ABSENT
    return replace(resolved, raw=raw, defined_on=where, own=own)


class StaticInspector:
    """Parses another version's sources; never imports them."""

    live = False

    def __init__(self, index: StaticIndex) -> None:
        self.index = index
        self.label = index.tree.label
        self.spec = index.tree.spec

    def inspect(self, ref: SymbolRef, *, source: bool = True) -> SymbolFacts:
        symbol = str(ref)
        from .static import Found, Missing  # noqa: PLC0415 - loaded with the index

        result = self.index.lookup(ref)
        if isinstance(result, Missing):
            return SymbolFacts(symbol, Presence.MISSING, result.message)
        if not isinstance(result, Found):
            if result.unreadable:
                # Not "cannot tell": the code is there, and this read of it
                # failed, so nothing about it was verified.
                return SymbolFacts(symbol, Presence.FAILED, f"{result.message}; not verified")
            return SymbolFacts(symbol, Presence.UNKNOWN, result.message)
        compiled = self.index.compiled(result) if source else None
        if compiled is not None:
            # A stub's text is not the code: presence is all it says.
            return SymbolFacts(symbol, Presence.UNKNOWN, compiled)
        # Where the def read is: the assignment's module or class, or, for
        # an alias, the def's.
        home = result.defined_on
        if source:
            # `scale = _impl.scale` (or `__repr__ = __str__` in a class body):
            # the live read finds the function, so this one reads the
            # function too, not the assignment.
            aliased, home = self._aliased(result.node, result.defined_on)
            # Parsed as the live read parses the installed file, so that a
            # def's multi-line strings hash alike in both.
            aliased = self.index.as_read_live(aliased, home.partition(":")[0])
            result = replace(result, node=aliased)
        node = result.node
        if result.accessors:
            facts = property_facts(result.accessors)
            return SymbolFacts(
                symbol,
                Presence.FOUND,
                defined_on=result.defined_on,
                signature=facts.signature,
                function=facts,
            )
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            return SymbolFacts(
                symbol,
                Presence.FOUND,
                defined_on=result.defined_on,
                function=assignment_facts(node),
            )
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            facts = function_facts(node)
            # The fingerprint is of the source as written; the signature has
            # each default that names a constant spelled as its value.
            signature = signature_of(self._valued_defaults(node, home))
            return SymbolFacts(
                symbol,
                Presence.FOUND,
                defined_on=result.defined_on,
                signature=signature,
                function=replace(facts, signature=signature),
            )
        if isinstance(node, ast.ClassDef):
            return SymbolFacts(
                symbol, Presence.FOUND, defined_on=result.defined_on, function=class_facts(node)
            )
        return SymbolFacts(symbol, Presence.FOUND, defined_on=result.defined_on)

    def _aliased(self, node: ast.AST, defined_on: str) -> tuple[ast.AST, str]:
        # What an assignment of a dotted name binds, when that is a def or a
        # class (a few aliases deep), and where that is; else the assignment
        # itself (a value) and ``defined_on``.
        from .static import Found, dotted_name  # noqa: PLC0415 - loaded with the index

        step, where = node, defined_on
        for _ in range(8):
            if not isinstance(step, (ast.Assign, ast.AnnAssign)) or step.value is None:
                return node, defined_on
            name = dotted_name(step.value)
            found = self._in_scope(name, where) if name else None
            if not isinstance(found, Found):
                return node, defined_on
            if isinstance(found.node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                return found.node, found.defined_on
            step, where = found.node, found.defined_on
        return node, defined_on

    def _in_scope(self, name: str, defined_on: str) -> Found | None:
        # ``name`` as a statement of ``defined_on`` (a module, or a class of
        # one) sees it: a class body sees its own names first (not its
        # bases'), then the module's.
        from .static import Found  # noqa: PLC0415 - loaded with the index

        module, _, cls = defined_on.partition(":")
        scopes = [f"{cls}.{name}", name] if cls else [name]
        for qualname in scopes:
            found = self.index.lookup(SymbolRef(module, qualname))
            if not isinstance(found, Found):
                continue
            if cls and qualname != name and found.defined_on != defined_on:
                continue  # a base class's attribute: not in the class body's scope
            return found
        return None

    def _valued_defaults(self, node: FunctionNode, defined_on: str) -> FunctionNode:
        # `role: str = DEFAULT_ROLE` reads live as the value's repr ('default').
        # A default that names a module constant (or a class constant, for a
        # method) bound to a literal is spelled so here too; anything else
        # stays as the source writes it.
        args = node.args
        defaults = [self._value_of(d, defined_on) for d in args.defaults]
        kw_defaults = [
            None if d is None else self._value_of(d, defined_on) for d in args.kw_defaults
        ]
        if defaults == args.defaults and kw_defaults == args.kw_defaults:
            return node
        node = copy.copy(node)
        node.args = copy.copy(args)
        node.args.defaults, node.args.kw_defaults = defaults, kw_defaults
        return node

    def _value_of(self, default: ast.expr, defined_on: str) -> ast.expr:
        from .static import dotted_name  # noqa: PLC0415 - loaded with the index

        if isinstance(default, ast.Lambda):
            # A lambda's repr is no expression: the live read spells it so.
            return ast.Constant(...)
        name = dotted_name(default)
        if name is None:
            # `1.0 / 8`, `2 ** 63`, `float("inf")`: the live read shows the
            # value (0.125).
            return _spelled(default) or default
        if self._names_empty(name, defined_on.partition(":")[0]):
            return ast.parse(EMPTY_DEFAULT, mode="eval").body
        found = self._in_scope(name, defined_on)
        if found is None:
            return default
        if ":" in found.defined_on and self._is_enum(found.defined_on):
            # `hint=ReductionHint.DEFAULT`: a member, not the literal its
            # class body binds; the live read names it so too.
            return default
        return _literal(found.node) or default

    def _is_enum(self, defined_on: str) -> bool:
        # Whether the class ``module:Class`` derives from one of enum's
        # classes, as far as a few levels of its bases are readable.
        from .static import Found, dotted_name  # noqa: PLC0415 - loaded with the index

        pending, seen = [defined_on], 0
        while pending and seen < 16:
            module, _, cls = pending.pop().partition(":")
            seen += 1
            found = self.index.lookup(SymbolRef(module, cls))
            if not isinstance(found, Found) or not isinstance(found.node, ast.ClassDef):
                continue
            for base in found.node.bases:
                name = dotted_name(base)
                if name is None:
                    continue
                if name.rsplit(".", 1)[-1] in _ENUM_BASES:
                    return True
                where = found.defined_on.partition(":")[0]
                located = self.index.lookup(SymbolRef(where, name))
                if isinstance(located, Found) and isinstance(located.node, ast.ClassDef):
                    home = located.defined_on.partition(":")
                    inner = f"{home[2]}.{located.node.name}" if home[2] else located.node.name
                    pending.append(f"{home[0]}:{inner}")
        return False

    def _names_empty(self, name: str, module: str) -> bool:
        # `inspect.Signature.empty` (or `Parameter.empty`, imported from
        # inspect): the sentinel of "no default", which the live read spells
        # as EMPTY_DEFAULT.
        first, _, rest = name.partition(".")
        loaded = self.index.module(module)
        if loaded is None:
            return False
        from .static import _find_binding  # noqa: PLC0415 - loaded with the index

        binding = _find_binding(loaded[0].body, first)
        if isinstance(binding, ast.Import):
            origin = next(
                (a.name for a in binding.names if (a.asname or a.name.split(".")[0]) == first),
                None,
            )
            if origin != "inspect" and first != "inspect":
                return False
            full = name
        elif isinstance(binding, ast.ImportFrom) and binding.module == "inspect":
            if binding.level:
                return False
            imported = next(a.name for a in binding.names if (a.asname or a.name) == first)
            full = f"inspect.{imported}" + (f".{rest}" if rest else "")
        else:
            return False
        return full in EMPTY_NAMES
