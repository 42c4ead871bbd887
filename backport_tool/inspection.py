"""What a target or required symbol is, read either from the live interpreter or
statically from another version's sources. The loader decides statuses from
these facts alone, so both readers give the same verdict for the same code."""

from __future__ import annotations

import ast
import copy
import importlib.util
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

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
from .symbols import ABSENT, Resolved, SymbolMissing, is_builtin, resolve, signature_text

if TYPE_CHECKING:
    from .static import StaticIndex

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
    try:
        spelled = repr(ast.literal_eval(value))
        return ast.parse(spelled, mode="eval").body
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
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
        if source:
            # `scale = _impl.scale`: the live read finds the function, so
            # this one reads the function too, not the assignment.
            result = replace(result, node=self._aliased(result.node, result.defined_on))
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
            signature = signature_of(self._valued_defaults(node, result.defined_on))
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

    def _aliased(self, node: ast.AST, defined_on: str) -> ast.AST:
        # What an assignment of a dotted name binds, when that is a def or a
        # class (a few aliases deep); else the assignment itself (a value).
        from .static import Found, dotted_name  # noqa: PLC0415 - loaded with the index

        module, step = defined_on.partition(":")[0], node
        for _ in range(8):
            if not isinstance(step, (ast.Assign, ast.AnnAssign)) or step.value is None:
                return node
            name = dotted_name(step.value)
            found = self.index.lookup(SymbolRef(module, name)) if name else None
            if not isinstance(found, Found):
                return node
            if isinstance(found.node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                return found.node
            step, module = found.node, found.defined_on.partition(":")[0]
        return node

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
        from .static import Found, dotted_name  # noqa: PLC0415 - loaded with the index

        name = dotted_name(default)
        if name is None:
            return default

        module, _, cls = defined_on.partition(":")
        scopes = [f"{cls}.{name}", name] if cls else [name]
        for qualname in scopes:
            found = self.index.lookup(SymbolRef(module, qualname))
            if not isinstance(found, Found):
                continue
            if cls and qualname != name and found.defined_on != defined_on:
                continue  # a base class's attribute: not in the class body's scope
            return _literal(found.node) or default
        return default
