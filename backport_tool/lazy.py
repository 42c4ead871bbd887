"""The import hook behind lazy ``apply()``. It knows nothing of backports: it
calls callbacks right after a module has executed, and runs deferred work once
a package has settled. Stdlib only: this runs at startup.

Two kinds of callback, because a hook runs inside someone else's import:

- ``on_import`` callbacks run in the hook itself, right after the module
  executed and before the importer gets it back. They must import nothing:
  the package may be half-initialized (a target imported while ``import torch``
  is still running).
- ``when_settled`` callbacks run once no module of a package is executing any
  more: after the outermost import of that package returned. They may import.

A module that was already executing when it was registered never passes
through our loader, so the hook cannot fire for it. So while anything is
registered, every module imported afresh passes through our loader, and what
is waiting is re-checked right after it executes, as after a watched module;
and every call of :func:`settle` re-checks it too: nothing is left waiting
for ever. The finder itself runs nothing: importlib holds its global lock
around finders, so an import there could deadlock with another thread, and a
module that the deferred work imported would then be executed a second time
for the import that asked the finder.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, NamedTuple

from .errors import FOREIGN_FAILURES

logger = logging.getLogger("backport_tool")


def is_loaded(name: str) -> bool:
    """True when module ``name`` has finished executing."""
    module = sys.modules.get(name)
    if module is None:
        return False
    # A module is in sys.modules while it executes; it counts only once done.
    # vars() rather than getattr: a lazy module's __getattr__ is not ours to run.
    try:
        spec = object.__getattribute__(module, "__dict__").get("__spec__")
    except (AttributeError, TypeError):
        return True
    return not getattr(spec, "_initializing", False)


def busy_module(package: str, hint: str | None = None) -> str | None:
    """A module of ``package`` (the package itself included) that is still
    executing, in any thread; None when there is none.

    ``hint`` is the answer of an earlier call: while it still executes, the
    answer is the same and costs nothing. Otherwise sys.modules is scanned in
    insertion order, so the module found is the outermost import running,
    which stays busy the longest: every import a hook sees pays for about one
    scan per outermost import, not one each.
    """
    prefix = package + "."
    if hint is not None and not is_loaded(hint) and hint in sys.modules:
        return hint
    for name in list(sys.modules):
        if (name == package or name.startswith(prefix)) and not is_loaded(name):
            return name
    return None


def in_import() -> bool:
    """True while this thread runs inside an import statement (a module is
    executing, or a finder or loader is at work): the importlib frames are on
    its stack. About 10 us: a stack walk, no scan of sys.modules."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib._bootstrap"):
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


# NamedTuples, not dataclasses: this module loads at server startup, and a
# dataclass costs about half a millisecond to create.
class _OnImport(NamedTuple):
    key: str
    module: str
    callback: Callable[[], None]
    quiet: bool = False  # a settle point, not something the key awaits


class _Settled(NamedTuple):
    key: str
    package: str
    callback: Callable[[], None]


class Hooks:
    """Everything the import hook holds: one object, owned by the process state."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.on_import: list[_OnImport] = []
        self.settled: list[_Settled] = []
        self.local = threading.local()
        self.finder = _Finder(self)
        self.busy_hints: dict[str, str | None] = {}

    # -- registration ---------------------------------------------------

    def watch(
        self, key: str, module: str, callback: Callable[[], None], *, quiet: bool = False
    ) -> bool:
        """Call ``callback`` in the hook right after ``module`` executes
        (``quiet``: not listed by :meth:`awaited`).

        Returns False, registering nothing, when the module has finished
        already: the caller runs the callback itself.
        """
        with self.lock:
            if is_loaded(module):
                return False
            self.on_import.append(_OnImport(key, module, callback, quiet))
            self._install()
            return True

    def when_settled(self, key: str, package: str, callback: Callable[[], None]) -> bool:
        """Call ``callback`` once no module of ``package`` is executing.

        Returns False, registering nothing, when that is so already.
        """
        with self.lock:
            if not self._busy(package):
                return False
            self.settled.append(_Settled(key, package, callback))
            # The package itself, when it has not started importing: its own
            # import finishing is the moment it settles.
            if package not in sys.modules:
                self.finder.watched.add(package)
            self._install()
            return True

    def awaited(self, key: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The modules ``key`` waits for, and the packages whose import it
        waits to finish."""
        with self.lock:
            modules = [w.module for w in self.on_import if w.key == key and not w.quiet]
            packages = [s.package for s in self.settled if s.key == key]
            return tuple(dict.fromkeys(modules)), tuple(dict.fromkeys(packages))

    def cancel(self, keys: Sequence[str] | None = None) -> tuple[str, ...]:
        """Drop the registrations of ``keys`` (default: all); return the keys dropped."""
        with self.lock:
            chosen = None if keys is None else set(keys)
            keys_now = [w.key for w in self.on_import] + [s.key for s in self.settled]
            dropped = {key for key in keys_now if chosen is None or key in chosen}
            self.on_import = [w for w in self.on_import if w.key not in dropped]
            self.settled = [s for s in self.settled if s.key not in dropped]
            self._uninstall_if_idle()
            return tuple(sorted(dropped))

    # -- firing ----------------------------------------------------------

    def module_loaded(self, name: str | None) -> None:
        """Run what waited for ``name`` (None: for any module that finished
        without passing through our loader), then what can settle now."""
        with self.lock:
            due = [w for w in self.on_import if w.module == name or is_loaded(w.module)]
            self.on_import = [w for w in self.on_import if w not in due]
        running = getattr(self.local, "running", False)
        self.local.running = True
        try:
            for waiting in due:
                self._run(waiting.callback, waiting.module)
            self.settle()
        finally:
            self.local.running = running

    def settle(self) -> None:
        """Run the deferred work whose package has settled."""
        if getattr(self.local, "settling", False):
            return
        self.local.settling = True
        try:
            while True:
                with self.lock:
                    due = next((s for s in self.settled if not self._busy(s.package)), None)
                    if due is not None:
                        self.settled.remove(due)
                    else:
                        self._uninstall_if_idle()
                        return
                self._run(due.callback, due.package)
        finally:
            self.local.settling = False

    def _busy(self, package: str) -> bool:
        if not in_import():
            # Nothing is being imported on this thread: the import that could
            # be running is another thread's, which finishes on its own.
            return False
        found = busy_module(package, self.busy_hints.get(package))
        self.busy_hints[package] = found
        return found is not None

    def _run(self, callback: Callable[[], None], what: str) -> None:
        # Runs inside the user's import statement: whatever happens here is
        # logged, never raised into their import.
        try:
            callback()
        except FOREIGN_FAILURES:
            logger.warning("backport-tool: import hook for %s failed", what, exc_info=True)

    def _install(self) -> None:
        self.finder.watched |= {w.module for w in self.on_import}
        if self.finder not in sys.meta_path:
            sys.meta_path.insert(0, self.finder)

    def _uninstall_if_idle(self) -> None:
        waiting = {w.module for w in self.on_import}
        self.finder.watched &= waiting | {s.package for s in self.settled}
        if not self.on_import and not self.settled and self.finder in sys.meta_path:
            sys.meta_path.remove(self.finder)

    def pending_work(self) -> bool:
        with self.lock:
            return bool(self.on_import or self.settled)


class _Loader(importlib.abc.Loader):
    """Wraps the real loader of a watched module to run the hook after it executes."""

    def __init__(self, real: importlib.abc.Loader, name: str, hooks: Hooks) -> None:
        self._real = real
        self._name = name
        self._hooks = hooks

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._real.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        # Hand the module its real loader back, so that inspect, linecache and
        # pickle see exactly what they would without us.
        module.__loader__ = self._real
        if module.__spec__ is not None:
            module.__spec__.loader = self._real
        self._real.exec_module(module)
        # exec_module returns before importlib clears _initializing: this module
        # counts as loaded for everything that waited for it.
        spec = module.__spec__
        if spec is not None:
            spec._initializing = False  # type: ignore[attr-defined]
        self._hooks.module_loaded(self._name)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self, hooks: Hooks) -> None:
        self.hooks = hooks
        self.watched: set[str] = set()

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        local = self.hooks.local
        if getattr(local, "finding", False):
            return None
        # A watched module gets its hook. While other work is registered, so
        # does every module imported afresh (not those that the hooks' own
        # work imports): the work that waits for a module that finished
        # without our loader, or for a package to settle, runs right after
        # it executes. The outermost import of a package is one of them, so
        # work waiting for that package runs as soon as it returns.
        if fullname not in self.watched and (
            getattr(local, "running", False) or not self.hooks.pending_work()
        ):
            return None
        local.finding = True
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
            local.finding = False
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _Loader(spec.loader, fullname, self.hooks)
        return spec
