from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class Status(str, enum.Enum):
    """The outcome for one backport. The values are stable: they appear in JSON."""

    APPLIED = "applied"
    READY = "ready"
    FIXED_UPSTREAM = "fixed-upstream"
    NOT_APPLICABLE = "not-applicable"
    DISABLED = "disabled"
    DRIFT = "drift"
    MISSING = "missing"
    FAILED = "failed"

    @property
    def is_problem(self) -> bool:
        """True for the statuses that make ``apply`` and ``check`` exit 1."""
        return self in (Status.DRIFT, Status.MISSING, Status.FAILED)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class TargetReport:
    """What was found for one target of a backport."""

    symbol: str
    expected_signature: str | None = None
    actual_signature: str | None = None
    defined_on: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "symbol": self.symbol,
            "expected_signature": self.expected_signature,
            "actual_signature": self.actual_signature,
            "defined_on": self.defined_on,
        }


@dataclass(frozen=True)
class BackportResult:
    """The status of one backport and why."""

    id: str
    status: Status
    reason: str
    targets: tuple[TargetReport, ...] = ()

    def to_dict(self, *, details: bool = False) -> dict[str, Any]:
        """Return the JSON form; ``details`` adds what was found for each target."""
        data: dict[str, Any] = {"id": self.id, "status": self.status.value, "reason": self.reason}
        if details:
            data["targets"] = [t.to_dict() for t in self.targets]
        return data


@dataclass(frozen=True)
class Report:
    """The result of :func:`apply` or :func:`check` for a whole manifest."""

    package: str
    version: str | None
    manifest: str
    results: tuple[BackportResult, ...]

    @property
    def exit_code(self) -> int:
        """0 when every backport is fine or correctly not applied, else 1."""
        return 1 if any(r.status.is_problem for r in self.results) else 0

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
            "backports": [r.to_dict(details=details) for r in self.results],
        }
