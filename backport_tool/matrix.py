"""Backports x versions: what each backport would get on each given version of
the package, read statically (``backport-tool matrix``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from .api import manifest_for
from .checking import read_source
from .config import Switches
from .copysites import CopiesUnknown, find_copies
from .engine import Mode, run
from .findings import Claim, Presence, TargetReport
from .inspection import StaticInspector
from .manifest import Backport, Manifest, Target
from .report import BackportResult, Report, Status
from .retire import retirement
from .versions import effective_version

COLUMNS = (
    "version",
    "status",
    "upstream claim",
    "targets",
    "signature",
    "fingerprint",
    "copies",
    "probe",
    "requires",
)

APPLIES_TO = "applies_to"
SUPPORTED = "supported"


@dataclass(frozen=True)
class CopySites:
    # One target's declared copies against the copy sites a version binds.
    target: str
    declared: tuple[str, ...]
    missing: tuple[str, ...]  # declared, not bound to the original there
    undeclared: tuple[str, ...]  # bound there, not declared: apply would miss them

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.target,
            "declared": list(self.declared),
            "missing": list(self.missing),
            "undeclared": list(self.undeclared),
        }


@dataclass(frozen=True)
class Cell:
    # One backport on one version.
    result: BackportResult
    # Per found target whose copy sites the sources show.
    copies: tuple[CopySites, ...] = ()
    # An opt-in backport held back as not enabled: its result once enabled.
    if_enabled: BackportResult | None = None
    # Which ranges allow the version: APPLIES_TO, SUPPORTED (--strict's scope).
    inside: tuple[str, ...] = ()
    # What differs from what the backport was written for.
    drift: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.result.to_dict(details=True),
            "copies": [c.to_dict() for c in self.copies],
            "if_enabled": self.if_enabled.to_dict() if self.if_enabled else None,
            "inside": list(self.inside),
            "drift": list(self.drift),
        }


@dataclass(frozen=True)
class Matrix:
    """One report per source, sorted by version, and one cell per backport and
    version. Every backport is read on every version (retired ones excepted),
    also where the version refuses it; its status stays the version's decision."""

    manifest: Manifest
    reports: tuple[Report, ...]
    # cells[i][backport id]: the backport on reports[i]'s version.
    cells: tuple[dict[str, Cell], ...]
    supported: SpecifierSet | None = None

    def rows(self, backport_id: str) -> list[tuple[str, ...]]:
        """The table rows of one backport, one per version."""
        return [
            _row(r.version or "?", self.manifest.get(backport_id), cells[backport_id])
            for r, cells in zip(self.reports, self.cells, strict=True)
        ]

    def problems(self) -> list[tuple[str, str, Cell]]:
        """``(version, backport id, cell)`` for each backport that drifts on a
        version its ``applies_to`` or the supported range allows: what makes
        ``matrix --strict`` exit 1. Where the code confirms a ``fixed_in``
        claim, the drift is upstream's fix and does not count."""
        return [
            (r.version or "?", backport_id, cell)
            for r, cells in zip(self.reports, self.cells, strict=True)
            for backport_id, cell in cells.items()
            if cell.inside and cell.drift and cell.result.upstream_claim is not Claim.CONFIRMED
        ]


def build_matrix(
    sources: list[str],
    manifest: str | os.PathLike[str] | Manifest | None = None,
    *,
    supported: SpecifierSet | None = None,
) -> Matrix:
    """Check every backport against every source (wheel, directory or ``REPO@REV``).

    Nothing is enabled, and ``BACKPORT_TOOL_ENABLE`` and ``BACKPORT_TOOL_DISABLE``
    are not read; an opt-in backport held back as not enabled is also checked
    as if enabled (``Cell.if_enabled``). ``supported`` widens the versions where
    a drift counts as a problem (:meth:`Matrix.problems`) beyond ``applies_to``.
    """
    loaded = manifest_for(manifest)
    read = [_read(loaded, source, supported) for source in sources]
    read.sort(key=lambda pair: Version(pair[0].version or "0"))
    return Matrix(
        loaded,
        tuple(report for report, _ in read),
        tuple(cells for _, cells in read),
        supported,
    )


def _read(
    manifest: Manifest, source: str, supported: SpecifierSet | None
) -> tuple[Report, dict[str, Cell]]:
    inspector, version = read_source(manifest, source)
    report = run(manifest, Mode.MATRIX, inspector, version, Switches())
    if supported is not None:
        # As check --supported says it: the same for every version read.
        retire = [retirement(b, supported) for b in manifest.backports]
        results = (replace(r, retire=w) for r, w in zip(report.results, retire, strict=True))
        report = replace(report, results=tuple(results))
    cells: dict[str, Cell] = {}
    # Two backports of one target (an opt-in port and a default) share its search.
    found_copies: dict[str, set[str] | None] = {}
    for backport, result in zip(manifest.backports, report.results, strict=True):
        if_enabled = None
        if backport.opt_in and result.status is Status.DISABLED:
            # Enabled, it takes its targets from the default backports, as
            # apply would: the whole manifest is decided again.
            alone = Switches(enabled=frozenset({backport.id}))
            if_enabled = run(manifest, Mode.MATRIX, inspector, version, alone).by_id(backport.id)
        copies = _copies(backport, result, inspector, found_copies)
        cells[backport.id] = Cell(
            result,
            copies,
            if_enabled,
            _inside(backport, version, supported),
            _drift(backport, result, copies),
        )
    return report, cells


def _copies(
    backport: Backport,
    result: BackportResult,
    inspector: StaticInspector,
    searched: dict[str, set[str] | None],
) -> tuple[CopySites, ...]:
    # The same comparison as check --source, kept per target for the column.
    out: list[CopySites] = []
    for target, report in _targets(backport, result):
        if target.create or report.presence is not Presence.FOUND:
            continue
        symbol = str(target.symbol)
        if symbol not in searched:
            try:
                sites = find_copies(inspector.index, target.symbol).sites
                searched[symbol] = {str(site) for site in sites}
            except CopiesUnknown:
                searched[symbol] = None
        found = searched[symbol]
        if found is None:
            continue
        declared = tuple(str(copy) for copy in target.copies)
        # A conditional copy one version leaves out is what the key is for.
        maybe = {str(copy) for copy in target.conditional}
        out.append(
            CopySites(
                str(target.symbol),
                declared,
                tuple(c for c in declared if c not in found and c not in maybe),
                tuple(sorted(found - set(declared))),
            )
        )
    return tuple(out)


def _targets(backport: Backport, result: BackportResult) -> list[tuple[Target, TargetReport]]:
    # A result carries no target reports when nothing was read (retired).
    if not result.targets:
        return []
    return list(zip(backport.targets, result.targets, strict=True))


def _inside(
    backport: Backport, version: Version, supported: SpecifierSet | None
) -> tuple[str, ...]:
    if backport.retired:
        return ()
    # As the version gate counts it: 2.12.0rc1 is 2.12.0.
    effective = effective_version(version)
    ranges = [(APPLIES_TO, backport.applies_to), (SUPPORTED, supported)]
    return tuple(
        name
        for name, spec in ranges
        if spec is not None and spec.contains(effective, prereleases=True)
    )


def _drift(
    backport: Backport, result: BackportResult, copies: tuple[CopySites, ...]
) -> tuple[str, ...]:
    out: list[str] = []
    for target, report in _targets(backport, result):
        if target.create:
            if report.presence is Presence.FOUND:
                out.append(f"target {report.symbol} exists already (create: true)")
        elif report.presence in (Presence.MISSING, Presence.FAILED):
            out.append(f"target {report.symbol} {report.presence}")
        if report.signature_matches is False:
            out.append(f"target {report.symbol} has signature {report.actual_signature}")
        if report.fingerprint_matches is False:
            out.append(f"target {report.symbol} fingerprint differs")
    for sites in copies:
        out += [f"declared copy {c} of {sites.target} missing" for c in sites.missing]
        out += [f"undeclared copy {c} of {sites.target}" for c in sites.undeclared]
    out += [f"required symbol {ref} missing" for ref in result.requires_missing]
    out += [f"required symbol {ref} failed" for ref in result.requires_failed]
    if result.status.is_problem and not out:
        out.append(f"{result.status}: {result.reason}")
    return tuple(out)


def _row(version: str, backport: Backport, cell: Cell) -> tuple[str, ...]:
    result = cell.result
    status = result.status.value
    if cell.if_enabled is not None:
        status += f" (opt-in; enabled: {cell.if_enabled.status.value})"
    claim = result.upstream_claim.value if result.upstream_claim else "-"
    targets = _targets(backport, result)
    if not targets:
        return (version, status, claim, "-", "-", "-", "-", "-", "-")
    return (
        version,
        status,
        claim,
        _presence(targets),
        _compare(
            [t.signature_matches for _, t in targets],
            "drift: "
            + "; ".join(
                t.actual_signature or "?" for _, t in targets if t.signature_matches is False
            ),
        ),
        _compare([t.fingerprint_matches for _, t in targets], "differs"),
        _copies_text(cell.copies),
        result.probe.value if result.probe else "-",
        _found_of(result.requires_total, result.requires_missing, result.requires_failed),
    )


def _presence(targets: list[tuple[Target, TargetReport]]) -> str:
    # A target marked create: true is expected to be missing.
    notes = []
    for target, report in targets:
        name = report.symbol.rsplit(":", 1)[-1]
        if not target.create:
            if report.presence is not Presence.FOUND:
                notes.append(f"{name} {report.presence}")
        elif report.presence is Presence.MISSING:
            notes.append(f"{name} to create")
        else:
            notes.append(
                f"{name} {'exists' if report.presence is Presence.FOUND else report.presence}"
            )
    return ", ".join(notes) or "found"


def _copies_text(copies: tuple[CopySites, ...]) -> str:
    if not copies:
        return "-"  # no target whose copy sites the sources show
    declared = sum(len(c.declared) for c in copies)
    text = _found_of(declared, tuple(m for c in copies for m in c.missing))
    undeclared = [u for c in copies for u in c.undeclared]
    if undeclared:
        text += " (undeclared: " + ", ".join(undeclared) + ")"
    return text


def _found_of(total: int, missing: tuple[str, ...], failed: tuple[str, ...] = ()) -> str:
    text = f"{total - len(missing) - len(failed)}/{total}"
    for word, names in (("missing", missing), ("failed", failed)):
        if names:
            text += f" ({word}: " + ", ".join(names) + ")"
    return text


def _compare(matches: list[bool | None], mismatch: str) -> str:
    if any(m is False for m in matches):
        return mismatch
    if matches and all(m is True for m in matches):
        return "match"
    return "-"
