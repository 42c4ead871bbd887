from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, NamedTuple


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


class Claim(str, enum.Enum):
    """Whether the code agrees with a ``fixed_in`` declaration that refused a backport."""

    CONFIRMED = "confirmed"  # the probe finds the fix in the code
    CONTRADICTED = "contradicted"  # the probe finds the code without the fix
    UNVERIFIED = "unverified"  # no probe, or it cannot tell

    def __str__(self) -> str:
        return self.value


class Probe(str, enum.Enum):
    """A backport's content probe's answer: does the original already have the fix?"""

    FIXED = "fixed"
    NOT_FIXED = "not-fixed"
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value


class Decision(NamedTuple):
    """What the versions and switches alone say about a backport (``engine.decide``):
    ``READY`` means it may apply. A NamedTuple: the startup path creates it."""

    status: Status
    reason: str


class Presence(str, enum.Enum):
    """Whether a target or required symbol was found. The values appear in JSON."""

    FOUND = "found"
    MISSING = "missing"
    FAILED = "failed"  # its module raised on import
    UNKNOWN = "unknown"  # static reading cannot tell (compiled or dynamic)

    def __str__(self) -> str:
        return self.value


class Verdict(str, enum.Enum):
    """A self-test's outcome (``check --selftest``). The values appear in JSON."""

    PASSED = "passed"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class TargetReport:
    """What was found for one target of a backport."""

    symbol: str
    presence: Presence
    expected_signature: str | None = None
    actual_signature: str | None = None
    defined_on: str | None = None
    expected_fingerprints: tuple[str, ...] = ()
    actual_fingerprint: str | None = None
    # The declared copies apply binds (check) or bound (apply).
    rebound: tuple[str, ...] = ()
    # References check found that apply does not reach, not acknowledged.
    stale_references: tuple[str, ...] = ()

    @property
    def signature_matches(self) -> bool | None:
        """None when there is nothing to compare."""
        if self.expected_signature is None or self.actual_signature is None:
            return None
        # source pulls in inspect (3 ms): the startup path builds reports
        # without ever comparing a signature.
        from .source import normalize_signature  # noqa: PLC0415

        return normalize_signature(self.expected_signature) == normalize_signature(
            self.actual_signature
        )

    @property
    def fingerprint_matches(self) -> bool | None:
        """None when there is nothing to compare."""
        if not self.expected_fingerprints or self.actual_fingerprint is None:
            return None
        return self.actual_fingerprint in self.expected_fingerprints

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "symbol": self.symbol,
            "presence": self.presence.value,
            "defined_on": self.defined_on,
            "expected_signature": self.expected_signature,
            "actual_signature": self.actual_signature,
            "signature_matches": self.signature_matches,
            "expected_fingerprints": list(self.expected_fingerprints),
            "actual_fingerprint": self.actual_fingerprint,
            "fingerprint_matches": self.fingerprint_matches,
            "rebound": list(self.rebound),
            "stale_references": list(self.stale_references),
        }


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

    @property
    def is_problem(self) -> bool:
        """True when this result alone makes ``apply``/``check`` exit 1."""
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

    @property
    def exit_code(self) -> int:
        """0 when every backport is fine or correctly not applied, else 1."""
        return 1 if any(r.is_problem for r in self.results) else 0

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
            "backports": [r.to_dict(details=details) for r in self.results],
        }
