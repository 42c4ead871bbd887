"""decision.decide: the one answer to "does this backport apply to this version?"."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.version import Version

from backport_tool import Status, load_manifest
from backport_tool.config import Switches
from backport_tool.decision import decide

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
"""


@pytest.mark.parametrize(
    ("backport", "version", "disabled", "status", "reason"),
    [
        ("live", "2.11.0+cu130", set(), Status.READY, "inside applies_to"),
        ("live", "2.12.0rc1", set(), Status.FIXED_UPSTREAM, ">= fixed_in 2.12.0"),
        ("live", "2.10.0", set(), Status.NOT_APPLICABLE, "outside applies_to"),
        ("live", None, set(), Status.NOT_APPLICABLE, "torch is not installed"),
        ("live", "2.11.0", {"live"}, Status.DISABLED, "disabled by BACKPORT_TOOL_DISABLE"),
        ("live", None, {"all"}, Status.DISABLED, "disabled by BACKPORT_TOOL_DISABLE"),
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
