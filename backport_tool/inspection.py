"""What a target or required symbol is, read either from the live interpreter or
statically from another version's sources. The loader decides statuses from
these facts alone, so both readers give the same verdict for the same code."""

from __future__ import annotations

import ast
import enum
import logging
from dataclasses import dataclass
from typing import Protocol

from .manifest import SymbolRef
from .source import FunctionFacts, function_facts, live_function_facts
from .static import Found, Missing, StaticIndex
from .symbols import Resolved, SymbolMissing, resolve, signature_text

logger = logging.getLogger("backport_tool")


class Presence(enum.Enum):
    FOUND = "found"
    MISSING = "missing"
    FAILED = "failed"  # its module raised on import
    UNKNOWN = "unknown"  # static reading cannot tell (compiled or dynamic)


@dataclass(frozen=True)
class SymbolFacts:
    symbol: str
    presence: Presence
    message: str = ""
    defined_on: str | None = None
    signature: str | None = None
    function: FunctionFacts | None = None
    resolved: Resolved | None = None


class Inspector(Protocol):
    live: bool
    label: str

    def inspect(self, ref: SymbolRef) -> SymbolFacts: ...


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class LiveInspector:
    """Imports modules in this interpreter and looks at the real objects."""

    live = True
    label = "installed"

    def inspect(self, ref: SymbolRef) -> SymbolFacts:
        symbol = str(ref)
        try:
            resolved = resolve(ref)
        except SymbolMissing as exc:
            return SymbolFacts(symbol, Presence.MISSING, str(exc))
        except Exception as exc:
            logger.debug("backport-tool: resolving %s failed", symbol, exc_info=True)
            return SymbolFacts(symbol, Presence.FAILED, f"import raised {_describe(exc)}")
        function = resolved.function
        return SymbolFacts(
            symbol,
            Presence.FOUND,
            defined_on=resolved.defined_on_name,
            signature=signature_text(function) if callable(function) else None,
            function=live_function_facts(function),
            resolved=resolved,
        )


class StaticInspector:
    """Parses another version's sources; never imports them."""

    live = False

    def __init__(self, index: StaticIndex) -> None:
        self.index = index
        self.label = index.tree.label

    def inspect(self, ref: SymbolRef) -> SymbolFacts:
        symbol = str(ref)
        result = self.index.lookup(ref)
        if isinstance(result, Missing):
            return SymbolFacts(symbol, Presence.MISSING, result.message)
        if not isinstance(result, Found):
            return SymbolFacts(symbol, Presence.UNKNOWN, result.message)
        node = result.node
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            facts = function_facts(node)
            return SymbolFacts(
                symbol,
                Presence.FOUND,
                defined_on=result.defined_on,
                signature=facts.signature,
                function=facts,
            )
        return SymbolFacts(symbol, Presence.FOUND, defined_on=result.defined_on)
