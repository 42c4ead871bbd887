"""decision.decide: the one answer to "does this backport apply to this version?"."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.version import Version

from backport_tool import Status, default_manifest_path, load_manifest
from backport_tool.config import Switches
from backport_tool.decision import decide, decide_all

MANIFEST = """\
version: 1
package: torch
backports:
  - id: live
    summary: s
    applies_to: ">=2.11,<2.12"
    fixed_in: "2.12.0"
    module: fix.py
    targets: [{symbol: "m:f", replacement: f}]
  - id: gone
    summary: s
    applies_to: ">=2.11,<2.12"
    module: fix.py
    status: retired
    retired_reason: upstream has it
    targets: [{symbol: "m:f", replacement: f}]
  - id: optional
    summary: s
    applies_to: ">=2.11,<2.12"
    fixed_in: "2.12.0"
    opt_in: true
    module: fix.py
    targets: [{symbol: "m:g", replacement: g}]
"""


@pytest.mark.parametrize(
    ("backport", "version", "disabled", "status", "reason"),
    [
        ("live", "2.11.0+cu130", set(), Status.READY, "inside applies_to"),
        ("live", "2.12.0rc1", set(), Status.FIXED_UPSTREAM, ">= fixed_in 2.12.0"),
        ("live", "2.10.0", set(), Status.NOT_APPLICABLE, "outside applies_to"),
        ("live", None, set(), Status.NOT_APPLICABLE, "torch is not installed"),
        (
            "live",
            "2.11.0",
            {"live"},
            Status.DISABLED,
            "disabled by a switch: BACKPORT_TOOL_DISABLE, apply(disable=...) or --disable",
        ),
        (
            "live",
            None,
            {"all"},
            Status.DISABLED,
            "disabled by a switch: BACKPORT_TOOL_DISABLE, apply(disable=...) or --disable",
        ),
        ("gone", "2.11.0", {"all"}, Status.RETIRED, "retired: upstream has it"),
    ],
)
def test_decide(
    tmp_path: Path,
    backport: str,
    version: str | None,
    disabled: set[str],
    status: Status,
    reason: str,
) -> None:
    (tmp_path / "fix.py").write_text("")
    (tmp_path / "m.yaml").write_text(MANIFEST)
    manifest = load_manifest(tmp_path / "m.yaml")
    decision = decide(
        manifest.get(backport),
        Version(version) if version else None,
        Switches(frozenset(disabled)),
        manifest.package,
    )
    assert decision.status is status
    assert reason in decision.reason


OPT_IN = "opt-in: enable it with BACKPORT_TOOL_ENABLE=optional"
OFF = "disabled by a switch: BACKPORT_TOOL_DISABLE, apply(disable=...) or --disable"


@pytest.mark.parametrize(
    ("version", "disabled", "enabled", "status", "reason"),
    [
        # Where it would apply, the switch decides.
        ("2.11.0", set(), set(), Status.DISABLED, OPT_IN),
        ("2.11.0", set(), {"optional"}, Status.READY, "inside applies_to"),
        ("2.11.0", set(), {"all"}, Status.READY, "inside applies_to"),
        # Elsewhere the version decides first, enabled or not: a refusal as
        # fixed upstream stays one, so that check tests the claim.
        ("2.12.0", set(), set(), Status.FIXED_UPSTREAM, ">= fixed_in 2.12.0"),
        ("2.12.0", set(), {"optional"}, Status.FIXED_UPSTREAM, ">= fixed_in 2.12.0"),
        ("2.13.0+cpu", set(), set(), Status.FIXED_UPSTREAM, ">= fixed_in 2.12.0"),
        ("2.10.0", set(), set(), Status.NOT_APPLICABLE, "outside applies_to"),
        (None, set(), set(), Status.NOT_APPLICABLE, "torch is not installed"),
        # BACKPORT_TOOL_DISABLE still comes before everything but retirement.
        ("2.12.0", {"optional"}, {"optional"}, Status.DISABLED, OFF),
        (None, {"all"}, set(), Status.DISABLED, OFF),
    ],
)
def test_decide_an_opt_in_backport(
    tmp_path: Path,
    version: str | None,
    disabled: set[str],
    enabled: set[str],
    status: Status,
    reason: str,
) -> None:
    (tmp_path / "fix.py").write_text("")
    (tmp_path / "m.yaml").write_text(MANIFEST)
    manifest = load_manifest(tmp_path / "m.yaml")
    decision = decide(
        manifest.get("optional"),
        Version(version) if version else None,
        Switches(frozenset(disabled), frozenset(enabled)),
        manifest.package,
    )
    assert decision.status is status
    assert reason in decision.reason


FAITHFUL = "inductor-realize-on-reuse"
REFINED = "inductor-realize-on-reuse-refined"
TARGET = "torch._inductor.ir:StorageBox.should_realize_on_reuse"


@pytest.mark.parametrize("enabled", [set(), {FAITHFUL}, {REFINED}, {"all"}])
def test_the_bundled_set_refined_by_default_faithful_when_enabled(enabled: set[str]) -> None:
    manifest = load_manifest(default_manifest_path())
    decisions = decide_all(manifest, Version("2.11.0"), Switches(enabled=frozenset(enabled)))
    if enabled & {FAITHFUL, "all"}:
        # The enabled opt-in port takes the target from the default model.
        assert decisions[FAITHFUL].status is Status.READY
        assert decisions[REFINED].status is Status.DISABLED
        assert decisions[REFINED].reason == (
            f"opt-in backport {FAITHFUL} is enabled and replaces {TARGET} instead"
        )
    else:
        assert decisions[REFINED].status is Status.READY
        assert decisions[FAITHFUL].status is Status.DISABLED
        assert decisions[FAITHFUL].reason.startswith(
            f"opt-in: enable it with BACKPORT_TOOL_ENABLE={FAITHFUL},"
        )


@pytest.mark.parametrize("version", ["2.12.0", "2.13.0+cpu", "2.15.0"])
@pytest.mark.parametrize("enabled", [set(), {FAITHFUL}])
def test_the_bundled_faithful_port_is_fixed_upstream_past_2_12_enabled_or_not(
    version: str, enabled: set[str]
) -> None:
    manifest = load_manifest(default_manifest_path())
    decisions = decide_all(manifest, Version(version), Switches(enabled=frozenset(enabled)))
    assert decisions[FAITHFUL].status is Status.FIXED_UPSTREAM
    assert decisions[FAITHFUL].reason.endswith(
        ">= fixed_in 2.12.0: upstream is declared to include the fix"
    )
    assert decisions[REFINED].status is Status.NOT_APPLICABLE
    assert "outside applies_to" in decisions[REFINED].reason
