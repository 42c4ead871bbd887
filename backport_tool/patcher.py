from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from . import references
from .symbols import ABSENT, defined_in, unwrapped

logger = logging.getLogger("backport_tool")

# One lock for all patch state: apply and revert of different backports may
# touch the same class, and a half-done apply must never be observable.
_LOCK = threading.RLock()


@dataclass(frozen=True)
class Patch:
    """One planned attribute replacement.

    ``own`` is what ``owner.__dict__`` held under ``name`` when the target was
    verified (:data:`ABSENT` when the attribute was inherited); applying checks
    that it still holds exactly that.
    """

    symbol: str
    owner: object
    name: str
    own: object
    replacement: object


@dataclass(frozen=True)
class AppliedBackport:
    """A backport that is in force in this process."""

    id: str
    manifest: str  # the real path of the manifest it came from
    targets: tuple[str, ...]
    module_sha256: str  # of the backport module's bytes that ran


class PatchConflict(Exception):
    """The state of a target is not what verification saw."""


class AlreadyApplied(Exception):
    """This backport, from this manifest, is already in force."""


class ForeignApplied(Exception):
    """A backport of this id from another manifest is already in force."""

    def __init__(self, manifest: str) -> None:
        super().__init__(manifest)
        self.manifest = manifest


@dataclass(frozen=True)
class Hooks:
    """A backport module's optional hooks, run under the patch lock."""

    after_apply: Callable[[], object] | None = None
    before_revert: Callable[[], object] | None = None


class HookFailed(Exception):
    """``after_apply`` raised; everything was rolled back."""


@dataclass(frozen=True)
class _Entry:
    info: AppliedBackport
    patches: tuple[Patch, ...]
    bindings: tuple[references.Binding, ...]  # copies of the originals, rebound
    hooks: Hooks


_applied: dict[str, _Entry] = {}


def _current(owner: object, name: str) -> object:
    return vars(owner).get(name, ABSENT)


def _restore(patch: Patch) -> None:
    if patch.own is not ABSENT:
        setattr(patch.owner, patch.name, patch.own)
    elif _current(patch.owner, patch.name) is not ABSENT:
        delattr(patch.owner, patch.name)


def is_applied(backport_id: str) -> bool:
    with _LOCK:
        return backport_id in _applied


def applied_from(backport_id: str) -> str | None:
    """The manifest the applied backport ``backport_id`` came from, if it is applied."""
    with _LOCK:
        entry = _applied.get(backport_id)
        return entry.info.manifest if entry else None


def _patch_of(owner: object, name: str) -> tuple[str, Patch] | None:
    with _LOCK:
        for entry in _applied.values():
            for patch in entry.patches:
                if patch.owner is owner and patch.name == name:
                    return entry.info.id, patch
    return None


def owner_of(owner: object, name: str) -> str | None:
    """Return the id of the applied backport that patched ``owner.name``, if any."""
    found = _patch_of(owner, name)
    return found[0] if found else None


# Values that the interpreter shares by identity (small ints, interned
# strings, None, True): a module that holds the same one did not copy it.
_SHARED = (bool, int, float, complex, str, bytes, type(None), type(Ellipsis))


def _tracked(original: object) -> bool:
    return not isinstance(original, _SHARED) and not (type(original) is tuple and not original)


def copies(patch: Patch, *, back: bool = False) -> list[references.Binding]:
    """The other module and class bindings of the original that applying
    ``patch`` rebinds (with ``back``: the bindings of the replacement that
    reverting it rebinds to the original). An inherited original belongs to its
    base class, and copies of it stay the base's."""
    old, new = (patch.replacement, patch.own) if back else (patch.own, patch.replacement)
    if patch.own is ABSENT or not _tracked(unwrapped(old)):
        return []
    return references.bindings(unwrapped(old), unwrapped(new), (patch.owner, patch.name))


def copy_paths(patch: Patch) -> tuple[str, ...]:
    """Where :func:`apply_patches` would rebind copies of ``patch``'s original."""
    with _LOCK:
        return tuple(b.path for b in copies(patch))


def stale_paths(patch: Patch) -> tuple[str, ...]:
    """References to ``patch``'s original that no rebinding reaches."""
    original = unwrapped(patch.own)
    if patch.own is ABSENT or not _tracked(original):
        return ()
    with _LOCK:
        return references.stale(original)


def original(symbol: str) -> object:
    """The object ``symbol`` named before the applied backport replaced it;
    raise ``LookupError`` when no applied backport replaced it, or when the
    backport created it (there was none)."""
    with _LOCK:
        for entry in _applied.values():
            for patch in entry.patches:
                if patch.symbol == symbol:
                    before = before_patch(patch.owner, patch.name)
                    if before is None or before[1] is ABSENT:
                        break
                    return unwrapped(before[1])
    raise LookupError(symbol)


def before_patch(owner: object, name: str) -> tuple[object, object] | None:
    """Where ``owner.name`` was defined before an applied backport replaced it, and
    the raw object there: ``(owner, raw)``, or ``(base class, raw)`` when it was
    inherited, or ``(owner, ABSENT)`` when the backport created it. None when no
    applied backport patched it."""
    found = _patch_of(owner, name)
    if found is None:
        return None
    if found[1].own is not ABSENT:
        return owner, found[1].own
    inherited = defined_in(getattr(owner, "__mro__", ())[1:], name)
    return inherited if inherited is not None else (owner, ABSENT)


_NO_HOOKS = Hooks()


def _run_before_revert(backport_id: str, hooks: Hooks) -> None:
    if hooks.before_revert is None:
        return
    try:
        hooks.before_revert()
    except Exception:
        # Reverting must still restore the originals.
        logger.warning(
            "backport-tool: before_revert of %r raised; reverting anyway",
            backport_id,
            exc_info=True,
        )


def apply_patches(
    info: AppliedBackport, patches: tuple[Patch, ...], hooks: Hooks = _NO_HOOKS
) -> tuple[tuple[str, ...], ...]:
    """Apply every patch, and rebind every copy of each original, or nothing;
    raise :class:`PatchConflict` or the setattr error. Returns the paths rebound,
    per patch.

    "Already applied" is decided here, under the lock, so that threads applying
    one patch set at once never conflict with themselves.
    """
    with _LOCK:
        entry = _applied.get(info.id)
        if entry is not None:
            if entry.info.manifest == info.manifest:
                raise AlreadyApplied(info.id)
            raise ForeignApplied(entry.info.manifest)
        for patch in patches:
            other = owner_of(patch.owner, patch.name)
            if other is not None:
                raise PatchConflict(f"{patch.symbol} is already patched by backport {other!r}")
            if _current(patch.owner, patch.name) is not patch.own:
                raise PatchConflict(
                    f"{patch.symbol} changed between verification and patching; "
                    "something else replaced it"
                )
        done: list[Patch] = []
        rebound: list[references.Binding] = []
        per_patch: list[tuple[str, ...]] = []
        try:
            # Copies are found before any patch lands, so that one target's
            # replacement is never mistaken for another's original.
            found = [copies(patch) for patch in patches]
            for patch in patches:
                setattr(patch.owner, patch.name, patch.replacement)
                done.append(patch)
            for bindings in found:
                rebound += references.rebind(bindings)
                per_patch.append(tuple(b.path for b in bindings))
            # Registered before the hook runs, so that original() works in it.
            _applied[info.id] = _Entry(info, patches, tuple(rebound), hooks)
            if hooks.after_apply is not None:
                try:
                    hooks.after_apply()
                except Exception as exc:
                    # The hook may have registered part of the fix already:
                    # its own undo is the one that knows how to take it back.
                    _run_before_revert(info.id, hooks)
                    raise HookFailed(f"after_apply raised {type(exc).__name__}: {exc}") from exc
        except BaseException:
            _applied.pop(info.id, None)
            references.unbind(rebound)
            for patch in reversed(done):
                _restore(patch)
            raise
        return tuple(per_patch)


def revert(ids: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """Restore the originals of the given (default: all) applied backports, and
    every copy that applying them rebound."""
    reverted: list[str] = []
    with _LOCK:
        for backport_id in list(_applied) if ids is None else ids:
            entry = _applied.get(backport_id)
            if entry is None:
                continue
            _run_before_revert(backport_id, entry.hooks)
            del _applied[backport_id]
            references.unbind(list(entry.bindings))
            for patch in reversed(entry.patches):
                # Modules imported while it was applied copied the fix.
                references.rebind(copies(patch, back=True))
                if _current(patch.owner, patch.name) is patch.replacement:
                    _restore(patch)
                else:
                    # Someone patched over us. Putting our original back would
                    # silently drop their change, so leave theirs in place.
                    logger.warning(
                        "backport-tool: %s was replaced by something else after backport %r "
                        "patched it; left as it is",
                        patch.symbol,
                        backport_id,
                    )
            reverted.append(backport_id)
    return tuple(reverted)


def applied() -> tuple[AppliedBackport, ...]:
    with _LOCK:
        return tuple(entry.info for entry in _applied.values())
