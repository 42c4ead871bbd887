from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    # The details of a result live apart (findings.py): the startup path builds
    # results and reports without them, and each class costs time to create.
    from .findings import Claim, Probe, TargetReport, Verdict


class Status(str, enum.Enum):
    """The outcome for one backport. The values are stable: they appear in JSON."""

    APPLIED = "applied"
    # Applied, but references to the original that no rebinding reaches
    # (dict entries, closures, partials, ...) still call it.
    PARTIAL = "partial"
    READY = "ready"
    FIXED_UPSTREAM = "fixed-upstream"
    NOT_APPLICABLE = "not-applicable"
    DISABLED = "disabled"
    DRIFT = "drift"
    MISSING = "missing"
    FAILED = "failed"
    RETIRED = "retired"
    PENDING = "pending"  # lazy apply: verified and applied when its modules are imported

    @property
    def is_problem(self) -> bool:
        """True for the statuses that make ``apply`` and ``check`` exit 1."""
        return self in (Status.DRIFT, Status.MISSING, Status.FAILED, Status.PARTIAL)

    def __str__(self) -> str:
        return self.value


class Decision(NamedTuple):
    """What the versions and switches alone say about a backport (``engine.decide``):
    ``READY`` means it may apply. A NamedTuple: the startup path creates it."""

    status: Status
    reason: str


@dataclass(frozen=True)
class BackportResult:
    """The status of one backport and why."""

    id: str
    status: Status
    reason: str
    targets: tuple[TargetReport, ...] = ()
    upstream_claim: Claim | None = None
    probe: Probe | None = None
    requires_missing: tuple[str, ...] = ()
    requires_unknown: tuple[str, ...] = ()
    requires_total: int = 0
    retire: str | None = None  # set by check --supported
    selftest: Verdict | None = None  # set by check --selftest
    selftest_message: str | None = None
    # Required symbols whose module raised on import, or whose file cannot be
    # read: neither found nor missing.
    requires_failed: tuple[str, ...] = ()

    @property
    def is_problem(self) -> bool:
        """True when this result alone makes ``apply``/``check`` exit 1."""
        if self.selftest is None:
            return self.status.is_problem
        from .findings import Verdict  # noqa: PLC0415 - see the imports

        return self.status.is_problem or self.selftest is Verdict.FAILED

    def to_dict(self, *, details: bool = False) -> dict[str, Any]:
        """Return the JSON form; ``details`` adds what was found for each target."""
        data: dict[str, Any] = {
            "id": self.id,
            "status": self.status.value,
            "reason": self.reason,
            "upstream_claim": self.upstream_claim.value if self.upstream_claim else None,
            "probe": self.probe.value if self.probe else None,
            "retire": self.retire,
            "selftest": self.selftest.value if self.selftest else None,
        }
        if self.selftest_message is not None:
            data["selftest_message"] = self.selftest_message
        if details:
            data["targets"] = [t.to_dict() for t in self.targets]
            data["requires"] = {
                "total": self.requires_total,
                "missing": list(self.requires_missing),
                "failed": list(self.requires_failed),
                "unknown": list(self.requires_unknown),
            }
        return data


@dataclass(frozen=True)
class Report:
    """The result of :func:`apply` or :func:`check` for a whole manifest."""

    package: str
    version: str | None
    manifest: str
    results: tuple[BackportResult, ...]
    source: str | None = None  # set when read statically from a wheel, tree or git revision
    # Switched ids that name no backport of the manifest, one message each.
    warnings: tuple[str, ...] = ()
    # Why nothing was applied at all (library apply() with a manifest it
    # cannot read, or an installed version it cannot read).
    error: str | None = None

    @property
    def exit_code(self) -> int:
        """0 when every backport is fine or correctly not applied, else 1."""
        return 1 if self.error is not None or any(r.is_problem for r in self.results) else 0

    def by_id(self, backport_id: str) -> BackportResult:
        """Return the result for ``backport_id``; raise ``KeyError`` if absent."""
        for result in self.results:
            if result.id == backport_id:
                return result
        raise KeyError(backport_id)

    def counts(self) -> dict[Status, int]:
        """Return how many backports got each status (statuses seen only)."""
        counts: dict[Status, int] = {}
        for result in self.results:
            counts[result.status] = counts.get(result.status, 0) + 1
        return counts

    def to_dict(self, *, details: bool = False) -> dict[str, Any]:
        """Return the JSON form: package, installed version and one entry per backport."""
        return {
            "package": self.package,
            "version": self.version,
            "manifest": self.manifest,
            "source": self.source,
            "error": self.error,
            "warnings": list(self.warnings),
            "backports": [r.to_dict(details=details) for r in self.results],
        }


def version_label(report: Report) -> str:
    # What text output says for the installed version. None is not always
    # "not installed": with every backport switched off it is not read.
    if report.version:
        return report.version
    if report.error is not None:
        return "version unknown"
    if report.results and all(r.status is Status.DISABLED for r in report.results):
        return "version not read (every backport is disabled)"
    return "not installed"
