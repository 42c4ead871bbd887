"""Atomic apply and revert of a backport's patches, at exactly the bindings the
manifest names: each target, and each declared copy of its original.

Nothing here searches the process. A copy site whose module is not imported
yet is bound when it is (the caller watches the module and calls
:func:`bind_copies`); revert restores exactly the bindings apply made.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from . import configs, lazy, pickling, registries
from .errors import FOREIGN_FAILURES, describe, foreign_code
from .references import Binding, left_behind, rebind, unbind
from .state import STATE, built_once
from .symbols import ABSENT, defined_in, unwrapped

logger = logging.getLogger("backport_tool")


@dataclass(frozen=True)
class Patch:
    """One planned attribute replacement, and the declared copies of its original.

    ``own`` is what ``owner.__dict__`` held under ``name`` when the target was
    verified (:data:`ABSENT` when the attribute was inherited or is created);
    applying checks that it still holds exactly that. ``original`` is the
    object the copies must hold: the function behind ``own`` (or the
    inherited one). ``alias`` is the backport module's namespace and the
    global in it that is bound to ``original`` before the target is replaced
    (the target's ``original:`` key). ``config`` is the entry of a config
    option (see :mod:`configs`): then ``owner`` and ``name`` are its config
    module and key (an alias's target), ``own`` is the entry's user override
    (torch's sentinel when the user set none), and it is set and restored
    through the config module. ``registry`` holds the entries of a registry
    target (see :mod:`registries`): then ``replacement`` is the container
    itself, which is edited in place and never set anywhere.
    """

    symbol: str
    owner: object
    name: str
    own: object
    replacement: object
    original: object = ABSENT
    copies: tuple[str, ...] = ()
    alias: tuple[dict[str, Any], str] | None = None
    # Copies bound only in some environments: left alone where they hold
    # something else than the original.
    conditional: frozenset[str] = frozenset()
    config: configs.ConfigSite | None = None
    registry: tuple[registries.Item | registries.Awaited, ...] | None = None


@dataclass(frozen=True)
class AppliedBackport:
    """A backport that is in force in this process."""

    id: str
    manifest: str  # the real path of the manifest it came from
    targets: tuple[str, ...]
    module_sha256: str  # of the backport module's bytes that ran


class PatchConflict(Exception):
    """The state of a target is not what verification saw, or another backport
    holds one of its bindings."""


class Stale(PatchConflict):
    """Something other than a backport replaced a target since it was verified."""


class AlreadyApplied(Exception):
    """This backport, from this manifest, is already in force."""


class ForeignApplied(Exception):
    """A backport of this id from another manifest is already in force."""

    def __init__(self, manifest: str) -> None:
        super().__init__(manifest)
        self.manifest = manifest


@dataclass(frozen=True)
class Hooks:
    """A backport module's optional hooks."""

    after_apply: Callable[[], object] | None = None
    before_revert: Callable[[], object] | None = None


class HookFailed(Exception):
    """``after_apply`` raised; everything was rolled back."""


class RollbackFailed(Exception):
    """Patching failed, and putting back what was already patched failed too:
    ``stuck`` names the symbols that still hold their replacement."""

    def __init__(self, cause: BaseException, stuck: list[tuple[str, BaseException]]) -> None:
        super().__init__(describe(cause))
        self.cause = cause
        self.stuck = stuck


class OtherContext(Exception):
    """The backport sets a config option that torch keeps per context (a
    ``ContextVar``, torch 2.13 on: per thread, per asyncio task), and what it
    set is not in force in the calling one."""


@dataclass
class Entry:
    info: AppliedBackport
    patches: tuple[Patch, ...]
    hooks: Hooks
    # Copy sites rebound so far, in order, for revert.
    bindings: list[Binding] = field(default_factory=list)
    # module -> the (patch, copy symbol) pairs that wait for it.
    waiting: dict[str, list[tuple[Patch, str]]] = field(default_factory=dict)
    # Declared copies that did not hold the original when their module came.
    stray: list[str] = field(default_factory=list)
    # Registry entries apply added or removed, in order, for revert; and
    # module -> the entries that wait for it (they name objects of it).
    edits: list[tuple[Patch, registries.Done]] = field(default_factory=list)
    awaited: dict[str, list[tuple[Patch, registries.Awaited]]] = field(default_factory=dict)
    after_apply_done: bool = False
    # False while only enabled() scopes hold it: the last one to leave reverts
    # it. apply() keeps it (also one a scope put in force first).
    kept: bool = True
    scopes: int = 0
    # len(sys.modules) when it was applied: the modules after that were
    # imported while it was in force, and may have bound its replacements.
    # (sys.modules keeps import order; a module deleted meanwhile shifts it,
    # so the warning that reads this may miss a name, never invent one.)
    modules_seen: int = 0
    # The modules still executing when it was applied (a lazy hook runs
    # inside their import): they too bind what is in force when they go on.
    executing: frozenset[str] = frozenset()


def _entries() -> dict[str, Entry]:
    return STATE.applied


def _current(owner: object, name: str) -> object:
    return vars(owner).get(name, ABSENT)


def _now(patch: Patch) -> object:
    # What the binding holds, in the form of ``patch.own``.
    if patch.config is not None:
        return configs.override(patch.config)
    return _current(patch.owner, patch.name)


def _now_config(patch: Patch) -> Patch:
    # A config option is the user's to change at any time (between two
    # enabled() scopes, say): what revert restores, and what original()
    # returns, is what the entry holds when the patch is applied.
    if patch.config is None:
        return patch
    return replace(patch, own=configs.override(patch.config), original=configs.read(patch.config))


def _restore(patch: Patch) -> None:
    if patch.config is not None:
        configs.restore(patch.config, patch.own)
    elif patch.own is not ABSENT:
        setattr(patch.owner, patch.name, patch.own)
    elif _current(patch.owner, patch.name) is not ABSENT:
        delattr(patch.owner, patch.name)


def split_symbol(symbol: str) -> tuple[str, list[str]]:
    module, _, qualname = symbol.partition(":")
    return module, qualname.split(".")


def site_holder(symbol: str) -> tuple[object, str] | None:
    """The namespace (module or class) and name of the binding ``symbol``
    names, read from modules that finished importing; None while its module
    is not imported or still executing, or when the path is not there.

    It imports nothing and runs no ``__getattr__``: it reads ``__dict__``s.
    """
    module_name, parts = split_symbol(symbol)
    if not lazy.is_loaded(module_name):
        return None
    owner: object = sys.modules[module_name]
    namespace = object.__getattribute__(owner, "__dict__")
    for part in parts[:-1]:
        found = namespace.get(part)
        if not issubclass(type(found), type):
            return None
        owner = found
        namespace = vars(found)
    return owner, parts[-1]


def is_applied(backport_id: str) -> bool:
    with STATE.patch_lock:
        return backport_id in _entries()


def applied_from(backport_id: str) -> str | None:
    """The manifest the applied backport ``backport_id`` came from, if it is applied."""
    with STATE.patch_lock:
        entry = _entries().get(backport_id)
        return entry.info.manifest if entry else None


def _holder_of(owner: object, name: str) -> tuple[str, Patch | Binding] | None:
    # The applied backport that changed owner.name, and how: as a target
    # (its Patch) or as a declared copy (its Binding).
    for entry in _entries().values():
        for patch in entry.patches:
            # A registry target edits the container and leaves the binding.
            if patch.owner is owner and patch.name == name and patch.registry is None:
                return entry.info.id, patch
        for binding in entry.bindings:
            if binding.holder is owner and binding.name == name:
                return entry.info.id, binding
    return None


def owner_of(owner: object, name: str) -> str | None:
    """The id of the applied backport that patched ``owner.name``, if any."""
    with STATE.patch_lock:
        found = _holder_of(owner, name)
        return found[0] if found else None


def original(symbol: str) -> object:
    """The object ``symbol`` (a target or a declared copy) named before the
    applied backport replaced it; raise ``LookupError`` when no applied
    backport replaced it, or when the backport created it (there was none)."""
    found = STATE.originals.get(symbol, ABSENT)
    if found is ABSENT:
        raise LookupError(symbol)
    return found


def _publish(*extra: Entry) -> None:
    # original() reads this snapshot without the lock (a wrapper calls it on
    # every call, and torch.compile cannot trace a lock); it is replaced whole,
    # never changed in place, so a reader sees one state or the other. It
    # names an original before the replacement is installed and until after
    # it is removed.
    originals: dict[str, object] = {}
    for entry in (*_entries().values(), *extra):
        for patch in entry.patches:
            if patch.original is not ABSENT:
                for symbol in (patch.symbol, *patch.copies):
                    originals[symbol] = patch.original
    STATE.originals = originals


def before_patch(owner: object, name: str) -> tuple[object, object] | None:
    """Where ``owner.name`` was defined before an applied backport replaced it, and
    the raw object there: ``(owner, raw)``, or ``(base class, raw)`` when it was
    inherited, or ``(owner, ABSENT)`` when the backport created it. None when no
    applied backport patched it. A config option was its value before."""
    if not _entries():
        # Nothing applied (every symbol an apply verifies before it patches).
        return None
    try:
        site = configs.site_of(owner, name)
    except AttributeError:
        site = None
    with STATE.patch_lock:
        found = _holder_of(*((site.module, site.key) if site else (owner, name)))
    if found is None:
        return None
    patch = found[1]
    if isinstance(patch, Patch) and patch.config is not None:
        return owner, patch.original
    if isinstance(patch, Binding):
        # A declared copy: it held the original itself.
        return owner, patch.old
    if patch.own is not ABSENT:
        return owner, patch.own
    inherited = defined_in(getattr(owner, "__mro__", ())[1:], name)
    return inherited if inherited is not None else (owner, ABSENT)


@contextmanager
def hook_running(backport_id: str, hook: str) -> Iterator[None]:
    # apply() or revert() from inside a hook would change the registry while
    # this very operation is half-way through it.
    # Nested (a hook imports another backport's target, which applies it
    # lazily and runs its hook): the outer hook is still running afterwards.
    outer = getattr(STATE.in_hook, "running", None)
    STATE.in_hook.running = f"the {hook} hook of {backport_id!r}"
    try:
        with foreign_code():
            yield
    finally:
        STATE.in_hook.running = outer


def _bind(
    entry: Entry, patch: Patch, copy: str, holder: tuple[object, str] | None
) -> Binding | str | None:
    # None: a conditional copy that this environment binds to something else
    # (or not at all), left as it is.
    if holder is None:
        return None if copy in patch.conditional else f"{copy} is not there"
    owner, name = holder
    raw = _current(owner, name)
    if raw is not ABSENT and unwrapped(raw) is unwrapped(patch.replacement):
        # Imported while the backport was applied: it copied the fix from a
        # site already bound. Revert puts the original there.
        old = type(raw)(patch.original) if raw is not unwrapped(raw) else patch.original  # type: ignore[call-arg]
        return Binding(owner, name, old, raw, copy)
    if raw is ABSENT or unwrapped(raw) is not patch.original:
        if copy in patch.conditional:
            return None
        found = "nothing" if raw is ABSENT else f"a {type(raw).__name__} that is not the original"
        return f"declared copy {copy} holds {found}"
    other = owner_of(owner, name)
    if other is not None and other != entry.info.id:
        return f"declared copy {copy} is already patched by backport {other!r}"
    # A copy keeps its kind: a staticmethod or classmethod copy stays one, and
    # a plain copy of a staticmethod target (``S = C.s``) gets the plain
    # function, as the class's attribute gives it (torch.compile cannot call
    # a staticmethod object).
    function = unwrapped(patch.replacement)
    kind: Any = type(raw)
    new = (
        built_once(("wrapped", kind, id(function)), (function,), lambda: kind(function))
        if raw is not unwrapped(raw)
        else function
    )
    return Binding(owner, name, raw, new, copy)


def _alias_holder(namespace: dict[str, Any], name: str) -> str | None:
    # The applied backport whose original ``name`` of ``namespace`` holds.
    for entry in _entries().values():
        for patch in entry.patches:
            if patch.alias is not None and patch.alias[0] is namespace and patch.alias[1] == name:
                return entry.info.id
    return None


def apply_patches(
    info: AppliedBackport, patches: tuple[Patch, ...], hooks: Hooks = Hooks(), *, kept: bool = True
) -> tuple[str, ...]:
    """Apply every patch and bind every declared copy whose module is imported,
    or nothing; raise :class:`PatchConflict` or the setattr error. Returns the
    modules whose copies wait for their import (see :func:`bind_copies`).

    ``after_apply`` does not run here: the caller runs :func:`run_after_apply`
    once the import that triggered the apply has finished. ``kept=False``:
    an ``enabled()`` scope holds it (see :func:`enter_scope`).
    """
    with STATE.patch_lock:
        entry = _entries().get(info.id)
        if entry is not None:
            if entry.info.manifest == info.manifest:
                raise AlreadyApplied(info.id)
            raise ForeignApplied(entry.info.manifest)
        patches = tuple(_now_config(p) for p in patches)
        new = Entry(
            info,
            patches,
            hooks,
            kept=kept,
            modules_seen=len(sys.modules),
            executing=_executing_modules(),
        )
        bindings: list[Binding] = []
        for patch in patches:
            other = owner_of(patch.owner, patch.name)
            if other is not None:
                raise PatchConflict(f"{patch.symbol} is already patched by backport {other!r}")
            if patch.registry is None:
                editor = _editor_of(_current(patch.owner, patch.name))
                if editor is not None:
                    raise PatchConflict(
                        f"{patch.symbol} is a registry whose entries backport {editor!r} "
                        "edits; replacing it would hide them"
                    )
            if _now(patch) is not patch.own:
                raise Stale(
                    f"{patch.symbol} changed between verification and patching; "
                    "something else replaced it"
                )
            if patch.alias is not None:
                other = _alias_holder(*patch.alias)
                if other is not None:
                    raise PatchConflict(
                        f"the original of {patch.symbol} goes to {patch.alias[1]!r} of the "
                        f"backport module, which holds an original of backport {other!r}"
                    )
            for copy in patch.copies:
                holder = site_holder(copy)
                if holder is None:
                    new.waiting.setdefault(split_symbol(copy)[0], []).append((patch, copy))
                    continue
                bound = _bind(new, patch, copy, holder)
                if isinstance(bound, str):
                    raise PatchConflict(bound)
                if bound is not None:
                    bindings.append(bound)
        # Each original is bound in the backport module before anything can
        # call the replacement. It stays bound after revert: the original is
        # always right to call, and a call already inside the wrapper when
        # another thread reverts must not find the name gone.
        for patch in patches:
            if patch.alias is not None:
                patch.alias[0][patch.alias[1]] = patch.original
        _publish(new)
        done: list[Patch] = []
        try:
            for patch in patches:
                if patch.registry is not None:
                    _edit(new, patch)
                    continue
                setattr(patch.owner, patch.name, patch.replacement)
                done.append(patch)
            new.bindings = rebind(bindings)
        except BaseException as exc:
            stuck = _roll_back(new, done)
            if stuck and isinstance(exc, FOREIGN_FAILURES):
                raise RollbackFailed(exc, stuck) from exc
            raise
        for patch in patches:
            _pickles_as_target(patch)
        _entries()[info.id] = new
        return tuple(dict.fromkeys([*new.waiting, *new.awaited]))


def _roll_back(new: Entry, done: list[Patch]) -> list[tuple[str, BaseException]]:
    # Every restore is tried, and the registry left as it was, even when one
    # restore fails (a class may refuse a set it allowed): the symbols that
    # still hold their replacement, and why.
    stuck: list[tuple[str, BaseException]] = []
    for patch in reversed(done):
        try:
            _restore(patch)
        except FOREIGN_FAILURES as failed:
            stuck.append((patch.symbol, failed))
    _unedit(new)
    _publish()
    return stuck


def _editor_of(container: object) -> str | None:
    # The applied backport that edits the entries of ``container``, if any.
    for entry in _entries().values():
        for patch in entry.patches:
            if patch.registry is not None and patch.replacement is container:
                return entry.info.id
    return None


def entry_owner(
    backport_id: str, container: object, item: registries.Item | registries.Awaited
) -> str | None:
    """Another applied backport than ``backport_id`` that adds or removes
    ``item`` of ``container``, if any."""
    with STATE.patch_lock:
        return _entry_holder(backport_id, container, item)


def _entry_holder(
    backport_id: str, container: object, item: registries.Item | registries.Awaited
) -> str | None:
    # Another applied backport that adds or removes the same entry of container.
    for entry in _entries().values():
        if entry.info.id == backport_id:
            continue
        for patch in entry.patches:
            if patch.registry is None or patch.replacement is not container:
                continue
            if any(registries.same_entry(item, other) for other in patch.registry):
                return entry.info.id
    return None


def _edit(entry: Entry, patch: Patch) -> None:
    # Add and remove the entries whose objects are there; the others wait for
    # their module. Raises PatchConflict, or Stale when an entry to remove
    # went away since verification; the caller undoes what was done.
    assert patch.registry is not None
    container = patch.replacement
    for planned in patch.registry:
        other = _entry_holder(entry.info.id, container, planned)
        if other is not None:
            raise PatchConflict(
                f"entry {planned.label} of {patch.symbol} is added or removed by backport "
                f"{other!r} already; an entry belongs to one backport only"
            )
        if isinstance(planned, registries.Awaited):
            module = _first_unloaded(planned)
            if module is not None:
                entry.awaited.setdefault(module, []).append((patch, planned))
                continue
        item = planned.resolve() if isinstance(planned, registries.Awaited) else planned
        done = registries.do(container, item)
        if isinstance(done, str):
            raise Stale(f"{patch.symbol}: {done} any more; something else changed it")
        entry.edits.append((patch, done))


def _first_unloaded(item: registries.Awaited) -> str | None:
    return next((m for m in item.modules if not lazy.is_loaded(m)), None)


def _unedit(entry: Entry) -> None:
    # Undo the entries in the reverse order they were edited: a list gets its
    # elements back at their positions.
    for patch, done in reversed(entry.edits):
        why = registries.undo(patch.replacement, done)
        if why is not None:
            logger.warning(
                "backport-tool: %s: %s after backport %r edited %s; left as it is",
                patch.symbol,
                why,
                entry.info.id,
                patch.symbol,
            )
    entry.edits.clear()


def edits(backport_id: str, symbol: str) -> tuple[registries.Done, ...] | None:
    """What the applied backport did with the entries of the registry
    ``symbol``, and which of its entries wait for their module (as
    :class:`registries.Awaited`); None when it is not applied."""
    with STATE.patch_lock:
        entry = _entries().get(backport_id)
        if entry is None:
            return None
        return tuple(done for patch, done in entry.edits if patch.symbol == symbol)


def awaited_entries(backport_id: str, symbol: str) -> tuple[str, ...]:
    """The entries of the registry ``symbol`` that the applied backport has not
    added or removed yet: their module is not imported."""
    with STATE.patch_lock:
        entry = _entries().get(backport_id)
        if entry is None:
            return ()
        return tuple(
            item.label
            for waiting in entry.awaited.values()
            for patch, item in waiting
            if patch.symbol == symbol
        )


def _pickles_as_target(patch: Patch) -> None:
    # A class replacing a class: its instances pickle under the target's path.
    if not (isinstance(patch.original, type) and isinstance(patch.replacement, type)):
        return
    module, parts = split_symbol(patch.symbol)
    pickling.pickle_as(patch.replacement, module, ".".join(parts))


def bind_copies(backport_id: str, module: str) -> tuple[str, ...]:
    """Bind the declared copies in ``module``, now that it is imported; return
    the copies that did not hold the original (they stay as they are)."""
    with STATE.patch_lock:
        entry = _entries().get(backport_id)
        if entry is None:
            return ()
        strays: list[str] = []
        for patch, copy in entry.waiting.pop(module, []):
            bound = _bind(entry, patch, copy, site_holder(copy))
            if isinstance(bound, str):
                strays.append(bound)
                continue
            if bound is not None:
                entry.bindings += rebind([bound])
        strays += _edit_awaited(entry, module)
        entry.stray += strays
        return tuple(strays)


def _edit_awaited(entry: Entry, module: str) -> list[str]:
    # The registry entries that waited for ``module``: each is added (or
    # removed) now, or waits for the next module it needs, or is a stray.
    strays: list[str] = []
    for patch, item in entry.awaited.pop(module, []):
        later = _first_unloaded(item)
        if later is not None:
            entry.awaited.setdefault(later, []).append((patch, item))
            continue
        other = _entry_holder(entry.info.id, patch.replacement, item)
        if other is not None:
            strays.append(
                f"entry {item.label} of {patch.symbol} is added or removed by backport "
                f"{other!r} already"
            )
            continue
        try:
            done = registries.do(patch.replacement, item.resolve())
        except FOREIGN_FAILURES as exc:
            strays.append(f"entry {item.label} of {patch.symbol}: {describe(exc)}")
            continue
        if isinstance(done, str):
            strays.append(f"{done} in {patch.symbol}")
            continue
        entry.edits.append((patch, done))
    return strays


def waiting_modules(
    backport_id: str, *, copies: bool = True, entries: bool = True
) -> tuple[str, ...]:
    """The modules whose import the applied backport waits for: its declared
    copies there are bound (``copies``), and its registry entries added
    (``entries``), when they are."""
    with STATE.patch_lock:
        entry = _entries().get(backport_id)
        if entry is None:
            return ()
        found = [*(entry.waiting if copies else ()), *(entry.awaited if entries else ())]
        return tuple(dict.fromkeys(found))


def bound_copies(backport_id: str) -> tuple[str, ...]:
    with STATE.patch_lock:
        entry = _entries().get(backport_id)
        return tuple(b.path for b in entry.bindings) if entry else ()


def _run_before_revert(backport_id: str, hooks: Hooks) -> None:
    if hooks.before_revert is None:
        return
    try:
        with hook_running(backport_id, "before_revert"):
            hooks.before_revert()
    except FOREIGN_FAILURES:
        # Reverting must still restore the originals.
        logger.warning(
            "backport-tool: before_revert of %r raised; reverting anyway",
            backport_id,
            exc_info=True,
        )


def run_after_apply(backport_id: str) -> None:
    """Run the applied backport's ``after_apply`` hook, once; when it raises,
    revert the backport (its ``before_revert`` undoes what the hook did) and
    raise :class:`HookFailed`."""
    with STATE.patch_lock:
        entry = _entries().get(backport_id)
        if entry is None or entry.after_apply_done:
            return
        entry.after_apply_done = True
        if entry.hooks.after_apply is None:
            return
        try:
            with hook_running(backport_id, "after_apply"):
                entry.hooks.after_apply()
        except FOREIGN_FAILURES as exc:
            revert((backport_id,))
            raise HookFailed(f"after_apply raised {describe(exc)}") from exc
        except BaseException:
            # Ctrl-C in the hook: half of what it registers may be done, so
            # the backport is rolled back as for a failure, and the interrupt
            # goes on (an enabled() scope would otherwise hold it for ever).
            revert((backport_id,))
            raise


def elsewhere(entry: Entry) -> bool:
    """True when a config option the backport set, one torch keeps per
    context (torch 2.13 on), does not hold its value in the calling thread or
    task: it was set in another one (or set again since)."""
    return any(
        p.config is not None
        and configs.per_context(p.config)
        and not _holds(_now(p), p.replacement, config=p.config)
        for p in entry.patches
    )


def in_another_context(backport_id: str) -> bool:
    """:func:`elsewhere` for an applied backport's id."""
    entry = _entries().get(backport_id)
    return entry is not None and elsewhere(entry)


def revert(ids: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """Restore exactly what applying the given (default: all) backports changed."""
    reverted: list[str] = []
    with STATE.patch_lock:
        for backport_id in list(_entries()) if ids is None else ids:
            entry = _entries().get(backport_id)
            if entry is None:
                continue
            if entry.after_apply_done:
                _run_before_revert(backport_id, entry.hooks)
            del _entries()[backport_id]
            unbind(entry.bindings)
            _unedit(entry)
            for patch in reversed(entry.patches):
                if patch.registry is not None:
                    continue
                if _now(patch) is patch.replacement:
                    _restore(patch)
                elif patch.config is not None and configs.per_context(patch.config):
                    # torch keeps the option per thread and task: what apply
                    # set lives in the context that applied it, which no
                    # other one can reach. That context keeps it.
                    logger.warning(
                        "backport-tool: %s is not %r in this thread or task: torch keeps config "
                        "options per context, so the value backport %r set stays where it was "
                        "set (or was set again since); revert() there to undo it",
                        patch.symbol,
                        patch.replacement,
                        backport_id,
                    )
                else:
                    # Someone patched over us. Putting our original back would
                    # silently drop their change, so leave theirs in place.
                    logger.warning(
                        "backport-tool: %s was replaced by something else after backport %r "
                        "patched it; left as it is",
                        patch.symbol,
                        backport_id,
                    )
            _warn_left_behind(entry)
            reverted.append(backport_id)
        if reverted:
            _publish()
    return tuple(reverted)


def _executing_modules() -> frozenset[str]:
    # The module bodies on this thread's stack: about 10 us, no scan of
    # sys.modules.
    names = set()
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "<module>":
            name = frame.f_globals.get("__name__")
            if type(name) is str:
                names.add(name)
        frame = frame.f_back  # type: ignore[assignment]
    return frozenset(names)


def _warn_left_behind(entry: Entry) -> None:
    # Revert restores the bindings apply made. Names bound to a replacement
    # while it was in force (a module imported meanwhile, a subclass) are
    # someone else's, and keep it: say so rather than let them run the fix
    # silently after revert.
    replacements = [p.replacement for p in entry.patches if p.registry is None and p.config is None]
    found = left_behind(replacements, entry.modules_seen, entry.executing)
    if found:
        shown = ", ".join(found[:_SHOWN]) + (
            f" and {len(found) - _SHOWN} more" if len(found) > _SHOWN else ""
        )
        logger.warning(
            "backport-tool: %s: reverted; what was bound to its replacement while it was in "
            "force keeps it, as revert restores only the target and its declared copies: %s. "
            "Import or build those again after revert, or restart the process",
            entry.info.id,
            shown,
        )


_SHOWN = 6


def enter_scope(
    info: AppliedBackport, patches: tuple[Patch, ...], hooks: Hooks
) -> tuple[Entry | None, bool]:
    """Put a backport in force for an ``enabled()`` scope: apply it and run its
    ``after_apply``, or count one more scope on it when scopes already hold it.
    Returns what the scope holds, for :func:`leave_scope` (None when
    ``apply()`` applied it: it stays as it is), and whether this call changed
    anything. Raises :class:`PatchConflict` (:class:`Stale` when a target
    changed since it was verified), :class:`ForeignApplied`,
    :class:`HookFailed` (rolled back) or the setattr error, having changed
    nothing."""
    with STATE.patch_lock:
        entry = _entries().get(info.id)
        if entry is not None:
            if entry.info.manifest != info.manifest:
                raise ForeignApplied(entry.info.manifest)
            if elsewhere(entry):
                raise OtherContext(info.id)
            if entry.kept:
                return None, False
            entry.scopes += 1
            return entry, False
        apply_patches(info, patches, hooks, kept=False)
        entry = _entries()[info.id]
        entry.scopes = 1
        run_after_apply(info.id)
        return entry, True


def leave_scope(entry: Entry) -> bool:
    """One scope of ``entry`` ends; the last one reverts it, unless ``apply()``
    kept it or ``revert()`` already reverted it. True when it reverted."""
    with STATE.patch_lock:
        if _entries().get(entry.info.id) is not entry:
            return False  # reverted (and perhaps applied again) meanwhile
        entry.scopes -= 1
        if entry.scopes > 0 or entry.kept:
            return False
        # A copy's module imported during the scope copied the replacement
        # from the target: bound now, revert puts the original there too.
        for module in waiting_modules(entry.info.id):
            if lazy.is_loaded(module):
                for stray in bind_copies(entry.info.id, module):
                    logger.warning("backport-tool: %s: %s; left as it is", entry.info.id, stray)
            elif module in sys.modules:
                logger.warning(
                    "backport-tool: %s: %s was being imported when the last enabled() scope "
                    "ended; its declared copies may keep the replacement",
                    entry.info.id,
                    module,
                )
        revert((entry.info.id,))
        return True


def keep(backport_id: str) -> None:
    """``apply()`` found the backport in force: it stays applied when the
    ``enabled()`` scopes that put it in force end."""
    with STATE.patch_lock:
        entry = _entries().get(backport_id)
        if entry is not None:
            entry.kept = True


def held(backport_id: str) -> tuple[AppliedBackport, tuple[Patch, ...], Hooks] | None:
    """What the backport in force was applied with, to apply it again the
    same way; None when it is not in force."""
    with STATE.patch_lock:
        entry = _entries().get(backport_id)
        return (entry.info, entry.patches, entry.hooks) if entry is not None else None


def replaced_by(backport_id: str, *found: object) -> str | None:
    """The backport other than ``backport_id`` whose replacement one of
    ``found`` is."""
    with STATE.patch_lock:
        for other, entry in _entries().items():
            if other != backport_id and any(
                p.replacement is f for p in entry.patches if p.registry is None for f in found
            ):
                return other
    return None


def displaced(backport_id: str) -> tuple[str, ...]:
    """The targets and declared copies of an applied backport that no longer
    hold what apply put there (someone set them since), by symbol."""
    with STATE.patch_lock:
        entry = _entries().get(backport_id)
        if entry is None:
            return ()
        found = [
            p.symbol
            for p in entry.patches
            if p.registry is None and not _holds(_now(p), p.replacement, config=p.config)
        ]
        found += [b.path for b in entry.bindings if _current(b.holder, b.name) is not b.new]
        return tuple(found)


def _holds(now: object, put: object, *, config: configs.ConfigSite | None) -> bool:
    if now is put:
        return True
    # A config option may hold an equal value of its own (the user set 1024
    # again): plain data compares without running foreign code.
    return config is not None and type(now) is type(put) and type(put) in _PLAIN and now == put


_PLAIN = (int, float, str, bool, bytes, type(None))


def applied() -> tuple[AppliedBackport, ...]:
    with STATE.patch_lock:
        return tuple(entry.info for entry in _entries().values())
