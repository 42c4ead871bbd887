"""Building what apply installs: the replacement object for each target, fitted
to the original's calls, and the patches that carry it to the target and its
declared copies."""

from __future__ import annotations

from types import ModuleType

from . import fitting, patcher
from .inspection import SymbolFacts
from .loading import AFTER_APPLY_HOOK, BEFORE_REVERT_HOOK
from .manifest import Backport, Target
from .report import Status
from .symbols import ABSENT, Resolved
from .verification import Problem, original_of


def replacement_for(
    module: ModuleType, backport: Backport, target: Target, facts: SymbolFacts, source: bytes | None
) -> object | Problem:
    """The object the backport module offers for ``target``, fitted to it, or
    the problem that stops it."""
    value = getattr(module, target.replacement, ABSENT)
    if value is ABSENT:
        return Problem(
            Status.FAILED,
            f"{backport.module_text} has no attribute {target.replacement!r} "
            f"(the replacement for {target.symbol})",
        )
    # Callable only where the original is: a value target takes any object.
    if facts.resolved is not None:
        wanted = callable(facts.resolved.function)
    else:
        wanted = facts.signature is not None
    if wanted and not callable(value):
        return Problem(
            Status.FAILED,
            f"{backport.module_text}:{target.replacement} is a {type(value).__name__}, "
            "not callable",
        )
    if facts.resolved is None:
        return value
    return _fitted(backport, target, facts.resolved, value, source)


def _fitted(
    backport: Backport,
    target: Target,
    resolved: Resolved,
    replacement: object,
    source: bytes | None,
) -> object | Problem:
    name = f"{backport.module_text}:{target.replacement}"
    if fitting.unwritten(replacement, source):
        return Problem(
            Status.FAILED,
            f"{name} is not written yet ("
            + (
                "its value is NotImplemented"
                if replacement is NotImplemented
                else "its body only raises NotImplementedError"
            )
            + "); write the fix, then run `backport-tool check` again",
        )
    problems = fitting.misfits(resolved.function, replacement)
    if problems:
        return Problem(
            Status.FAILED,
            f"{name} cannot replace {target.symbol}: " + "; ".join(problems),
        )
    if not fitting.uses_zero_argument_super(replacement, source):
        return replacement
    # Rebuilt from the module text that was hashed and ran, never the file.
    bound = (
        fitting.bind_class_cell(replacement, resolved.owner, source)
        if isinstance(resolved.owner, type)
        else ""
    )
    if isinstance(bound, str):
        why = f": {bound}" if bound else ""
        return Problem(
            Status.FAILED,
            f"{name} calls super() without arguments, which needs the class it is a method "
            f"of, and it cannot be bound to one here{why}; write super(Class, self) instead",
        )
    return bound.function


def hooks_of(module: ModuleType) -> patcher.Hooks:
    after = getattr(module, AFTER_APPLY_HOOK, None)
    before = getattr(module, BEFORE_REVERT_HOOK, None)
    return patcher.Hooks(after if callable(after) else None, before if callable(before) else None)


def patch_for(target: Target, facts: SymbolFacts, replacement: object) -> patcher.Patch:
    resolved = facts.resolved
    assert resolved is not None
    # Keep the descriptor kind of the original, or a staticmethod target would
    # start receiving ``self``.
    if isinstance(resolved.raw, (staticmethod, classmethod)) and callable(replacement):
        replacement = type(resolved.raw)(replacement)
    return patcher.Patch(
        str(target.symbol),
        resolved.owner,
        resolved.name,
        resolved.own,
        replacement,
        original_of(resolved),
        tuple(str(c) for c in target.copies),
    )
