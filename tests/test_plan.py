"""The startup plan: only a plan for exactly this manifest and environment is used."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from backport_tool import Status, plan
from backport_tool.config import Switches
from backport_tool.manifest_file import ManifestFile

RAW = b"version: 1\npackage: torch\nbackports:\n  - id: one\n    summary: x\n  - id: 'two'\n"


def file(raw: bytes = RAW) -> ManifestFile:
    return ManifestFile(Path("m.yaml"), Path("/real/m.yaml"), raw)


def good() -> dict[str, Any]:
    entries = (
        plan.PlanEntry("one", Status.READY, "inside", ("torch._inductor.ir",)),
        plan.PlanEntry("two", Status.NOT_APPLICABLE, "outside", ()),
    )
    return plan.to_json(plan.Plan("torch", "2.11.0", entries), file(), Switches(frozenset({"x"})))


def test_a_plan_round_trips() -> None:
    loaded = plan.from_json(good(), file(), "2.11.0", Switches(frozenset({"x"})))
    assert loaded is not None
    assert [(e.id, e.status) for e in loaded.entries] == [
        ("one", Status.READY),
        ("two", Status.NOT_APPLICABLE),
    ]


@pytest.mark.parametrize(
    ("change", "version", "disabled"),
    [
        (lambda d: d["backports"].pop(), "2.11.0", {"x"}),  # incomplete
        (lambda d: d["backports"].append(dict(d["backports"][0])), "2.11.0", {"x"}),  # twice
        (lambda d: d["backports"][0].update(status="applied"), "2.11.0", {"x"}),
        (lambda d: d["backports"][0].update(modules=[]), "2.11.0", {"x"}),
        (lambda d: d["backports"][1].update(reason=None), "2.11.0", {"x"}),
        (lambda d: d.update(manifest_sha256="0" * 64), "2.11.0", {"x"}),
        (lambda d: d.update(format=2), "2.11.0", {"x"}),
        (lambda d: None, "2.12.0", {"x"}),  # another torch
        (lambda d: None, "2.11.0", set()),  # another disabled set
    ],
)
def test_anything_else_is_not_a_plan(change: Any, version: str, disabled: set[str]) -> None:
    data = good()
    change(data)
    assert plan.from_json(data, file(), version, Switches(frozenset(disabled))) is None


@pytest.mark.parametrize("data", [[], None, "x", 3, {"backports": None}])
def test_other_json_shapes_are_not_a_plan(data: object) -> None:
    assert plan.from_json(data, file(), "2.11.0", Switches()) is None


def test_a_manifest_whose_ids_cannot_be_read_without_yaml_is_never_trusted() -> None:
    # Flow style: the quick id scan finds nothing, so the cache never matches
    # and the plan is rebuilt every time (slower, never wrong).
    raw = b"{version: 1, package: torch, backports: [{id: one}]}"
    data = plan.to_json(
        plan.Plan("torch", None, (plan.PlanEntry("one", Status.DISABLED, "off", ()),)),
        file(raw),
        Switches(),
    )
    assert plan.from_json(data, file(raw), None, Switches()) is None
