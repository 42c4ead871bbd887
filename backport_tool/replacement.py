"""Building what apply installs: the replacement object for each target, fitted
to the original's calls, and the patches that carry it to the target and its
declared copies."""

from __future__ import annotations

import ast
import functools
import inspect
import types
from collections.abc import Callable, Sequence
from dataclasses import replace
from types import CodeType, FunctionType, ModuleType
from typing import Any, NamedTuple

from . import configs, fitting, lazy, patcher, registries
from .errors import FOREIGN_FAILURES, describe
from .findings import EntryReport, TargetReport
from .inspection import SymbolFacts
from .loading import AFTER_APPLY_HOOK, BEFORE_REVERT_HOOK
from .manifest import Backport, EntryRef, SymbolRef, Target
from .registries import EntryState
from .report import Status
from .state import built_once
from .symbols import (
    ABSENT,
    Resolved,
    SymbolMissing,
    is_builtin,
    method_kind,
    resolve_owner,
    unwrapped,
)
from .verification import Problem, config_site, original_of


def replacement_for(
    module: ModuleType, backport: Backport, target: Target, facts: SymbolFacts, source: bytes | None
) -> object | Problem:
    """The object the backport module offers for ``target``, fitted to it, or
    the problem that stops it."""
    if target.sets_value:
        return _value(backport, target, facts)
    resolved = facts.resolved
    made = (
        _replacement(module, backport, target, facts, source)
        if resolved is None
        else built_once(
            ("fitted", backport.id, str(target.symbol), target.replacement),
            # The target too: its declared signature is what a replacement
            # of C code is fitted to.
            (module, target, resolved.raw, resolved.owner),
            lambda: _replacement(module, backport, target, facts, source),
            keep=lambda made: not isinstance(made, Problem),
        )
    )
    if isinstance(made, Problem) or target.original is None:
        return made
    return _alias_problem(module, backport, target, made, source) or made


def _replacement(
    module: ModuleType, backport: Backport, target: Target, facts: SymbolFacts, source: bytes | None
) -> object | Problem:
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
    # A classmethod object is not callable itself; the function it holds is.
    if wanted and not callable(unwrapped(value)):
        return Problem(
            Status.FAILED,
            f"{backport.module_text}:{target.replacement} is a {type(value).__name__}, "
            "not callable",
        )
    if facts.resolved is None:
        return value
    original = facts.resolved.function
    if isinstance(original, type):
        return _class_problem(backport, target, original, value) or value
    return _fitted(backport, target, facts.resolved, value, source)


# What Python puts in every class's namespace: a class with nothing else is
# the original under another name (a `new` skeleton not written yet).
_CLASS_BOOKKEEPING = frozenset(
    (
        "__module__",
        "__qualname__",
        "__doc__",
        "__dict__",
        "__weakref__",
        "__firstlineno__",
        "__static_attributes__",
        "__annotations__",
        "__orig_bases__",
        "__parameters__",
    )
)


def _class_problem(
    backport: Backport, target: Target, original: type, value: object
) -> Problem | None:
    # A subclass keeps isinstance(x, original) true for instances made while
    # patched, and pickles as the original (see pickling.py); anything else
    # would change what code that checks the type sees.
    name = f"{backport.module_text}:{target.replacement}"
    if not isinstance(value, type):
        return Problem(
            Status.FAILED,
            f"{name} is a {type(value).__name__}, and the original {target.symbol} is a class; "
            f"a class target takes a class: define class {target.replacement}"
            f"({original.__module__}.{original.__qualname__})",
        )
    # The MRO, not issubclass(): that runs the metaclass's check, which a
    # Protocol that is not runtime_checkable makes raise, and an ABC answers
    # for classes registered with it, which are no subclasses.
    if original not in value.__mro__:
        return Problem(
            Status.FAILED,
            f"{name} is not a subclass of the original {target.symbol} "
            f"({original.__module__}.{original.__qualname__}); a class target takes a "
            "subclass of it, so that isinstance checks against the original still hold",
        )
    if not set(vars(value)) - _CLASS_BOOKKEEPING:
        return Problem(
            Status.FAILED,
            f"{name} is not written yet (it defines nothing of its own, so it is the "
            "original); write the fix, then run `backport-tool check` again",
        )
    # Callers construct it as they construct the original.
    problems = fitting.misfits(original, value)
    if problems:
        return Problem(
            Status.FAILED, f"{name} cannot replace {target.symbol}: " + "; ".join(problems)
        )
    return None


def _value(backport: Backport, target: Target, facts: SymbolFacts) -> object | Problem:
    # value: sets a config option; anything else has replacement:.
    if facts.resolved is None:
        return target.value  # a static read: nothing to set
    if config_site(facts) is None:
        return Problem(
            Status.FAILED,
            f"target {target.symbol} has value:, which sets an option of a torch config module "
            f"(torch.utils._config_module.ConfigModule), and {target.symbol} is not one; put the "
            f"replacement in {backport.module_text} and name it with replacement:",
        )
    return target.value


def _fitted(
    backport: Backport,
    target: Target,
    resolved: Resolved,
    replacement: object,
    source: bytes | None,
) -> object | Problem:
    name = f"{backport.module_text}:{target.replacement}"
    if isinstance(resolved.owner, type) and _is_accessor(resolved.raw):
        return _fitted_accessor(name, target, resolved, replacement, source)
    kind = method_kind(replacement)
    wrong = _kind_problem(name, target, resolved, kind, replacement)
    if wrong is not None:
        return wrong
    if kind is not None:
        # Fitted as the function it holds, then wrapped as written.
        function = unwrapped(replacement)
        fitted = _fitted_function(name, target, resolved, function, source)
        if isinstance(fitted, Problem):
            return fitted
        if fitted is function:
            return replacement  # nothing was rebuilt: installed as written
        wrapper: Any = classmethod if kind == "classmethod" else staticmethod
        wrapped: object = wrapper(fitted)
        return wrapped
    return _fitted_function(name, target, resolved, replacement, source)


def _kind_problem(
    name: str, target: Target, resolved: Resolved, kind: str | None, replacement: object
) -> Problem | None:
    # A classmethod replaces a classmethod, a staticmethod a staticmethod. A
    # plain function takes the kind of a Python original (its wrapper is
    # kept); a C type's classmethod has no wrapper to keep, and a plain
    # function set on the class would not receive the class.
    wanted = method_kind(resolved.raw)
    if kind is not None and kind != wanted:
        what = f"a {wanted}" if wanted else "neither a classmethod nor a staticmethod"
        return Problem(
            Status.FAILED,
            f"{name} is a {kind}, and the original {target.symbol} is {what}; "
            "define the replacement as the original is defined",
        )
    if kind is None and wanted == "classmethod" and is_builtin(resolved.raw):
        return Problem(
            Status.FAILED,
            f"{name} is a plain function, and the original {target.symbol} is a classmethod "
            f"of C code (on {resolved.defined_on_name}); set on the class, a plain function "
            "would not receive the class: define the replacement with @classmethod",
        )
    if (
        kind is None
        and isinstance(resolved.owner, type)
        and isinstance(resolved.raw, types.FunctionType)
        and not any("__get__" in vars(k) for k in type(replacement).__mro__)
    ):
        # A callable object (a class used as a decorator) is no descriptor:
        # set on the class, it would not receive self, and every call would
        # miss an argument, whatever its signature says.
        return Problem(
            Status.FAILED,
            f"{name} is a {type(replacement).__qualname__} object, not a function: set on "
            f"{resolved.defined_on_name}, it would not receive self. Make the decorator "
            "return a function (functools.wraps), or give its class a __get__",
        )
    return None


# The functions behind the attribute descriptors Python and the stdlib make,
# and what each does for a caller.
_ACCESSORS: tuple[tuple[type, tuple[tuple[str, str], ...]], ...] = (
    (property, (("fget", "getter"), ("fset", "setter"), ("fdel", "deleter"))),
    (functools.cached_property, (("func", "function"),)),
)


def _is_accessor(raw: object) -> bool:
    # A class attribute that is no function but computes what callers get
    # (a property, a cached_property, any other descriptor): type() and the
    # type's own __dict__s, so nothing of torch's runs.
    # classmethod objects are not callable either: they have their own rules.
    kind = type(raw)
    return (
        method_kind(raw) is None
        and not callable(raw)
        and any("__get__" in vars(k) for k in kind.__mro__)
    )


def _fitted_accessor(
    name: str, target: Target, resolved: Resolved, replacement: object, source: bytes | None
) -> object | Problem:
    # A property is replaced by a property, a cached_property by one, each of
    # its functions fitted like a method (rebuilt for super() the same way),
    # and every function the original has (a setter, a deleter) is there.
    original = resolved.raw
    kind = type(original)
    if not issubclass(type(replacement), kind):
        return Problem(
            Status.FAILED,
            f"{name} is a {type(replacement).__qualname__}, and the original {target.symbol} "
            f"is a {kind.__qualname__}; define the replacement as the original is defined "
            f"(@{kind.__qualname__}, with the same setter and deleter)",
        )
    roles = next((roles for base, roles in _ACCESSORS if issubclass(kind, base)), ())
    rebuilt: dict[str, object] = {}
    for attribute, role in roles:
        theirs, mine = getattr(original, attribute), getattr(replacement, attribute)
        if mine is None:
            if theirs is not None:
                return Problem(
                    Status.FAILED,
                    f"{name} has no {role}, and the original {target.symbol} has one, so "
                    f"code that uses it would fail; give the replacement a {role} too",
                )
            continue
        fitted = _fitted_function(
            f"{name} ({role})", target, resolved, mine, source, original=theirs
        )
        if isinstance(fitted, Problem):
            return fitted
        if fitted is not mine:
            rebuilt[attribute] = fitted
    made: Any = replacement
    try:
        # A subclass's own __init__ may take other arguments than property's:
        # what it raises is the backport's failure, not ours.
        if isinstance(made, property):
            # property's getter(), setter() and deleter() copy it with one
            # function replaced: its roles are those methods' names.
            for attribute, role in roles:
                if attribute in rebuilt:
                    made = getattr(made, role)(rebuilt[attribute])
        elif "func" in rebuilt:
            made = type(made)(rebuilt["func"])
    except FOREIGN_FAILURES as exc:
        return Problem(
            Status.FAILED,
            f"{name} uses super(), so its functions are rebuilt for the class, and a "
            f"{type(replacement).__qualname__} cannot be made again from them: {describe(exc)}; "
            "write super(Class, self) instead",
        )
    return _named(name, target, resolved, made)


def _named(name: str, target: Target, resolved: Resolved, made: object) -> object | Problem:
    # Python tells a descriptor its class and name when the class is created
    # (a cached_property cannot work without it); set on the class later, it
    # is told by apply, as class creation would.
    set_name = getattr(type(made), "__set_name__", None)
    if set_name is None:
        return made
    try:
        set_name(made, resolved.owner, resolved.name)
    except FOREIGN_FAILURES as exc:
        return Problem(
            Status.FAILED,
            f"{name} cannot be set on {target.symbol}: its __set_name__ raised {describe(exc)}",
        )
    return made


def _fitted_function(
    name: str,
    target: Target,
    resolved: Resolved,
    replacement: object,
    source: bytes | None,
    *,
    original: object = ABSENT,
) -> object | Problem:
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
    # ``original``: one function of a property, compared without the
    # target's declared signature.
    problems = (
        fitting.misfits(resolved.function, replacement, target.signature)
        if original is ABSENT
        # Python calls a property's functions with positional arguments only.
        else fitting.misfits(original, replacement, by_position=True)
        if original is not None
        else []
    )
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


def _namespace(replacement: object) -> dict[str, Any] | None:
    # The globals the replacement's code reads: those of the function behind
    # its decorators (functools.wraps keeps __wrapped__).
    try:
        function = inspect.unwrap(replacement)  # type: ignore[arg-type]
    except ValueError:  # a __wrapped__ cycle
        return None
    return function.__globals__ if isinstance(function, FunctionType) else None


def _alias_problem(
    module: ModuleType,
    backport: Backport,
    target: Target,
    replacement: object,
    source: bytes | None,
) -> Problem | None:
    # The target's ``original:`` global is bound in the backport module, where
    # the replacement must read it; the module's own code must leave it free,
    # or apply would overwrite what it defines.
    name = target.original
    assert name is not None
    where = f"{backport.module_text}:{target.replacement}"
    if _namespace(replacement) is not vars(module):
        return Problem(
            Status.FAILED,
            f"original: {name} is bound in {backport.module_text}, but {where} is not a "
            "function of that module, so it cannot read it; call "
            f"backport_tool.original({str(target.symbol)!r}) instead",
        )
    if not _read_by(module, name):
        # apply would bind it, and the replacement would call another name.
        return Problem(
            Status.FAILED,
            f"original: {name} is read by no function of {backport.module_text}, so {where} "
            f"cannot call the original through it; give original: the name the code reads",
        )
    line = _bound_at(source, name) if source is not None else None
    if line is not None:
        return Problem(
            Status.FAILED,
            f"{backport.module_text}:{line} binds {name}, the name that original: gives to "
            f"the original of {target.symbol}; apply binds it: leave it unassigned (or "
            f"{name} = None, for linters)",
        )
    return None


def _read_by(module: ModuleType, name: str) -> bool:
    # A global the module's functions (its classes' methods, the functions
    # nested in them) read: the names of their code, no parse.
    # Only plain attributes are read: no foreign __getattr__ runs.
    namespace = vars(module)
    held: list[object] = []
    for value in namespace.values():
        held += vars(value).values() if isinstance(value, type) else [value]
    codes: list[CodeType] = []
    for item in held:
        if isinstance(item, (staticmethod, classmethod)):
            item = item.__func__  # noqa: PLW2901 - what it holds
        parts = (item.fget, item.fset, item.fdel) if isinstance(item, property) else (item,)
        for part in parts:
            # A decorated function (functools.wraps, lru_cache) and what it wraps.
            for _ in range(100):
                if isinstance(part, FunctionType) and part.__globals__ is namespace:
                    codes.append(part.__code__)
                try:
                    own = object.__getattribute__(part, "__dict__")
                except AttributeError:
                    break
                part = own.get("__wrapped__") if isinstance(own, dict) else None  # noqa: PLW2901
    while codes:
        code = codes.pop()
        if name in code.co_names:
            return True
        codes += (const for const in code.co_consts if isinstance(const, CodeType))
    return False


def _bound_at(source: bytes, name: str) -> int | None:
    """The line where the module's code binds ``name`` to anything but None,
    anywhere in it; None when it never does."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None  # it ran, so Python read it; nothing more to say
    # A placeholder at module level: ``NAME = None``, ``NAME: T`` or ``NAME: T = None``.
    free: set[int] = set()
    for statement in tree.body:
        value: ast.expr | None
        if isinstance(statement, ast.Assign):
            value, targets = statement.value, statement.targets
        elif isinstance(statement, ast.AnnAssign):
            value, targets = statement.value, [statement.target]
        else:
            continue
        if value is None or (isinstance(value, ast.Constant) and value.value is None):
            free.update(id(t) for t in targets if isinstance(t, ast.Name))
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Store):
            if id(node) not in free:
                return node.lineno
        elif _defines(node, name):
            return getattr(node, "lineno", 1)
    return None


def _defines(node: ast.AST, name: str) -> bool:
    # Bindings that are not an assignment to a Name.
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return node.name == name
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return any((a.asname or a.name.partition(".")[0]) == name for a in node.names)
    if isinstance(node, (ast.Global, ast.Nonlocal)):
        return name in node.names
    if isinstance(node, ast.ExceptHandler):
        return node.name == name
    return False


def hooks_of(module: ModuleType) -> patcher.Hooks:
    after = getattr(module, AFTER_APPLY_HOOK, None)
    before = getattr(module, BEFORE_REVERT_HOOK, None)
    return patcher.Hooks(after if callable(after) else None, before if callable(before) else None)


def patch_for(target: Target, facts: SymbolFacts, replacement: object) -> patcher.Patch:
    resolved = facts.resolved
    assert resolved is not None
    site = config_site(facts)
    if site is not None:
        # Set on the entry an alias leads to: one setting, one binding.
        return patcher.Patch(
            str(target.symbol),
            site.module,
            site.key,
            configs.override(site),
            replacement,
            original_of(resolved),
            config=site,
        )
    # Keep the descriptor kind of the original, or a staticmethod target would
    # start receiving ``self``.
    namespace = _namespace(replacement) if target.original is not None else None
    if (
        isinstance(resolved.raw, (staticmethod, classmethod))
        and method_kind(replacement) is None
        and callable(replacement)
    ):
        kind = type(resolved.raw)
        plain = replacement
        replacement = built_once(("wrapped", kind, id(plain)), (plain,), lambda: kind(plain))
    return patcher.Patch(
        str(target.symbol),
        resolved.owner,
        resolved.name,
        resolved.own,
        replacement,
        original_of(resolved),
        tuple(str(c) for c in target.copies),
        None if namespace is None or target.original is None else (namespace, target.original),
        conditional=frozenset(str(c) for c in target.conditional),
    )


class Planned(NamedTuple):
    """A registry target's entries, ready to apply, with each one's state for
    the target's report, and what stops it."""

    items: tuple[registries.Item | registries.Awaited, ...]
    entries: tuple[EntryReport, ...]
    problems: tuple[Problem, ...]


class _EntryMissing(Exception):
    """An entry names nothing: its status is missing."""


class _EntryUnwritten(Exception):
    """An entry of the backport module is still NotImplemented: failed."""


def registry_for(
    module: ModuleType, backport: Backport, target: Target, facts: SymbolFacts, *, importing: bool
) -> Planned:
    """Resolve the entries of a registry target and say what apply does with
    each (or did, when the backport is applied in this process).
    ``importing``: an entry's module may be imported (eager apply, check, an
    ``enabled()`` scope); else (lazy apply) an entry of a module not imported
    yet waits for it."""
    assert facts.resolved is not None
    container = facts.resolved.function
    symbol = str(target.symbol)
    wanted = _wanted(target)
    items: list[registries.Item | registries.Awaited] = []
    problems: list[Problem] = []
    for key, value, adds, _ in wanted:
        label = str(key)
        try:
            items.append(_item(module, backport, adds, label, key, value, importing=importing))
        except _EntryMissing as exc:
            problems.append(Problem(Status.MISSING, f"entry {label} of {symbol}: {exc}"))
        except _EntryUnwritten as exc:
            problems.append(Problem(Status.FAILED, f"entry {label} of {symbol}: {exc}"))
        except FOREIGN_FAILURES as exc:
            problems.append(Problem(Status.FAILED, f"entry {label} of {symbol}: {describe(exc)}"))
    states = applied_states(backport.id, symbol)
    if states is None:
        states = {}
        for item in items:
            found = _state(container, item, symbol)
            if isinstance(found, Problem):
                problems.append(found)
            else:
                states[item.label] = found
    return Planned(tuple(items), entry_reports(target, states), tuple(problems))


def _wanted(
    target: Target,
) -> list[tuple[SymbolRef | str, SymbolRef | str | None, bool, str]]:
    # (key, value, adds, the entry as reports show it)
    wanted: list[tuple[SymbolRef | str, SymbolRef | str | None, bool, str]] = [
        (entry.key, entry.value, True, str(entry)) for entry in target.add
    ]
    wanted += [(ref, None, False, str(ref)) for ref in target.remove]
    return wanted


def applied_states(backport_id: str, symbol: str) -> dict[str, EntryState] | None:
    """Each entry's state as the backport applied in this process left it (an
    entry of a module not imported yet: awaited); None when it is not applied."""
    done = patcher.edits(backport_id, symbol)
    if done is None:
        return None
    # What apply did, not what the registry holds now (the entries it added
    # are there by its own doing).
    states = {d.item.label: d.state for d in done}
    states |= dict.fromkeys(patcher.awaited_entries(backport_id, symbol), EntryState.AWAITED)
    return states


def with_applied_entries(
    backport: Backport, reports: Sequence[TargetReport]
) -> tuple[TargetReport, ...]:
    """``reports`` of ``backport``'s targets, each registry target's entries as
    applying it in this process has left them so far."""
    found = {}
    for target in backport.targets:
        states = applied_states(backport.id, str(target.symbol)) if target.edits_registry else None
        if states is not None:
            found[str(target.symbol)] = entry_reports(target, states)
    return tuple(
        replace(report, entries=found[report.symbol]) if report.symbol in found else report
        for report in reports
    )


def entry_reports(target: Target, states: dict[str, EntryState]) -> tuple[EntryReport, ...]:
    """The report of each entry of ``target`` that ``states`` has, in manifest order."""
    return tuple(
        EntryReport(shown, "add" if adds else "remove", states[str(key)])
        for key, _, adds, shown in _wanted(target)
        if str(key) in states
    )


def _state(
    container: object, item: registries.Item | registries.Awaited, symbol: str
) -> EntryState | Problem:
    if isinstance(item, registries.Awaited):
        return EntryState.AWAITED
    try:
        found = registries.state(container, item)
    except FOREIGN_FAILURES as exc:
        return Problem(
            Status.FAILED,
            f"entry {item.label} of {symbol}: the {registries.kind_of(container)} cannot be "
            f"searched for it ({describe(exc)})",
        )
    if found is EntryState.ABSENT:
        return Problem(
            Status.DRIFT,
            f"entry {item.label} to remove from {symbol} is not there; the registry has "
            "changed: check whether the backport is still needed",
        )
    return found


def _item(
    module: ModuleType,
    backport: Backport,
    adds: bool,
    label: str,
    key: EntryRef,
    value: EntryRef | None,
    *,
    importing: bool,
) -> registries.Item | registries.Awaited:
    refs = [ref for ref in (key, value) if ref is not None]
    later = tuple(
        dict.fromkeys(
            ref.module
            for ref in refs
            if isinstance(ref, SymbolRef) and not importing and not lazy.is_loaded(ref.module)
        )
    )

    def resolve() -> registries.Item:
        found = _entry_object(module, backport, key)
        return registries.Item(
            adds, label, found, None if value is None else _entry_object(module, backport, value)
        )

    if later:
        return registries.Awaited(adds, label, later, _resolver(resolve))
    return resolve()


def _resolver(resolve: Callable[[], registries.Item]) -> Callable[[], registries.Item]:
    # When the awaited module comes, an entry that names nothing there says so.
    def later() -> registries.Item:
        try:
            return resolve()
        except _EntryMissing as exc:
            raise LookupError(str(exc)) from None

    return later


def _entry_object(module: ModuleType, backport: Backport, ref: EntryRef) -> object:
    # An entry is the object as Python reads it (getattr): a function, an op
    # overload of torch.ops, a constant of the backport module.
    if isinstance(ref, str):
        found = getattr(module, ref, ABSENT)
        if found is ABSENT:
            raise _EntryMissing(f"{backport.module_text} has no attribute {ref!r}")
        if found is NotImplemented:
            # A `new` skeleton's entry, as for a value target.
            raise _EntryUnwritten(
                f"{backport.module_text}:{ref} is not written yet (its value is "
                "NotImplemented); write the fix, then run `backport-tool check` again"
            )
        return found
    try:
        owner, walked = resolve_owner(ref)
    except SymbolMissing as exc:
        raise _EntryMissing(str(exc)) from None
    name = ref.qualname.rsplit(".", 1)[-1]
    try:
        return getattr(owner, name)
    except AttributeError:
        raise _EntryMissing(f"{walked} has no attribute {name!r}") from None


def registry_patch(target: Target, facts: SymbolFacts, planned: Planned) -> patcher.Patch:
    """The patch that adds and removes a registry target's entries in place."""
    resolved = facts.resolved
    assert resolved is not None
    return patcher.Patch(
        str(target.symbol),
        resolved.owner,
        resolved.name,
        resolved.own,
        resolved.function,
        registry=planned.items,
    )
