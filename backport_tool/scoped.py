"""``enabled()``: one backport in force for the duration of a ``with`` block.

The first scope of a backport in a process decides and verifies it as
``apply`` does and keeps what that built (the patches, the backport module's
hooks) in the process state; every later scope only patches on entry and
restores on exit. The verifying machinery is imported on that first entry,
never by ``import backport_tool``.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

from . import cachekey, patcher
from .api import Given, installed, manifest_for, refuse_in_hook, warn_unknown_ids
from .config import MANIFEST_ENV, switches
from .errors import ScopeError, UsageError, describe
from .report import BackportResult, Report, Status
from .state import STATE

if TYPE_CHECKING:
    from .manifest import Manifest

logger = logging.getLogger("backport_tool")

_CLAIM = threading.Lock()  # a Scope's check-and-set of _active


@dataclass(frozen=True)
class Prepared:
    """A verified backport, ready to be put in force and taken out again."""

    manifest: Manifest
    info: patcher.AppliedBackport
    patches: tuple[patcher.Patch, ...]
    hooks: patcher.Hooks
    in_force: BackportResult  # what a scope that patched (or joined) returns
    kept: BackportResult  # what a scope returns while apply() holds it


@dataclass(frozen=True)
class Refused:
    """The version or a switch refuses the backport: its scopes change nothing."""

    manifest: Manifest
    result: BackportResult


def enabled(
    backport_id: str, *, manifest: str | os.PathLike[str] | Manifest | None = None
) -> Scope:
    """Put the backport ``backport_id`` of ``manifest`` (default:
    ``$BACKPORT_TOOL_MANIFEST``, else the bundled one) in force for a ``with``
    block, and restore exactly what it changed when the block ends, by an
    exception too::

        with backport_tool.enabled("inductor-realize-on-reuse-refined"):
            compiled = torch.compile(model)(inputs)

    The first scope of a backport in a process decides and verifies it as
    ``apply`` does (imports its target modules, loads its module, builds the
    replacements) and keeps the result in the process state; later scopes
    only patch and restore (microseconds each). Naming the backport enables
    it when it is opt-in. Entering returns its :class:`BackportResult`.

    - The patch is process-global, like every monkey-patch: while any scope
      holds it, every thread sees the replacement (and its declared copies),
      not only the one in the block. Child processes do not: spawn workers
      and Inductor's compile subprocesses need :func:`apply`.
    - Scopes of one backport nest and overlap, in one thread or several: it is
      put in force by the first to enter and reverted by the last to leave.
      ``after_apply`` runs on that first entry and ``before_revert`` on that
      last exit.
    - A backport applied by :func:`apply` stays applied: the scope changes
      nothing, and ``apply()`` during a scope keeps the backport applied after
      it (unless that ``apply()`` has it disabled: the scope's end reverts
      it). :func:`revert` reverts it at once, scope or not.
    - A backport that the version or a switch refuses (``not-applicable``,
      ``fixed-upstream``, ``retired``, or ``BACKPORT_TOOL_DISABLE``): the
      block runs without it, and the result says why.
    - One that is ``drift``, ``missing`` or ``failed``, whose ``after_apply``
      raises, or that conflicts with what is in force: :class:`ScopeError`,
      with nothing changed and the block not run. An unknown id or an invalid
      manifest raises :class:`UsageError` or :class:`ManifestError`.

    Enter it outside compiled code. Called from a backport's hook, it raises
    :class:`UsageError`.
    """
    return Scope(backport_id, manifest)


class Scope:
    """The context manager :func:`enabled` returns; one per ``with`` block."""

    __slots__ = ("_active", "_backport_id", "_held", "_manifest")

    def __init__(
        self, backport_id: str, manifest: str | os.PathLike[str] | Manifest | None
    ) -> None:
        if not isinstance(backport_id, str):
            raise UsageError(f"enabled() takes a backport id as a string, got {backport_id!r}")
        self._backport_id = backport_id
        self._manifest = manifest
        self._held: patcher.Entry | None = None
        self._active = False

    def __enter__(self) -> BackportResult:
        with _CLAIM:
            # Checked and set at once: two threads entering one Scope would
            # both count a scope, and only one could end it.
            if self._active:
                raise UsageError(
                    f"this enabled({self._backport_id!r}) is already in use; call enabled() "
                    "for each with block"
                )
            self._active = True
        try:
            return self._enter()
        except BaseException:
            self._active = False
            raise

    def _enter(self) -> BackportResult:
        refuse_in_hook("enabled")
        prepared = _prepared(self._backport_id, self._manifest)
        if isinstance(prepared, Refused):
            return prepared.result
        try:
            held, changed = patcher.enter_scope(prepared.info, prepared.patches, prepared.hooks)
        except patcher.ForeignApplied as exc:
            raise _error(
                prepared.manifest,
                self._backport_id,
                f"backport id {self._backport_id!r} is already applied in this process from "
                f"{exc.manifest}",
            ) from None
        except patcher.HookFailed as exc:
            raise _error(prepared.manifest, self._backport_id, f"{exc}; rolled back") from exc
        except patcher.OtherContext:
            raise _error(
                prepared.manifest,
                self._backport_id,
                "it sets a torch config option, which this torch keeps per thread and task, "
                "and it is in force in another one (applied or held by a scope there); enter "
                "its scopes in one thread or task at a time",
            ) from None
        except Exception as exc:
            if isinstance(exc, patcher.Stale):
                # Someone else replaced a target since it was verified: the
                # next scope verifies again.
                STATE.scoped.pop(_key(self._backport_id, self._manifest), None)
            raise _error(
                prepared.manifest, self._backport_id, f"patching failed: {describe(exc)}"
            ) from exc
        if changed:
            _retag()
        self._held = held
        return prepared.in_force if held is not None else prepared.kept

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        held, self._held = self._held, None
        try:
            if held is not None and patcher.leave_scope(held):
                _retag()
        finally:
            self._active = False


def _key(
    backport_id: str, manifest: str | os.PathLike[str] | Manifest | None
) -> tuple[object, ...]:
    # The manifest as the caller named it: a hit reads no file.
    if manifest is None:
        return (backport_id, None, os.environ.get(MANIFEST_ENV, ""))
    if isinstance(manifest, (str, os.PathLike)):
        return (backport_id, os.path.abspath(manifest))
    return (backport_id, id(manifest))


def _prepared(
    backport_id: str, manifest: str | os.PathLike[str] | Manifest | None
) -> Prepared | Refused:
    key = _key(backport_id, manifest)
    found: Prepared | Refused | None = STATE.scoped.get(key)
    if found is not None and (
        manifest is None or isinstance(manifest, (str, os.PathLike)) or found.manifest is manifest
    ):
        return found
    made = _prepare(backport_id, manifest_for(manifest))
    # A problem raised above and is not kept: the next scope tries again (a
    # conflict may be gone by then). Two threads that both prepared keep the first.
    kept: Prepared | Refused = STATE.scoped.setdefault(key, made)
    return kept


def _prepare(backport_id: str, manifest: Manifest) -> Prepared | Refused:
    # The verifying machinery, only now: it costs tens of ms to import. The
    # engine's steps up to the patch are apply's own, so a scope verifies
    # exactly what apply verifies.
    from .decision import as_applied, decide  # noqa: PLC0415
    from .engine import Mode, result_of, verified_run  # noqa: PLC0415
    from .inspection import LiveInspector  # noqa: PLC0415
    from .loading import module_digest  # noqa: PLC0415
    from .replacement import hooks_of  # noqa: PLC0415

    try:
        backport = manifest.get(backport_id)
    except KeyError:
        import difflib  # noqa: PLC0415 - only for this message

        close = difflib.get_close_matches(backport_id, [b.id for b in manifest.backports], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UsageError(
            f"enabled({backport_id!r}): {manifest.path} has no backport {backport_id!r}{hint}"
        ) from None
    # A typo in BACKPORT_TOOL_DISABLE would silently leave the backport on:
    # said once per prepared scope, as apply() says it.
    warn_unknown_ids(Given(), (b.id for b in manifest.backports))
    switched = switches(enable=(backport_id,))
    version = installed(manifest.package, switched)
    decision = decide(backport, version, switched, manifest.package)
    if decision.status is not Status.READY:
        reason = as_applied(decision).reason
        return _refused(manifest, BackportResult(backport_id, decision.status, reason))
    held = patcher.held(backport_id)
    if held is None:
        run = verified_run(manifest, backport, decision, LiveInspector(), Mode.APPLY)
        # APPLIED: another thread applied it while this one verified it.
        if run.status is not Status.APPLIED:
            if run.stopped:
                result = result_of(run)
                if result.status.is_problem:
                    raise ScopeError(
                        Report(manifest.package, str(version), str(manifest.path), (result,))
                    )
                return _refused(manifest, result)  # the probe found the fix there
            assert run.module is not None
            info = patcher.AppliedBackport(
                backport_id,
                str(manifest.location),
                tuple(p.symbol for p in run.patches),
                module_digest(backport) or "",
            )
            return _ready(manifest, info, tuple(run.patches), hooks_of(run.module))
        held = patcher.held(backport_id)
        if held is None:
            raise _error(manifest, backport_id, "another thread applied and reverted it meanwhile")
    # In force already (by apply() or another scope): it was verified then,
    # and is applied again exactly so.
    info, patches, hooks = held
    if info.manifest != str(manifest.location):
        raise _error(
            manifest,
            backport_id,
            f"backport id {backport_id!r} is already applied in this process from {info.manifest}",
        )
    return _ready(manifest, info, patches, hooks)


def _ready(
    manifest: Manifest,
    info: patcher.AppliedBackport,
    patches: tuple[patcher.Patch, ...],
    hooks: patcher.Hooks,
) -> Prepared:
    in_force = BackportResult(
        info.id, Status.APPLIED, "in force for this block: replaced " + ", ".join(info.targets)
    )
    kept = BackportResult(
        info.id, Status.APPLIED, "applied by apply(): it stays applied after this block"
    )
    return Prepared(manifest, info, patches, hooks, in_force, kept)


def _refused(manifest: Manifest, result: BackportResult) -> Refused:
    logger.info(
        "backport-tool: enabled(%r): %s (%s); its blocks run without it",
        result.id,
        result.status.value,
        result.reason,
    )
    return Refused(manifest, result)


def _error(manifest: Manifest, backport_id: str, reason: str) -> ScopeError:
    result = BackportResult(backport_id, Status.FAILED, reason)
    return ScopeError(Report(manifest.package, None, str(manifest.path), (result,)))


def _retag() -> None:
    # Compile caches key on the set in force: what is compiled inside a scope
    # is never reused outside it, nor the other way round.
    cachekey.update([(a.id, a.module_sha256) for a in patcher.applied()])
