"""Registry entries as patch sites: entries added to, and removed from, a set,
dict or list that torch owns (``torch.fx.node:_side_effectful_functions``),
in place. The container is never replaced, so every name that holds it sees
the change, and revert undoes exactly what apply did: it removes only what
apply added, puts back what apply removed (a list element at its position, a
dict key with its value), and leaves alone what others changed meanwhile.

This module is on the startup path: stdlib only, and it imports nothing.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import NamedTuple

# The containers a registry target edits, by the name messages use.
KINDS = (("set", set), ("dict", dict), ("list", list))


class EntryState(str, enum.Enum):
    """What ``check`` finds for one entry of a registry target, and what apply
    did with it. The values appear in JSON."""

    WILL_ADD = "will-add"  # absent: apply adds it
    PRESENT = "present"  # there already: apply leaves it, and revert keeps it
    WILL_REPLACE = "will-replace"  # a dict key holding another value: apply replaces it
    WILL_REMOVE = "will-remove"  # there: apply removes it
    ABSENT = "absent"  # an entry to remove is not there: drift
    AWAITED = "awaited"  # its module is not imported yet: added when it is
    ADDED = "added"
    REPLACED = "replaced"
    REMOVED = "removed"

    def __str__(self) -> str:
        return self.value


class Item(NamedTuple):
    """One entry to add or remove, resolved: ``key`` is the element (set,
    list) or key (dict), ``value`` the value a dict add maps it to."""

    adds: bool
    label: str  # the entry as the manifest writes it
    key: object
    value: object = None


class Awaited(NamedTuple):
    """An entry that names an object of a module not imported yet (lazy
    apply): added once ``modules`` are imported, by calling ``resolve``, which
    builds its :class:`Item` (or raises, saying why it cannot)."""

    adds: bool
    label: str
    modules: tuple[str, ...]
    resolve: Callable[[], Item]


def same_entry(one: Item | Awaited, other: Item | Awaited) -> bool:
    """Whether two backports' entries are one entry of a container: the same
    object, or the same reference as written."""
    if one.label == other.label:
        return True
    return isinstance(one, Item) and isinstance(other, Item) and one.key is other.key


def tally(states: Iterable[EntryState], words: Mapping[EntryState, str]) -> str:
    # "2 added, 1 removed": the entries in each state, in the order first
    # seen, each state in ``words`` if it is there.
    counts = Counter(states)
    return ", ".join(f"{n} {words.get(state, state.value)}" for state, n in counts.items())


class Done(NamedTuple):
    """What apply did with one item, for revert: ``state`` is ADDED, PRESENT,
    REPLACED or REMOVED; ``key`` the object the container holds (or held);
    ``old`` a dict's previous value or a list element's index."""

    item: Item
    state: EntryState
    key: object
    old: object = None


def kind_of(container: object) -> str | None:
    """``"set"``, ``"dict"`` or ``"list"`` (subclasses included), else None."""
    for name, kind in KINDS:
        if isinstance(container, kind):
            return name
    return None


def _find(container: object, key: object) -> tuple[bool, object]:
    # (found, the object the container itself holds): the same object as key,
    # else one equal to it, as the container's own membership test counts it.
    if isinstance(container, list):
        return _held(container, key)
    assert isinstance(container, (set, dict))
    if key not in container:
        return False, None
    found, element = _held(container, key)
    return True, element if found else key


def _held(elements: Collection[object], key: object) -> tuple[bool, object]:
    # The element that is key, else the first one equal to it.
    for element in elements:
        if element is key:
            return True, element
    for element in elements:
        if element == key:
            return True, element
    return False, None


def _index(container: list[object], key: object) -> int | None:
    for index, element in enumerate(container):
        if element is key:
            return index
    return None


def state(container: object, item: Item) -> EntryState:
    """What apply would do with ``item`` now. Raises ``TypeError`` for a key
    a set or dict cannot hold (unhashable)."""
    found, stored = _find(container, item.key)
    if not item.adds:
        return EntryState.WILL_REMOVE if found else EntryState.ABSENT
    if not found:
        return EntryState.WILL_ADD
    if isinstance(container, dict) and container[stored] is not item.value:
        return EntryState.WILL_REPLACE
    return EntryState.PRESENT


def do(container: object, item: Item) -> Done | str:
    """Apply ``item`` to ``container``; the record of it, or why it cannot be
    applied (an entry to remove that is not there), having changed nothing."""
    found, stored = _find(container, item.key)
    if not item.adds:
        if not found:
            return f"entry {item.label} to remove is not there"
        if isinstance(container, list):
            index = _index(container, stored)
            assert index is not None
            del container[index]
            return Done(item, EntryState.REMOVED, stored, index)
        if isinstance(container, dict):
            old = container.pop(stored)
            return Done(item, EntryState.REMOVED, stored, old)
        assert isinstance(container, set)
        container.discard(stored)
        return Done(item, EntryState.REMOVED, stored)
    if isinstance(container, dict):
        if found:
            old = container[stored]
            if old is item.value:
                return Done(item, EntryState.PRESENT, stored)
            container[stored] = item.value
            return Done(item, EntryState.REPLACED, stored, old)
        container[item.key] = item.value
        return Done(item, EntryState.ADDED, item.key)
    if found:
        return Done(item, EntryState.PRESENT, stored)
    if isinstance(container, list):
        container.append(item.key)
    else:
        assert isinstance(container, set)
        container.add(item.key)
    return Done(item, EntryState.ADDED, item.key)


def undo(container: object, done: Done) -> str | None:
    """Revert what :func:`do` did, where nobody changed it since; otherwise
    leave it and return what changed, for a warning."""
    item = done.item
    if done.state is EntryState.PRESENT:
        return None
    if isinstance(container, dict):
        return _undo_dict(container, done)
    if isinstance(container, list):
        if done.state is EntryState.ADDED:
            # The last occurrence: the one apply appended.
            for index in range(len(container) - 1, -1, -1):
                if container[index] is done.key:
                    del container[index]
                    return None
            return f"entry {item.label} was removed by something else"
        if _index(container, done.key) is None:
            assert isinstance(done.old, int)
            container.insert(min(done.old, len(container)), done.key)
        return None
    assert isinstance(container, set)
    if done.state is EntryState.ADDED:
        if done.key in container:
            container.discard(done.key)
            return None
        return f"entry {item.label} was removed by something else"
    container.add(done.key)
    return None


def _undo_dict(container: dict[object, object], done: Done) -> str | None:
    item = done.item
    if done.state is EntryState.REMOVED:
        if done.key not in container:
            container[done.key] = done.old
            return None
        if container[done.key] is done.old:
            return None
        return f"entry {item.label} was set again by something else"
    if done.key not in container or container[done.key] is not item.value:
        return f"entry {item.label} was changed by something else"
    if done.state is EntryState.REPLACED:
        container[done.key] = done.old
    else:
        del container[done.key]
    return None
