"""What verifying a backport found, in detail: whether each symbol is present,
what a probe and a ``fixed_in`` claim say, a self-test's verdict and each
target's report. Kept apart from report.py, whose types the startup path
builds: nothing here is needed before a target module is imported.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from .registries import EntryState


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
    NONE = "none"  # the module defines no selftest(): nothing ran

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class EntryReport:
    """One entry of a registry target: what it is, whether the backport adds
    or removes it, and its state."""

    entry: str
    action: str  # "add" or "remove"
    state: EntryState

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {"entry": self.entry, "action": self.action, "state": self.state.value}


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
    # A config option (torch's ConfigModule): its value in this process and
    # its declared default, as repr()s.
    config_value: str | None = None
    config_default: str | None = None
    # What the drift check of this target could not compare, and why (C code
    # has no source to fingerprint, and perhaps no signature).
    note: str | None = None
    # A registry target: the kind of its container and each entry's state.
    container: str | None = None
    entries: tuple[EntryReport, ...] = ()
    # Read from source (check --source): annotations are compared by the
    # fingerprint only, as the source spells aliases the live read resolves.
    read_statically: bool = False

    @property
    def signature_matches(self) -> bool | None:
        """None when there is nothing to compare."""
        if self.expected_signature is None or self.actual_signature is None:
            return None
        # Both are usually written in the canonical spelling already (lock
        # records what apply reads): no parse for the common case.
        if self.expected_signature == self.actual_signature:
            return True
        # source pulls in inspect (3 ms): the startup path builds reports
        # without ever comparing a signature.
        from .source import call_shape, comparable_signature  # noqa: PLC0415

        same = call_shape if self.read_statically else comparable_signature
        return same(self.expected_signature) == same(self.actual_signature)

    @property
    def fingerprint_matches(self) -> bool | None:
        """None when there is nothing to compare."""
        if not self.expected_fingerprints or self.actual_fingerprint is None:
            return None
        return self.actual_fingerprint in self.expected_fingerprints

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return (
            {
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
            | (
                {"config_value": self.config_value, "config_default": self.config_default}
                if self.config_value is not None
                else {}
            )
            | ({"note": self.note} if self.note is not None else {})
            | (
                {"container": self.container, "entries": [e.to_dict() for e in self.entries]}
                if self.container is not None
                else {}
            )
        )
