"""backport-tool: apply upstream PyTorch fixes as verified, reversible patches.

Only the names in ``__all__`` are public API. They are loaded on first use, so
that ``import backport_tool`` adds next to nothing to a server's startup.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .api import applied, apply, current_report, original, revert
    from .checking import check
    from .config import default_manifest_path
    from .errors import (
        BackportToolError,
        InstalledVersionError,
        ManifestError,
        MissingDependencyError,
        ScopeError,
        UsageError,
        VerificationError,
    )
    from .findings import Claim, Presence, Probe, TargetReport, Verdict
    from .locking import LockEntry, lock
    from .manifest import Backport, Manifest, SymbolRef, Target, Upstream, load_manifest
    from .matrix import Matrix, build_matrix
    from .patcher import AppliedBackport
    from .report import BackportResult, Report, Status
    from .scoped import enabled
    from .tracking import TrackResult, track

# name -> module that defines it
_EXPORTS = {
    "AppliedBackport": "patcher",
    "Backport": "manifest",
    "BackportResult": "report",
    "BackportToolError": "errors",
    "Claim": "findings",
    "InstalledVersionError": "errors",
    "LockEntry": "locking",
    "Manifest": "manifest",
    "ManifestError": "errors",
    "MissingDependencyError": "errors",
    "Matrix": "matrix",
    "Presence": "findings",
    "Probe": "findings",
    "Report": "report",
    "ScopeError": "errors",
    "Status": "report",
    "SymbolRef": "manifest",
    "Target": "manifest",
    "TargetReport": "findings",
    "TrackResult": "tracking",
    "Upstream": "manifest",
    "UsageError": "errors",
    "Verdict": "findings",
    "VerificationError": "errors",
    "apply": "api",
    "applied": "api",
    "build_matrix": "matrix",
    "check": "checking",
    "default_manifest_path": "config",
    "enabled": "scoped",
    "load_manifest": "manifest",
    "lock": "locking",
    "original": "api",
    "current_report": "api",
    "revert": "api",
    "track": "tracking",
}

__all__ = [
    "AppliedBackport",
    "Backport",
    "BackportResult",
    "BackportToolError",
    "Claim",
    "InstalledVersionError",
    "LockEntry",
    "Manifest",
    "ManifestError",
    "Matrix",
    "MissingDependencyError",
    "Presence",
    "Probe",
    "Report",
    "ScopeError",
    "Status",
    "SymbolRef",
    "Target",
    "TargetReport",
    "TrackResult",
    "Upstream",
    "UsageError",
    "Verdict",
    "VerificationError",
    "__version__",
    "applied",
    "apply",
    "build_matrix",
    "check",
    "current_report",
    "default_manifest_path",
    "enabled",
    "load_manifest",
    "lock",
    "original",
    "revert",
    "track",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'backport_tool' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
