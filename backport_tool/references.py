"""Bindings that apply changes, and the one walk ``check`` makes for references
to an original that the manifest does not declare.

Applying rebinds exactly the declared sites (:func:`rebind`, :func:`unbind`).
We rebind rather than swap the function's code in place (patchy's way)
because a replacement is written in its own module: its globals, closure cells
and defaults are its own.

The walk (:func:`undeclared`) runs in ``check`` only, never in ``apply``. It
names each reference by a stable path from a module: ``pkg.mod:NAME`` for a
module global, ``pkg.mod:Class.NAME`` for a class attribute, then
``['key']``, ``[0]`` or ``.attr`` steps; never a memory address. It runs no
foreign code: no ``repr``, ``__eq__``, ``__hash__``, ``__getattr__`` or
property of objects it does not own, and it imports nothing (a lazily loaded
module stays unloaded).
"""

from __future__ import annotations

import functools
import gc
import sys
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

# Names of the modules whose bindings are never ours to judge: the tool itself
# and the backport modules it executes (they keep the original on purpose).
# A program's own __main__ is not judged either; other modules are, user code
# included: a copy there does not run the fix.
_OWN_PREFIXES = ("backport_tool", "_backport_tool_bp_")
# How many containers may stand between a module and the original.
_MAX_DEPTH = 4
# Keys whose repr is the key's own, stable and runs no foreign code.
_PLAIN_KEYS = (str, int, bool, type(None))

_type_dict = type.__dict__["__dict__"]


@dataclass(frozen=True)
class Binding:
    """One module global or class attribute that apply changed."""

    holder: object  # a module or a class
    name: str
    old: object  # exactly what the namespace held (a staticmethod stays one)
    new: object
    path: str


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


@dataclass(frozen=True)
class Search:
    """One original to look for, except at the ``declared`` sites (the target
    and its copies)."""

    original: object
    declared: frozenset[str]


def walked(original: object, modules: Sequence[str]) -> bool:
    """Whether ``check`` looks for references to ``original``, a target whose
    declared sites (the target and its copies) are in ``modules``: only
    functions and classes created by one of those modules, or by another
    module of their package (a target named by its re-export, whose home is
    then a copy to declare: torch's own callers use it). A value, a builtin
    or an object made elsewhere (a dtype, an enum member, another library's
    function) is shared by design, and holding it says nothing about copying
    it."""
    kind = type(original)
    if kind is types.FunctionType:
        home: object = types.FunctionType.__dict__["__module__"].__get__(original)
    elif issubclass(kind, type):
        home = _type_dict.__get__(original).get("__module__")
    else:
        return False
    if type(home) is not str:
        return False
    return home in modules or home.partition(".")[0] in {m.partition(".")[0] for m in modules}


def _ours(module_name: str) -> bool:
    return module_name.startswith(_OWN_PREFIXES)


def _python_module(namespace: dict[str, object]) -> bool:
    # An extension module (torch._C and its children) has no Python source:
    # nothing there is torch's Python code copying a function.
    origin = namespace.get("__file__")
    return isinstance(origin, str) and origin.endswith(".py")


def _module_namespaces() -> Iterator[tuple[str, dict[str, object]]]:
    # Every module's own namespace dict, read without running module code.
    return _namespaces(list(sys.modules.items()))


def _namespaces(items: Sequence[tuple[str, object]]) -> Iterator[tuple[str, dict[str, object]]]:
    for module_name, module in items:
        if not issubclass(type(module), types.ModuleType):
            continue
        try:
            namespace = object.__getattribute__(module, "__dict__")
        except (AttributeError, TypeError):
            continue
        if type(namespace) is dict:
            yield module_name, namespace


def left_behind(
    replacements: Sequence[object], since: int, executing: frozenset[str] = frozenset()
) -> list[str]:
    """What revert leaves holding one of ``replacements``, by stable names:
    the globals of modules imported after the first ``since`` entries of
    ``sys.modules``, or still ``executing`` then (imported while the
    replacements were in force: a user's ``from torch.nn import LayerNorm``),
    and the classes that subclass a replacement class (defined while it was
    in force). Runs no foreign code."""
    wanted = {id(r) for r in replacements}
    found: list[str] = []
    for replacement in replacements:
        if not isinstance(replacement, type):
            continue
        home = _type_dict.__get__(replacement).get("__module__")
        subclasses: list[type] = type.__subclasses__(replacement)
        for sub in subclasses:
            module = _type_dict.__get__(sub).get("__module__")
            if module != home:
                qualname = type.__dict__["__qualname__"].__get__(sub)
                found.append(f"{module}:{qualname} (a subclass)")
    items = list(sys.modules.items())[since:] if len(sys.modules) > since else []
    later = {name for name, _ in items}
    items += [(n, sys.modules[n]) for n in sorted(executing - later) if n in sys.modules]
    if items:
        for module_name, namespace in _namespaces(items):
            if _ours(module_name):
                continue
            for name, value in list(dict.items(namespace)):
                if id(value) in wanted and type(name) is str:
                    found.append(f"{module_name}:{name}")
    return found


def _holders() -> Iterator[tuple[str, dict[str, object], str]]:
    """Every module namespace and every class namespace defined in a module,
    nested classes included: (module name, the namespace dict, the prefix
    that names its entries)."""
    for module_name, namespace in _module_namespaces():
        if _ours(module_name):
            continue
        yield module_name, namespace, f"{module_name}:"
        for name, value in list(dict.items(namespace)):
            if type(name) is str:
                yield from _class_holders(module_name, name, value, 0)


# Classes nested deeper than this are named by the path the walk finds.
_MAX_NESTING = 8


def _class_holders(
    module_name: str, qualname: str, value: object, depth: int
) -> Iterator[tuple[str, dict[str, object], str]]:
    # A class defined at ``qualname`` in ``module_name``, and the classes
    # defined in its body: a nested class's method is named like a target.
    if depth > _MAX_NESTING or not issubclass(type(value), type):
        return
    attrs = _type_dict.__get__(value)
    # Compared as str only: a foreign object's __eq__ never runs.
    owner = attrs.get("__module__")
    if type(owner) is not str or owner != module_name:
        return
    if type.__dict__["__qualname__"].__get__(value) != qualname:
        return
    inner = _class_dict(attrs)
    if inner is None:
        return
    yield module_name, inner, f"{module_name}:{qualname}."
    for name, member in list(dict.items(inner)):
        if type(name) is str:
            yield from _class_holders(module_name, f"{qualname}.{name}", member, depth + 1)


def _class_dict(proxy: object) -> dict[str, object] | None:
    # A class's namespace is a dict behind its mappingproxy; gc reports the dict.
    for referent in gc.get_referents(proxy):
        if type(referent) is dict:
            return referent
    return None


def undeclared(searches: Sequence[Search]) -> list[tuple[str, ...]]:
    """For each search, the sorted paths of references to its original in its
    package that are neither declared nor reachable by rebinding: undeclared
    module or class bindings, and entries of dicts, lists and tuples,
    partials, closures, defaults, bound methods and instance attributes.

    One walk for all searches: each level is one ``gc.get_referrers`` pass.
    """
    namespaces: dict[int, tuple[str, str, bool]] = {}
    python: dict[str, bool] = {}
    # Never a step: sys.modules (every module global is found at its own
    # namespace, and a path through a module that happens to hold sys.modules,
    # such as triton's `modules`, would name one twice), and the namespaces of
    # backport-tool's own modules and the backport modules, the replacement's
    # home (what they import of the original is theirs, not torch's).
    skipped = {id(sys.modules)}
    skipped |= {id(namespace) for name, namespace in _module_namespaces() if _ours(name)}
    for module_name, namespace, prefix in _holders():
        # The module's namespace comes first: its classes share its verdict.
        source = python.setdefault(module_name, _python_module(namespace))
        namespaces[id(namespace)] = (module_name, prefix, source)
    found: list[set[str]] = [set() for _ in searches]
    # (object, index of the search it leads to, path suffix from it, steps so
    # far). An instance's __dict__ costs no step of its own: reading it may
    # create it (Python makes them lazily), and a path must not get longer
    # because an earlier walk looked.
    level: list[tuple[object, int, list[str], int]] = [
        (s.original, index, [], 0) for index, s in enumerate(searches)
    ]
    seen = {(id(s.original), i) for i, s in enumerate(searches)}
    # A class's own methods hold it (the __class__ cell of super()): that is
    # the original calling itself, never a copy for apply to reach.
    own = {index: _own_namespace(s.original) for index, s in enumerate(searches)}
    for _ in range(2 * _MAX_DEPTH):
        if not level:
            break
        # Each container is read once, whatever the size of the level: what
        # it holds is looked up by id, never compared.
        by_id: dict[int, list[tuple[object, int, list[str], int]]] = {}
        for item in level:
            by_id.setdefault(id(item[0]), []).append(item)
        targets = [item[0] for item in level]
        referrers = gc.get_referrers(*targets)
        # The walk's own bookkeeping refers to the targets too: never a step.
        ours = {id(level), id(targets), id(by_id), id(searches), id(referrers)}
        ours |= {id(item) for item in level} | {id(items) for items in by_id.values()}
        ours |= {id(search) for search in searches}
        following: dict[tuple[int, int, str | None], tuple[object, int, list[str], int]] = {}
        for container in referrers:
            if id(container) in ours or id(container) in skipped or _own_object(container):
                continue
            named = namespaces.get(id(container))
            for held, step in _holds(container, by_id):
                for _, index, suffix, cost in by_id[id(held)]:
                    # Every key or attribute that holds it is a path of its
                    # own; a container already walked at a shorter distance
                    # is not walked again.
                    key = (id(container), index, step)
                    if (id(container), index) in seen or key in following:
                        continue
                    if step is None:
                        # The wrapper a class body keeps a method in: where it
                        # is held is where the original is bound: no step.
                        following[key] = (container, index, suffix, cost)
                    elif named is not None:
                        if own[index] == id(container):
                            continue
                        module_name, prefix, has_source = named
                        if not has_source or module_name in _MAINS:
                            continue
                        path = prefix + _attribute(step) + "".join(suffix)
                        if suffix or path not in searches[index].declared:
                            found[index].add(path)
                    elif cost + 1 >= _MAX_DEPTH and step != "":
                        continue  # its referrers are too far from the original
                    elif step == "" and suffix:
                        # An instance's __dict__: its keys are attribute names.
                        attribute = f".{_attribute(suffix[0])}"
                        following[key] = (container, index, [attribute, *suffix[1:]], cost)
                    else:
                        following[key] = (container, index, [step, *suffix], cost + 1)
        seen.update((container_id, index) for container_id, index, _ in following)
        level = list(following.values())
    return [tuple(sorted(paths)) for paths in found]


# A program's own globals: `__mp_main__` is multiprocessing's name for it.
_MAINS = ("__main__", "__mp_main__")


def _own_namespace(original: object) -> int | None:
    # The id of a class original's namespace dict; None for anything else.
    if not issubclass(type(original), type):
        return None
    inner = _class_dict(_type_dict.__get__(original))
    return None if inner is None else id(inner)


def _own_object(container: object) -> bool:
    # Frames, and instances of backport-tool's own classes (a Patch, a
    # Resolved): they hold the original because check is looking at it.
    kind = type(container)
    if kind is types.FrameType:
        return True
    module = _type_dict.__get__(kind).get("__module__")
    return isinstance(module, str) and module.startswith("backport_tool")


def _attribute(step: str) -> str:
    # "['name']" -> "name", for the entries of a namespace.
    if step.startswith("['") and step.endswith("']") and step[2:-2].isidentifier():
        return step[2:-2]
    return step


def _is_plain(key: object) -> bool:
    # By identity: `in` would compare the key's type with ==, which runs a
    # metaclass's __eq__. A tuple of plain keys is plain (("aten", "mul")).
    kind = type(key)
    if any(kind is plain for plain in _PLAIN_KEYS):
        return True
    if kind is not tuple:
        return False
    items: tuple[object, ...] = key  # type: ignore[assignment]
    return all(_is_plain(item) for item in tuple.__iter__(items))


def _type_name(kind: type) -> str:
    # Off the type slot: kind.__name__ would go through a metaclass.
    name: str = type.__dict__["__name__"].__get__(kind)
    return name


def _key(key: object) -> str:
    if _is_plain(key):
        return repr(key)
    if issubclass(type(key), type):
        # A class key (a pickler's reducer table): its name, read off the type
        # slots, not through a metaclass.
        module = _type_dict.__get__(key).get("__module__")
        qualname = type.__dict__["__qualname__"].__get__(key)
        return f"<class {module}.{qualname}>" if isinstance(module, str) else f"<class {qualname}>"
    return f"<key {_type_name(type(key))}>"


def _entry_key(entries: list[tuple[object, object]], index: int) -> str:
    # A key shown by its type alone (a tuple of objects, an enum member) is
    # told apart from the earlier keys shown alike by its order in the dict,
    # so that acknowledging one entry never hides another. Only the entries
    # found pay for it: most of a walked dict's keys are never rendered.
    key = entries[index][0]
    step = _key(key)
    if not _by_type(key):
        return step
    name = _type_name(type(key))
    earlier = sum(1 for k, _ in entries[:index] if _by_type(k) and _type_name(type(k)) == name)
    return f"{step[:-1]} #{earlier + 1}>" if earlier else step


def _by_type(key: object) -> bool:
    return not _is_plain(key) and not issubclass(type(key), type)


def _instance_dict(obj: object) -> object:
    # Only the interpreter's own __dict__ slot: a class may define __dict__ as
    # a property, and reading that would run its code.
    for klass in type.__dict__["__mro__"].__get__(type(obj)):
        descriptor = _type_dict.__get__(klass).get("__dict__")
        if descriptor is not None:
            if type(descriptor) is types.GetSetDescriptorType:
                try:
                    return descriptor.__get__(obj)
                except (AttributeError, TypeError):
                    return None
            return None
    return None


def _holds(
    container: object, wanted: dict[int, list[tuple[object, int, list[str], int]]]
) -> list[tuple[object, str | None]]:
    """What of ``wanted`` ``container`` holds, each with the path step that
    names it there (None: a staticmethod or classmethod wrapper, no step)."""
    kind = type(container)
    out: list[tuple[object, str | None]] = []
    if issubclass(kind, dict):
        entries: list[tuple[object, object]] = list(dict.items(container))  # type: ignore[arg-type]
        for index, (key, value) in enumerate(entries):
            if id(value) in wanted:
                out.append((value, f"[{_entry_key(entries, index)}]"))
            if id(key) in wanted:
                out.append((key, f"[<key {_type_name(type(key))}>]"))
        return out
    if issubclass(kind, (list, tuple)):
        items: list[object] = list(
            list.__iter__(container)  # type: ignore[arg-type]
            if issubclass(kind, list)
            else tuple.__iter__(container)  # type: ignore[arg-type]
        )
        return [(value, f"[{index}]") for index, value in enumerate(items) if id(value) in wanted]
    if kind is staticmethod or kind is classmethod:
        inner = container.__func__  # type: ignore[attr-defined]
        return [(inner, None)] if id(inner) in wanted else []
    held = {id(r): r for r in gc.get_referents(container) if id(r) in wanted}
    return [(target, _step(container, target)) for target in held.values()]


def _step(container: object, target: object) -> str:
    """How ``container``, not a dict, list or tuple, holds ``target``."""
    kind = type(container)
    # Only the containers whose attributes are plain data: reading an
    # arbitrary object's attributes could run its code.
    for attribute in _ATTRIBUTES.get(id(kind), ()):
        try:
            value = getattr(container, attribute)
        except (AttributeError, ValueError):  # an empty cell, a missing default
            continue
        if value is target:
            return f".{attribute}"
        if type(value) is tuple:
            for index, item in enumerate(value):
                if item is target:
                    return f".{attribute}[{index}]"
        if type(value) is dict:
            for key, item in dict.items(value):
                if item is target:
                    return f".{attribute}[{_key(key)}]"
    namespace = _instance_dict(container)
    if namespace is target:
        return ""  # an instance: its attributes are the entries of this dict
    if type(namespace) is dict:
        for key, value in list(dict.items(namespace)):
            if value is target and type(key) is str:
                return f".{key}"
    return f".<{_type_name(kind)}>"


# By the type's id: a lookup by the type itself would hash it and compare it
# with ==, through its metaclass.
_ATTRIBUTES: dict[int, tuple[str, ...]] = {
    id(types.CellType): ("cell_contents",),
    id(functools.partial): ("func", "args", "keywords"),
    id(types.MethodType): ("__func__", "__self__"),
    id(types.FunctionType): ("__closure__", "__defaults__", "__kwdefaults__"),
}
