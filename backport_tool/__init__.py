"""backport-tool: apply upstream PyTorch fixes as verified, reversible patches.

Only the names in ``__all__`` are public API.
"""

from __future__ import annotations

from .errors import BackportToolError, InstalledVersionError, ManifestError, UsageError
from .loader import applied, apply, check, default_manifest_path, revert
from .manifest import Backport, Manifest, SymbolRef, Target, Upstream, load_manifest
from .patcher import AppliedBackport
from .report import BackportResult, Claim, Probe, Report, Status, TargetReport

__all__ = [
    "AppliedBackport",
    "Backport",
    "BackportResult",
    "BackportToolError",
    "Claim",
    "InstalledVersionError",
    "Manifest",
    "ManifestError",
    "Probe",
    "Report",
    "Status",
    "SymbolRef",
    "Target",
    "TargetReport",
    "Upstream",
    "UsageError",
    "__version__",
    "applied",
    "apply",
    "check",
    "default_manifest_path",
    "load_manifest",
    "revert",
]

__version__ = "0.1.0"
