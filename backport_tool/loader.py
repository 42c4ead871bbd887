from __future__ import annotations

import functools
import importlib.util
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from packaging.version import Version

from . import patcher
from .errors import UsageError
from .manifest import Backport, Manifest, Target, load_manifest
from .report import BackportResult, Report, Status, TargetReport
from .symbols import ABSENT, Resolved, SymbolMissing, resolve, signature_text, signatures_match
from .versions import gate, installed_version

logger = logging.getLogger("backport_tool")

DISABLE_ENV = "BACKPORT_TOOL_DISABLE"
MANIFEST_ENV = "BACKPORT_TOOL_MANIFEST"

_PACKAGE_DIR = Path(__file__).resolve().parent

# Backport modules are loaded once per file, so that apply after revert
# installs the very same replacement objects.
_modules: dict[Path, ModuleType] = {}


def bundled_manifest_path() -> Path:
    """Return the manifest shipped with the package.

    A wheel carries it as ``backport_tool/_bundled/manifest.yaml``; a source
    checkout has it at the repository root.
    """
    installed = _PACKAGE_DIR / "_bundled" / "manifest.yaml"
    if installed.is_file():
        return installed
    return _PACKAGE_DIR.parent / "manifest.yaml"


def default_manifest_path() -> Path:
    """``$BACKPORT_TOOL_MANIFEST`` if set, else the bundled manifest."""
    from_env = os.environ.get(MANIFEST_ENV)
    return Path(from_env) if from_env else bundled_manifest_path()


def _manifest(manifest: str | os.PathLike[str] | Manifest | None) -> Manifest:
    if isinstance(manifest, Manifest):
        return manifest
    return load_manifest(default_manifest_path() if manifest is None else Path(manifest))


def _disabled(manifest: Manifest) -> frozenset[str]:
    raw = os.environ.get(DISABLE_ENV, "")
    ids = frozenset(part.strip() for part in raw.split(",") if part.strip())
    known = {b.id for b in manifest.backports}
    unknown = sorted(ids - known - {"all"})
    if unknown:
        logger.warning(
            "backport-tool: %s names unknown backport id(s) %s. Hint: known ids are %s",
            DISABLE_ENV,
            ", ".join(unknown),
            ", ".join(sorted(known)) or "(none)",
        )
    return ids


@dataclass(frozen=True)
class _Problem:
    status: Status
    message: str


# When a backport has several problems, the status names the worst one.
_SEVERITY = (Status.FAILED, Status.MISSING, Status.DRIFT)


def _load_module(backport: Backport) -> ModuleType:
    cached = _modules.get(backport.module)
    if cached is not None:
        return cached
    name = "_backport_tool_bp_" + backport.id.replace("-", "_")
    spec = importlib.util.spec_from_file_location(name, backport.module)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {backport.module_text}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    _modules[backport.module] = module
    return module


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _resolve(symbol: str, what: str, resolver: Callable[[], Resolved]) -> Resolved | _Problem:
    try:
        return resolver()
    except SymbolMissing as exc:
        return _Problem(Status.MISSING, f"{what} {symbol}: {exc}")
    except Exception as exc:
        logger.debug("backport-tool: resolving %s failed", symbol, exc_info=True)
        return _Problem(Status.FAILED, f"{what} {symbol}: import raised {_describe(exc)}")


def _verify_target(target: Target) -> tuple[Resolved | None, TargetReport, list[_Problem]]:
    symbol = str(target.symbol)
    found = _resolve(symbol, "target", lambda: resolve(target.symbol))
    if isinstance(found, _Problem):
        return None, TargetReport(symbol, target.signature), [found]
    actual = signature_text(found.function)
    report = TargetReport(symbol, target.signature, actual, found.defined_on_name)
    problems: list[_Problem] = []
    if target.signature is not None and not signatures_match(target.signature, actual):
        problems.append(
            _Problem(
                Status.DRIFT,
                f"target {symbol} has signature {actual or '(none)'}, "
                f"the backport expects {target.signature}",
            )
        )
    return found, report, problems


def _replacement(module: ModuleType, backport: Backport, target: Target) -> object | _Problem:
    value = getattr(module, target.replacement, ABSENT)
    if value is ABSENT:
        return _Problem(
            Status.FAILED,
            f"{backport.module_text} has no attribute {target.replacement!r} "
            f"(the replacement for {target.symbol})",
        )
    if not callable(value):
        return _Problem(
            Status.FAILED,
            f"{backport.module_text}:{target.replacement} is a {type(value).__name__}, "
            "not callable",
        )
    return value


def _evaluate(
    manifest: Manifest,
    backport: Backport,
    version: Version | None,
    disabled: frozenset[str],
    *,
    patch: bool,
) -> BackportResult:
    def result(
        status: Status, reason: str, targets: tuple[TargetReport, ...] = ()
    ) -> BackportResult:
        return BackportResult(backport.id, status, reason, targets)

    if backport.id in disabled or "all" in disabled:
        return result(Status.DISABLED, f"disabled by {DISABLE_ENV}")
    if version is None:
        return result(Status.NOT_APPLICABLE, f"{manifest.package} is not installed")
    decision = gate(
        manifest.package, version, backport.applies_to, backport.fixed_in, backport.applies_to_text
    )
    if not decision.eligible:
        status = Status.FIXED_UPSTREAM if decision.fixed_upstream else Status.NOT_APPLICABLE
        return result(status, decision.reason)
    if patcher.is_applied(backport.id):
        return result(Status.APPLIED, "already applied in this process")

    # Verify what the backport will touch before running any of its code: a
    # renamed upstream symbol then reads as "missing", not as a crash.
    found: list[tuple[Target, Resolved]] = []
    reports: list[TargetReport] = []
    problems: list[_Problem] = []
    for target in backport.targets:
        resolved, report, target_problems = _verify_target(target)
        reports.append(report)
        problems += target_problems
        if resolved is not None:
            found.append((target, resolved))
    for ref in backport.requires:
        required = _resolve(str(ref), "required symbol", functools.partial(resolve, ref))
        if isinstance(required, _Problem):
            problems.append(required)
    targets = tuple(reports)

    patches: list[patcher.Patch] = []
    if not problems:
        try:
            module = _load_module(backport)
        except Exception as exc:
            logger.debug("backport-tool: loading %s failed", backport.module, exc_info=True)
            problems.append(
                _Problem(Status.FAILED, f"{backport.module_text} raised {_describe(exc)} on import")
            )
        else:
            for target, resolved in found:
                replacement = _replacement(module, backport, target)
                if isinstance(replacement, _Problem):
                    problems.append(replacement)
                    continue
                # Keep the descriptor kind of the original, or a staticmethod
                # target would start receiving ``self``.
                if isinstance(resolved.raw, (staticmethod, classmethod)) and callable(replacement):
                    replacement = type(resolved.raw)(replacement)
                patches.append(
                    patcher.Patch(
                        str(target.symbol), resolved.owner, resolved.name, resolved.own, replacement
                    )
                )

    if problems:
        worst = next(s for s in _SEVERITY if any(p.status is s for p in problems))
        return result(worst, "; ".join(p.message for p in problems), targets)
    if not patch:
        return result(Status.READY, _verified(backport), targets)
    try:
        patcher.apply_patches(backport.id, str(manifest.path), tuple(patches))
    except Exception as exc:
        logger.debug("backport-tool: patching %s failed", backport.id, exc_info=True)
        return result(Status.FAILED, f"patching failed, nothing changed: {_describe(exc)}", targets)
    return result(
        Status.APPLIED, "replaced " + ", ".join(str(t.symbol) for t in backport.targets), targets
    )


def _verified(backport: Backport) -> str:
    checks = ["targets found"]
    if any(t.signature for t in backport.targets):
        checks.append("signatures match")
    if backport.requires:
        checks.append(f"{len(backport.requires)} required symbols found")
    return "would apply: " + ", ".join(checks)


def _run(manifest: Manifest, *, patch: bool) -> Report:
    version = installed_version(manifest.package)
    disabled = _disabled(manifest)
    results = tuple(
        _evaluate(manifest, backport, version, disabled, patch=patch)
        for backport in manifest.backports
    )
    report = Report(
        manifest.package, str(version) if version else None, str(manifest.path), results
    )
    for item in results:
        level = logging.WARNING if item.status.is_problem else logging.DEBUG
        logger.log(level, "backport-tool: %s: %s (%s)", item.id, item.status.value, item.reason)
    return report


def apply(manifest: str | os.PathLike[str] | Manifest | None = None) -> Report:
    """Verify and apply every backport of ``manifest`` that matches the installed version.

    ``manifest`` defaults to ``$BACKPORT_TOOL_MANIFEST``, else the bundled patch
    set. Each backport is applied atomically (all of its targets or none) and a
    bad backport never stops the others. Applying twice is a no-op. Raises
    :class:`ManifestError` for an invalid manifest, before anything is imported.
    """
    return _run(_manifest(manifest), patch=True)


def check(manifest: str | os.PathLike[str] | Manifest | None = None) -> Report:
    """Verify every backport like :func:`apply` would, without patching anything."""
    return _run(_manifest(manifest), patch=False)


def revert(ids: str | tuple[str, ...] | list[str] | None = None) -> tuple[str, ...]:
    """Restore the exact original objects of the applied backports.

    ``ids`` limits it to those backports (default: all). Returns the ids reverted.
    """
    if isinstance(ids, str):
        ids = (ids,)
    if ids is not None and not all(isinstance(i, str) for i in ids):
        raise UsageError("revert() takes backport ids as strings")
    return patcher.revert(None if ids is None else tuple(ids))


def applied() -> tuple[patcher.AppliedBackport, ...]:
    """Return the backports currently applied in this process."""
    return patcher.applied()
