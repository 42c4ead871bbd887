"""The startup path: ``apply()`` as a server calls it before anything else.

It must cost next to nothing on top of ``import torch``, so this module imports
only what torch has already imported (no yaml, no packaging). The version
decisions for a manifest are computed once with the full validator and kept
in a small JSON plan, keyed by the manifest's bytes, backport-tool's version and
the installed package's version. Verifying and patching is deferred to the
moment the target modules are imported (see ``lazy.py``).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .report import BackportResult, Report, Status

if TYPE_CHECKING:
    from .manifest import Manifest

logger = logging.getLogger("backport_tool")

DISABLE_ENV = "BACKPORT_TOOL_DISABLE"
MANIFEST_ENV = "BACKPORT_TOOL_MANIFEST"
LOG_ENV = "BACKPORT_TOOL_LOG"
CACHE_ENV = "BACKPORT_TOOL_CACHE_DIR"
PLAN_FORMAT = 2

_PACKAGE_DIR = Path(__file__).resolve().parent


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


LOCAL_MANIFEST = "manifest.yaml"


# Tools run inside a project (the CLI, the pytest plugin) look for its
# manifest.yaml before falling back to the bundled one. The library's apply()
# does not: a server's working directory must not decide what gets patched.
def project_manifest_path(*directories: Path) -> Path | None:
    from_env = os.environ.get(MANIFEST_ENV)
    if from_env:
        return Path(from_env)
    for directory in directories:
        if (directory / LOCAL_MANIFEST).is_file():
            return directory / LOCAL_MANIFEST
    return None


def cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "backport-tool"


def configure_logging() -> None:
    """Honour ``BACKPORT_TOOL_LOG=DEBUG|INFO|WARNING|ERROR|OFF`` (once per process)."""
    level_name = os.environ.get(LOG_ENV, "").strip().upper()
    if not level_name or getattr(configure_logging, "_done", False):
        return
    configure_logging._done = True  # type: ignore[attr-defined]
    if level_name == "OFF":
        logger.setLevel(logging.CRITICAL + 1)
        return
    level = logging.getLevelName(level_name)
    if not isinstance(level, int):
        logger.warning("backport-tool: ignoring %s=%r: not a logging level", LOG_ENV, level_name)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    # Our handler prints already; the root logger would print it twice.
    logger.propagate = False


def _installed(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _plan_path(manifest: Path, raw: bytes, version: str | None) -> Path:
    key = hashlib.sha256()
    for part in (str(manifest.resolve()), __version__, str(version), str(PLAN_FORMAT)):
        key.update(part.encode() + b"\0")
    key.update(raw)
    return cache_dir() / f"plan-{key.hexdigest()[:32]}.json"


def _build_plan(manifest: Path, version: str | None) -> dict[str, Any]:
    # The slow, complete path: yaml, packaging and full validation.
    from packaging.version import Version  # noqa: PLC0415

    from .manifest import load_manifest  # noqa: PLC0415
    from .versions import gate  # noqa: PLC0415

    loaded = load_manifest(manifest)
    entries = []
    for backport in loaded.backports:
        # Only the targets' modules trigger the patch; required symbols are
        # verified whatever state their modules are in (see lazy.py).
        modules = sorted({t.symbol.module for t in backport.targets})
        entry: dict[str, Any] = {"id": backport.id, "modules": modules}
        if backport.retired:
            entry.update(decision="retired", reason=f"retired: {backport.retired_reason}")
        elif version is None:
            entry.update(decision="not-applicable", reason=f"{loaded.package} is not installed")
        else:
            decision = gate(
                loaded.package,
                Version(version),
                backport.applies_to,
                backport.fixed_in,
                backport.applies_to_text,
            )
            if decision.fixed_upstream:
                entry.update(decision="fixed-upstream", reason=decision.reason)
            elif not decision.eligible:
                entry.update(decision="not-applicable", reason=decision.reason)
            else:
                entry.update(decision="eligible", reason=decision.reason)
        entries.append(entry)
    return {"format": PLAN_FORMAT, "package": loaded.package, "backports": entries}


def _package_name(raw: bytes) -> str | None:
    # Only to know which version to read before the plan exists; the full
    # validator reads the manifest properly right after.
    for line in raw.decode("utf-8", errors="replace").splitlines():
        if line.startswith("package:"):
            return line.split(":", 1)[1].split("#", 1)[0].strip().strip("'\"") or None
    return None


def load_plan(manifest: Path) -> tuple[dict[str, Any], str | None]:
    """Return the version plan for ``manifest`` and the installed version it is for."""
    from .errors import ManifestError  # noqa: PLC0415

    try:
        raw = manifest.read_bytes()
    except FileNotFoundError:
        raise ManifestError(str(manifest), [f"{manifest}: file not found"]) from None
    except OSError as exc:
        raise ManifestError(str(manifest), [f"{manifest}: cannot read: {exc.strerror}"]) from None
    package = _package_name(raw)
    version = _installed(package) if package else None
    path = _plan_path(manifest, raw, version)
    try:
        plan: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        if plan.get("format") == PLAN_FORMAT and plan.get("package") == package:
            return plan, version
    except (OSError, ValueError):
        pass
    plan = _build_plan(manifest, version)
    if plan["package"] != package:  # the quick read above was wrong; trust the validator
        version = _installed(plan["package"])
        plan = _build_plan(manifest, version)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(plan), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        # A read-only home only costs speed: the plan is rebuilt next time.
        logger.debug("backport-tool: cannot cache the plan in %s: %s", path.parent, exc)
    return plan, version


def disabled_ids() -> frozenset[str]:
    raw = os.environ.get(DISABLE_ENV, "")
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


BOOT_DIR = _PACKAGE_DIR / "_boot"


def reach_subprocesses(manifest: Path) -> None:
    """Make Inductor's compile subprocesses apply the same patch set at startup.

    torch starts them with ``PYTHONPATH`` built from this process's ``sys.path``
    (``python_subprocess_env``), so the boot ``sitecustomize`` directory goes on
    ``sys.path``, ahead of site-packages where another sitecustomize may live.
    It holds nothing else, and this process imported its sitecustomize long ago,
    so imports here are unaffected.
    """
    boot = str(BOOT_DIR)
    if boot not in sys.path:
        sys.path.insert(1 if sys.path else 0, boot)
    os.environ[MANIFEST_ENV] = str(manifest)


def apply(
    manifest: str | os.PathLike[str] | Manifest | None = None,
    *,
    eager: bool = False,
    strict: bool = False,
    subprocesses: bool = True,
) -> Report:
    """Apply the patch set of ``manifest`` (default: ``$BACKPORT_TOOL_MANIFEST``, else
    the bundled one) in this process.

    By default this is lazy and costs almost nothing: versions are resolved and an
    import hook is registered; each backport is verified and applied the moment
    its target modules are first imported (at once if they already are). Until
    then its status is ``pending``. Problems found then are logged as warnings and
    show in :func:`report`; they never break the import.

    ``eager=True`` imports the targets and verifies and applies now.
    ``subprocesses=True`` makes Inductor's compile subprocesses (e.g.
    ``TORCHINDUCTOR_FX_COMPILE_MODE=subprocess``) apply the same patch set; see
    :func:`reach_subprocesses`. ``backport-tool apply -- CMD`` reaches every
    Python process of CMD instead.
    ``strict=True`` (implies eager) raises :class:`VerificationError` when a
    backport is ``drift``, ``missing`` or ``failed``. An invalid manifest always
    raises :class:`ManifestError`, before anything is imported or patched.
    """
    configure_logging()
    if manifest is None:
        path = default_manifest_path()
    elif isinstance(manifest, (str, os.PathLike)):
        path = Path(manifest)
    else:
        path = manifest.path
    if subprocesses:
        reach_subprocesses(path.resolve())
    if eager or strict:
        from . import lazy  # noqa: PLC0415
        from .errors import VerificationError  # noqa: PLC0415
        from .loader import apply_now  # noqa: PLC0415

        report = apply_now(manifest)
        lazy.record(report)
        _log_summary(report)
        if strict and report.exit_code:
            raise VerificationError(report)
        return report

    plan, version = load_plan(path)
    disabled = disabled_ids()
    results: list[BackportResult] = []
    eligible: list[dict[str, Any]] = []
    for entry in plan["backports"]:
        if entry["decision"] == "retired":
            results.append(BackportResult(entry["id"], Status.RETIRED, entry["reason"]))
        elif entry["id"] in disabled or "all" in disabled:
            results.append(
                BackportResult(entry["id"], Status.DISABLED, f"disabled by {DISABLE_ENV}")
            )
        elif entry["decision"] == "fixed-upstream":
            results.append(BackportResult(entry["id"], Status.FIXED_UPSTREAM, entry["reason"]))
        elif entry["decision"] == "not-applicable":
            results.append(BackportResult(entry["id"], Status.NOT_APPLICABLE, entry["reason"]))
        else:
            eligible.append(entry)
            results.append(BackportResult(entry["id"], Status.PENDING, ""))
    if disabled - {e["id"] for e in plan["backports"]} - {"all"}:
        from .loader import warn_unknown_disabled  # noqa: PLC0415

        warn_unknown_disabled(disabled, {e["id"] for e in plan["backports"]})

    from . import lazy  # noqa: PLC0415 - after the cheap part, still stdlib-only

    final = lazy.schedule(path.resolve(), eligible, results)
    report = Report(plan["package"], version, str(path), tuple(final))
    lazy.record(report)
    _log_summary(report)
    return report


def _log_summary(report: Report) -> None:
    groups: dict[str, list[str]] = {}
    for result in report.results:
        groups.setdefault(result.status.value, []).append(result.id)
    refused = sum(
        len(ids) for status, ids in groups.items() if status not in ("applied", "pending")
    )
    parts = [
        f"{len(groups[s])} {s} ({', '.join(groups[s])})"
        for s in ("applied", "pending")
        if s in groups
    ]
    parts.append(f"{refused} refused")
    level = logging.WARNING if report.exit_code else logging.INFO
    logger.log(level, "backport-tool: %s", ", ".join(parts))
