"""Backports x versions: what each backport would get on each given version of
the package, read statically (``backport-tool matrix``)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from packaging.version import Version

from .api import manifest_for
from .checking import check
from .findings import Presence
from .manifest import Manifest
from .report import BackportResult, Report

COLUMNS = (
    "version",
    "status",
    "upstream claim",
    "targets",
    "signature",
    "fingerprint",
    "probe",
    "requires",
)


@dataclass(frozen=True)
class Matrix:
    """One report per source, sorted by version."""

    manifest: Manifest
    reports: tuple[Report, ...]

    def rows(self, backport_id: str) -> list[tuple[str, ...]]:
        """The table rows of one backport, one per version."""
        return [_row(r.version or "?", r.by_id(backport_id)) for r in self.reports]


def build_matrix(
    sources: list[str], manifest: str | os.PathLike[str] | Manifest | None = None
) -> Matrix:
    """Check every backport against every source (wheel, directory or ``REPO@REV``)."""
    loaded = manifest_for(manifest)
    reports = [check(loaded, source=source) for source in sources]
    reports.sort(key=lambda r: Version(r.version or "0"))
    return Matrix(loaded, tuple(reports))


def _row(version: str, result: BackportResult) -> tuple[str, ...]:
    if not result.targets:
        return (version, result.status.value, "-", "-", "-", "-", "-", "-")
    targets = (
        "found"
        if all(t.presence is Presence.FOUND for t in result.targets)
        else ", ".join(
            f"{t.symbol.rsplit(':', 1)[-1]} {t.presence}"
            for t in result.targets
            if t.presence is not Presence.FOUND
        )
    )
    signature = _compare(
        [t.signature_matches for t in result.targets],
        "drift: "
        + "; ".join(
            t.actual_signature or "?" for t in result.targets if t.signature_matches is False
        ),
    )
    fingerprint = _compare([t.fingerprint_matches for t in result.targets], "differs")
    found = result.requires_total - len(result.requires_missing)
    requires = f"{found}/{result.requires_total}"
    if result.requires_missing:
        requires += " (missing: " + ", ".join(result.requires_missing) + ")"
    return (
        version,
        result.status.value,
        result.upstream_claim.value if result.upstream_claim else "-",
        targets,
        signature,
        fingerprint,
        result.probe.value if result.probe else "-",
        requires,
    )


def _compare(matches: list[bool | None], mismatch: str) -> str:
    if any(m is False for m in matches):
        return mismatch
    if matches and all(m is True for m in matches):
        return "match"
    return "-"
