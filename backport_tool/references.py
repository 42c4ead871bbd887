"""Where else a replaced object lives, and which of those places a patch can
put in effect.

Replacing ``owner.name`` is not enough: other modules copy a function with
``from module import name``, classes keep it in their namespace, and a
re-export binds it under a second name. Those bindings are *rebound*: every
module global and class attribute that holds the original itself is pointed
at the replacement, and revert points it back, exactly. We rebind rather than
swap the function's code in place (patchy's way) because a replacement is
written in its own module: its globals, closure cells and defaults are its
own, and a code swap would run it against the original's globals.

What cannot be rebound is reported: entries of dicts, lists and tuples,
``functools.partial`` objects, closures, defaults, bound methods and objects
built from the original still call it. Each is named by a path from a module
(``some.module.TABLE['key']``), found by walking ``gc.get_referrers`` back to a
module namespace. References that no module reaches (temporaries, caches of
the interpreter) are not reported.
"""

from __future__ import annotations

import functools
import gc
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass

from .symbols import unwrapped

# Names of the modules whose bindings are never ours to change: the tool
# itself and the backport modules it executes (they may keep the original
# on purpose, e.g. to call it).
_OWN_PREFIXES = ("backport_tool", "_backport_tool_bp_")
# How many containers may stand between a module and the original.
_MAX_DEPTH = 4


def _ours(module_name: str) -> bool:
    return module_name.startswith(_OWN_PREFIXES)


@dataclass(frozen=True)
class Binding:
    """One module global or class attribute that held the original."""

    holder: object  # a module or a class
    name: str
    old: object  # exactly what the namespace held (a staticmethod stays one)
    new: object
    path: str


def _is_class_of(value: object, module_name: str) -> bool:
    # type(), not isinstance(): isinstance reads __class__, which some of
    # torch's deprecated objects turn into a warning.
    return issubclass(type(value), type) and vars(value).get("__module__") == module_name


def _modules() -> list[tuple[str, types.ModuleType]]:
    return [
        (name, module)
        for name, module in list(sys.modules.items())
        if isinstance(module, types.ModuleType) and not _ours(name)
    ]


def _holders() -> Iterator[tuple[object, str]]:
    """Every namespace a copy can be bound in: each module's globals and the
    classes it defines, with the prefix that names an entry of it."""
    for module_name, module in _modules():
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        yield module, f"{module_name}."
        # Classes are searched where they are defined, not once per importer.
        for value in list(namespace.values()):
            if _is_class_of(value, module_name):
                yield value, f"{module_name}:{value.__qualname__}."


def bindings(original: object, replacement: object, skip: tuple[object, str]) -> list[Binding]:
    """Every module global and class attribute, other than ``skip``, holding
    ``original``, with what each would hold after rebinding."""
    found: list[Binding] = []
    for holder, prefix in _holders():
        for name, raw in list(vars(holder).items()):
            if unwrapped(raw) is not original or (holder, name) == skip:
                continue
            # A staticmethod or classmethod copy stays one.
            new = type(raw)(replacement) if raw is not original else replacement
            found.append(Binding(holder, name, raw, new, prefix + name))
    return found


def rebind(found: list[Binding]) -> list[Binding]:
    """Point every binding at its new value; return those done, for revert."""
    done: list[Binding] = []
    try:
        for binding in found:
            setattr(binding.holder, binding.name, binding.new)
            done.append(binding)
    except BaseException:
        unbind(done)
        raise
    return done


def unbind(done: list[Binding]) -> None:
    """Put back what :func:`rebind` changed, where nobody changed it since."""
    for binding in reversed(done):
        if vars(binding.holder).get(binding.name) is binding.new:
            setattr(binding.holder, binding.name, binding.old)


def stale(original: object) -> tuple[str, ...]:
    """Paths from a module to every reference of ``original`` that is not a
    module or class binding: the places a rebinding cannot reach."""
    namespaces = _namespaces()
    paths: set[str] = set()
    # Breadth-first, one gc pass per level: get_referrers walks every object.
    level: list[tuple[object, list[str]]] = [(original, [])]
    seen = {id(original)}
    for _ in range(_MAX_DEPTH):
        targets = [obj for obj, _ in level]
        referrers = gc.get_referrers(*targets)
        following: list[tuple[object, list[str]]] = []
        for container in referrers:
            if id(container) in seen:
                continue
            if isinstance(container, types.FrameType) or container is level or container is targets:
                continue
            for target, suffix in level:
                if isinstance(container, (staticmethod, classmethod)):
                    # The wrapper a class body keeps a method in: where it is
                    # held is where the original is bound, so it adds no step.
                    if container.__func__ is target:
                        following.append((container, suffix))
                    continue
                step = _step(container, target)
                if step is None:
                    continue
                if id(container) in namespaces:
                    # A module global or class attribute: rebindable when it is
                    # the original itself, else it names the container.
                    if not suffix:
                        continue
                    paths.add(namespaces[id(container)] + _attribute(step) + "".join(suffix))
                elif step == "" and suffix:
                    # An instance's __dict__: its keys are attribute names.
                    following.append((container, [f".{_attribute(suffix[0])}", *suffix[1:]]))
                else:
                    following.append((container, [step, *suffix]))
        seen.update(id(obj) for obj, _ in following)
        level = following
        if not level:
            break
    return tuple(sorted(paths))


def _attribute(step: str) -> str:
    # "['name']" -> "name", for the entries of a namespace.
    if step.startswith("['") and step.endswith("']") and step[2:-2].isidentifier():
        return step[2:-2]
    return step


def _namespaces() -> dict[int, str]:
    # id(namespace dict) -> the prefix that names an entry of it.
    names: dict[int, str] = {}
    for holder, prefix in _holders():
        namespace = holder.__dict__ if isinstance(holder, types.ModuleType) else _class_dict(holder)
        if namespace is not None:
            names[id(namespace)] = prefix
    return names


def _class_dict(klass: object) -> dict[str, object] | None:
    # A class's namespace is a dict behind its mappingproxy; gc reports the dict.
    for referent in gc.get_referents(vars(klass)):
        if isinstance(referent, dict):
            return referent
    return None


def _step(container: object, target: object) -> str | None:
    """How ``container`` holds ``target``, as a path suffix; None if it does not."""
    kind = type(container)
    if issubclass(kind, dict):
        for key, value in list(container.items()):  # type: ignore[attr-defined]
            if value is target:
                return f"[{key!r}]"
            if key is target:
                return f"[<key {type(key).__name__}>]"
        return None
    if issubclass(kind, (list, tuple)):
        for index, value in enumerate(container):  # type: ignore[arg-type]
            if value is target:
                return f"[{index}]"
        return None
    if not any(referent is target for referent in gc.get_referents(container)):
        return None
    # Only the containers whose attributes are plain data: reading an
    # arbitrary object's attributes could run its code.
    attributes = _ATTRIBUTES.get(kind, ())
    for attribute in attributes:
        try:
            if getattr(container, attribute) is target:
                return f".{attribute}"
        except (AttributeError, ValueError):  # an empty cell, a missing default
            continue
    try:
        namespace = object.__getattribute__(container, "__dict__")
    except (AttributeError, TypeError):
        namespace = None
    if namespace is target:
        return ""  # an instance: its attributes are the entries of this dict
    if isinstance(namespace, dict):
        # Attributes kept inline in the object (no dict object of their own).
        for key, value in list(namespace.items()):
            if value is target:
                return f".{key}"
    return f".<{kind.__name__}>"


_ATTRIBUTES: dict[type, tuple[str, ...]] = {
    types.CellType: ("cell_contents",),
    functools.partial: ("func", "args", "keywords"),
    types.MethodType: ("__func__", "__self__"),
    types.FunctionType: ("__closure__", "__defaults__", "__kwdefaults__"),
}
