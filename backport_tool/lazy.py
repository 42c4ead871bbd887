"""Deferred application: an import hook that verifies and applies a backport
right after the last of its modules (targets and requires) has been imported,
before any code can use them. Only stdlib imports at module level: this runs on
the startup path."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from .report import BackportResult, Report, Status

logger = logging.getLogger("backport_tool")

_lock = threading.RLock()
_local = threading.local()


@dataclass
class _Pending:
    manifest: Path
    backport_id: str
    modules: tuple[str, ...]


_pending: dict[str, _Pending] = {}


class _Latest:
    report: Report | None = None


def _loaded(name: str, just_loaded: str | None = None) -> bool:
    if name == just_loaded:
        return True
    module = sys.modules.get(name)
    if module is None:
        return False
    # A module is in sys.modules while it executes; it counts only once done.
    spec = getattr(module, "__spec__", None)
    return not getattr(spec, "_initializing", False)


class _Loader(importlib.abc.Loader):
    """Wraps the real loader of a watched module to run a hook after it executes."""

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


def _watch(names: set[str]) -> None:
    _finder.watched |= names
    if _finder.watched and _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)


def _unwatch_done() -> None:
    still = {m for p in _pending.values() for m in p.modules if not _loaded(m)}
    _finder.watched &= still
    if not _finder.watched and _finder in sys.meta_path:
        sys.meta_path.remove(_finder)


def schedule(
    manifest: Path, eligible: list[dict[str, Any]], results: list[BackportResult]
) -> list[BackportResult]:
    """Apply now what is ready, register the rest; return the updated results."""
    final = list(results)
    ready: list[_Pending] = []
    with _lock:
        for entry in eligible:
            pending = _Pending(manifest, entry["id"], tuple(entry["modules"]))
            if all(_loaded(m) for m in pending.modules):
                ready.append(pending)
                continue
            waiting = [m for m in pending.modules if not _loaded(m)]
            _pending[pending.backport_id] = pending
            _watch(set(waiting))
            index = next(i for i, r in enumerate(final) if r.id == pending.backport_id)
            final[index] = BackportResult(
                pending.backport_id,
                Status.PENDING,
                "verified and applied when " + ", ".join(waiting) + " is imported",
            )
    for pending in ready:
        result = _apply(pending)
        index = next(i for i, r in enumerate(final) if r.id == pending.backport_id)
        final[index] = result
    return final


def _apply(pending: _Pending, just_loaded: str | None = None) -> BackportResult:
    from .loader import apply_one  # noqa: PLC0415 - the full machinery, only now

    def settled(name: str) -> bool:
        return _loaded(name, just_loaded)

    try:
        result = apply_one(pending.manifest, pending.backport_id, settled)
    except Exception as exc:
        logger.debug("backport-tool: applying %s failed", pending.backport_id, exc_info=True)
        result = BackportResult(pending.backport_id, Status.FAILED, f"{type(exc).__name__}: {exc}")
    level = logging.WARNING if result.is_problem else logging.DEBUG
    logger.log(level, "backport-tool: %s: %s (%s)", result.id, result.status.value, result.reason)
    _update(result)
    return result


def _module_loaded(name: str) -> None:
    # Runs inside the user's import statement: whatever happens here is
    # logged and reported, never raised into their import.
    try:
        with _lock:
            ready = [
                p
                for p in _pending.values()
                if name in p.modules and all(_loaded(m, name) for m in p.modules)
            ]
            for pending in ready:
                del _pending[pending.backport_id]
            _unwatch_done()
        for pending in ready:
            _apply(pending, name)
    except Exception:
        logger.warning("backport-tool: import hook for %s failed", name, exc_info=True)


def record(report: Report) -> None:
    with _lock:
        _Latest.report = report


def _update(result: BackportResult) -> None:
    with _lock:
        latest = _Latest.report
        if latest is None:
            return
        _Latest.report = replace(
            latest, results=tuple(result if r.id == result.id else r for r in latest.results)
        )


def cancel(ids: tuple[str, ...] | None = None) -> None:
    """Forget pending backports (all, or ``ids``), as revert does."""
    with _lock:
        for backport_id in list(_pending) if ids is None else ids:
            if _pending.pop(backport_id, None) is not None:
                _update(BackportResult(backport_id, Status.DISABLED, "reverted before it applied"))
        _unwatch_done()


def forget(backport_id: str) -> None:
    """Mark an applied backport as reverted in the latest report."""
    _update(BackportResult(backport_id, Status.DISABLED, "reverted by revert() in this process"))


def current_report() -> Report | None:
    """Return the current state of the patch set applied with :func:`apply`, with
    lazily applied backports updated; None before the first ``apply()``."""
    with _lock:
        return _Latest.report
