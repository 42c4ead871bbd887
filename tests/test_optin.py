"""Opt-in backports: applied only when enabled, and never two of one target."""

from __future__ import annotations

import json
import os
import sys

import pytest
from helpers import PatchSet

import backport_tool
from backport_tool import Status, revert

ALT = """
def compute(self, x: int) -> int:
    return x + 7
"""


def two_of_one_target(patchset: PatchSet) -> None:
    patchset.write_backport("alt.py", ALT)
    patchset.add("default-fix", "Widget.compute")
    patchset.add("opt-fix", "Widget.compute", module="backports/alt.py", opt_in=True)


def test_an_opt_in_backport_is_disabled_until_enabled(patchset: PatchSet) -> None:
    two_of_one_target(patchset)
    manifest = patchset.write()
    module = patchset.target()
    report = backport_tool.apply(manifest, eager=True)
    assert report.by_id("opt-fix").status is Status.DISABLED
    assert report.by_id("opt-fix").reason == (
        "opt-in: enable it with BACKPORT_TOOL_ENABLE=opt-fix, apply(enable=['opt-fix']) or "
        "--enable opt-fix"
    )
    assert module.Widget().compute(1) == 1001  # the default one
    revert()


@pytest.mark.parametrize("how", ["env", "library", "all"])
def test_an_enabled_opt_in_backport_takes_the_target_from_the_default(
    patchset: PatchSet, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    two_of_one_target(patchset)
    manifest = patchset.write()
    module = patchset.target()
    if how == "env":
        monkeypatch.setenv("BACKPORT_TOOL_ENABLE", "OPT-FIX")
        report = backport_tool.apply(manifest)
    elif how == "all":
        monkeypatch.setenv("BACKPORT_TOOL_ENABLE", "all")
        report = backport_tool.apply(manifest)
    else:
        report = backport_tool.apply(manifest, enable=["opt-fix"])
    assert report.by_id("opt-fix").status is Status.APPLIED
    assert report.by_id("default-fix").status is Status.DISABLED
    assert report.by_id("default-fix").reason == (
        f"opt-in backport opt-fix is enabled and replaces {patchset.sym('Widget.compute')} instead"
    )
    assert module.Widget().compute(1) == 8
    revert()


def test_disable_wins_over_enable(patchset: PatchSet, monkeypatch: pytest.MonkeyPatch) -> None:
    two_of_one_target(patchset)
    monkeypatch.setenv("BACKPORT_TOOL_DISABLE", "opt-fix")
    report = backport_tool.apply(patchset.write(), eager=True, enable=["opt-fix"])
    assert (
        report.by_id("opt-fix").reason
        == "disabled by a switch: BACKPORT_TOOL_DISABLE, apply(disable=...) or --disable"
    )
    assert report.by_id("default-fix").status is Status.APPLIED
    revert()


def test_two_enabled_opt_in_backports_of_one_target_conflict(patchset: PatchSet) -> None:
    two_of_one_target(patchset)
    patchset.add("opt-two", "Widget.compute", module="backports/alt.py", opt_in=True)
    module = patchset.target()
    report = backport_tool.apply(patchset.write(), eager=True, enable=["all"])
    for backport_id in ("opt-fix", "opt-two"):
        result = report.by_id(backport_id)
        assert result.status is Status.FAILED
        assert result.reason == (
            "opt-in backports opt-fix and opt-two are both enabled and both replace "
            f"{patchset.sym('Widget.compute')}; enable one of them"
        )
    assert report.by_id("default-fix").status is Status.APPLIED
    assert module.Widget().compute(1) == 1001
    revert()


def test_enable_on_the_cli(patchset: PatchSet) -> None:
    two_of_one_target(patchset)
    manifest = str(patchset.write())
    proc = patchset.cli("check", "--json", "--enable", "opt-fix", "--manifest", manifest)
    assert proc.returncode == 0, proc.stderr
    statuses = {b["id"]: b["status"] for b in json.loads(proc.stdout)["backports"]}
    assert statuses == {"default-fix": "disabled", "opt-fix": "ready"}
    code = f"import {patchset.module} as m; print(m.Widget().compute(1))"
    proc = patchset.cli(
        "apply", "--enable", "opt-fix", "--manifest", manifest, "--", sys.executable, "-c", code
    )
    assert (proc.returncode, proc.stdout) == (0, "8\n"), proc.stderr


def test_opt_in_must_be_a_boolean(patchset: PatchSet) -> None:
    patchset.add("fix", "Widget.compute", opt_in="yes")
    with pytest.raises(backport_tool.ManifestError) as raised:
        backport_tool.load_manifest(patchset.write())
    assert raised.value.problems[0].endswith(
        "backports[0].opt_in: expected true or false, got 'yes'"
    )


def test_the_switches_exported_for_children_do_not_switch_this_process(
    patchset: PatchSet,
) -> None:
    from backport_tool.config import switches

    two_of_one_target(patchset)
    backport_tool.apply(patchset.write(), enable=["opt-fix"])
    # Children get the opt-in through the environment; this process's own
    # later apply() calls still start from the switches it was started with.
    assert os.environ["BACKPORT_TOOL_ENABLE"] == "opt-fix"
    assert switches().enabled == frozenset()
    revert()
