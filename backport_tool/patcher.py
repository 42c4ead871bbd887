from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from .symbols import ABSENT

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


_applied: dict[str, tuple[AppliedBackport, tuple[Patch, ...]]] = {}


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
        return entry[0].manifest if entry else None


def _patch_of(owner: object, name: str) -> tuple[str, Patch] | None:
    with _LOCK:
        for info, patches in _applied.values():
            for patch in patches:
                if patch.owner is owner and patch.name == name:
                    return info.id, patch
    return None


def owner_of(owner: object, name: str) -> str | None:
    """Return the id of the applied backport that patched ``owner.name``, if any."""
    found = _patch_of(owner, name)
    return found[0] if found else None


def original_of(owner: object, name: str) -> object | None:
    """What ``owner.name`` held before an applied backport replaced it (ABSENT if it
    was inherited), or None when no applied backport patched it."""
    found = _patch_of(owner, name)
    return found[1].own if found else None


def apply_patches(info: AppliedBackport, patches: tuple[Patch, ...]) -> None:
    """Apply every patch or none; raise :class:`PatchConflict` or the setattr error.

    "Already applied" is decided here, under the lock, so that threads applying
    one patch set at once never conflict with themselves.
    """
    with _LOCK:
        entry = _applied.get(info.id)
        if entry is not None:
            if entry[0].manifest == info.manifest:
                raise AlreadyApplied(info.id)
            raise ForeignApplied(entry[0].manifest)
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
        try:
            for patch in patches:
                setattr(patch.owner, patch.name, patch.replacement)
                done.append(patch)
        except BaseException:
            for patch in reversed(done):
                _restore(patch)
            raise
        _applied[info.id] = (info, patches)


def revert(ids: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """Restore the originals of the given (default: all) applied backports."""
    reverted: list[str] = []
    with _LOCK:
        for backport_id in list(_applied) if ids is None else ids:
            entry = _applied.pop(backport_id, None)
            if entry is None:
                continue
            for patch in reversed(entry[1]):
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
        return tuple(info for info, _ in _applied.values())
