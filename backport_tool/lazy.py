"""The import hook behind lazy ``apply()``: it calls a callback right after the
last of a set of modules has been imported, before any other code can use
them. It knows nothing of backports. Stdlib only: this runs at startup."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

logger = logging.getLogger("backport_tool")

# Called with a predicate that says whether a module is fully imported: the
# module that triggered the hook counts as imported, though its import
# statement has not returned yet.
Callback = Callable[[Callable[[str], bool]], None]

_lock = threading.RLock()
_local = threading.local()


@dataclass(frozen=True)
class _Waiting:
    modules: tuple[str, ...]
    callback: Callback


_waiting: dict[str, _Waiting] = {}


def is_loaded(name: str, just_loaded: str | None = None) -> bool:
    """True when module ``name`` has finished executing."""
    if name == just_loaded:
        return True
    module = sys.modules.get(name)
    if module is None:
        return False
    # A module is in sys.modules while it executes; it counts only once done.
    spec = getattr(module, "__spec__", None)
    return not getattr(spec, "_initializing", False)


class _Loader(importlib.abc.Loader):
    """Wraps the real loader of a watched module to run the hook after it executes."""

    def __init__(self, real: importlib.abc.Loader, name: str) -> None:
        self._real = real
        self._name = name

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._real.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        # Hand the module its real loader back, so that inspect, linecache and
        # pickle see exactly what they would without us.
        module.__loader__ = self._real
        if module.__spec__ is not None:
            module.__spec__.loader = self._real
        self._real.exec_module(module)
        _module_loaded(self._name)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self) -> None:
        self.watched: set[str] = set()

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.watched or getattr(_local, "finding", False):
            return None
        _local.finding = True
        try:
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
            else:
                return None
        finally:
            _local.finding = False
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _Loader(spec.loader, fullname)
        return spec


_finder = _Finder()


def _unwatch_done() -> None:
    still = {m for w in _waiting.values() for m in w.modules if not is_loaded(m)}
    _finder.watched &= still
    if not _finder.watched and _finder in sys.meta_path:
        sys.meta_path.remove(_finder)


def when_imported(key: str, modules: tuple[str, ...], callback: Callback) -> tuple[str, ...]:
    """Call ``callback`` once every one of ``modules`` is imported.

    Returns the modules still awaited; when none is, nothing is registered and
    the caller runs the callback itself. ``key`` names the registration for
    :func:`cancel`.
    """
    with _lock:
        missing = tuple(m for m in modules if not is_loaded(m))
        if missing:
            _waiting[key] = _Waiting(modules, callback)
            _finder.watched |= set(missing)
            if _finder not in sys.meta_path:
                sys.meta_path.insert(0, _finder)
        return missing


def _module_loaded(name: str) -> None:
    # Runs inside the user's import statement: whatever happens here is
    # logged, never raised into their import.
    try:
        with _lock:
            ready = [
                key
                for key, waiting in _waiting.items()
                if name in waiting.modules and all(is_loaded(m, name) for m in waiting.modules)
            ]
            callbacks = [_waiting.pop(key).callback for key in ready]
            _unwatch_done()
        for callback in callbacks:
            callback(lambda module: is_loaded(module, name))
    except Exception:
        logger.warning("backport-tool: import hook for %s failed", name, exc_info=True)


def cancel(keys: Sequence[str] | None = None) -> tuple[str, ...]:
    """Drop the registrations ``keys`` (default: all); return those that were waiting."""
    with _lock:
        dropped = tuple(k for k in (list(_waiting) if keys is None else keys) if k in _waiting)
        for key in dropped:
            del _waiting[key]
        _unwatch_done()
        return dropped
