"""The faithful port of the cost model on the real torch 2.11.0. It is opt-in in the
bundled patch set, so every test here enables it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import torch

pytestmark = pytest.mark.torch211

torch = pytest.importorskip("torch")

import backport_tool  # noqa: E402
from backport_tool import Status  # noqa: E402

BACKPORT = "inductor-realize-on-reuse"
ENABLE = [BACKPORT]


@pytest.fixture
def applied_patch() -> Iterator[backport_tool.Report]:
    report = backport_tool.apply(eager=True, enable=ENABLE)
    yield report
    backport_tool.revert()


def test_check_reports_ready_with_every_symbol_verified() -> None:
    result = backport_tool.check(enable=ENABLE).by_id(BACKPORT)
    assert result.status is Status.READY
    assert result.reason == (
        "would apply: targets found, signatures match, fingerprints match, "
        "17 required symbols found"
    )
    (target,) = result.targets
    assert target.actual_signature == "(self, users: int) -> bool"
    assert target.defined_on == "torch._inductor.ir:StorageBox"


def test_apply_replaces_the_heuristic_and_revert_restores_it() -> None:
    from torch._inductor.ir import StorageBox

    original = StorageBox.__dict__["should_realize_on_reuse"]
    report = backport_tool.apply(eager=True, enable=ENABLE)
    try:
        assert report.by_id(BACKPORT).status is Status.APPLIED
        assert report.version == "2.11.0"
        replacement = StorageBox.__dict__["should_realize_on_reuse"]
        assert replacement is not original
        assert replacement.__module__ == "_backport_tool_bp_inductor_realize_on_reuse"
        assert [a.id for a in backport_tool.applied()] == [BACKPORT]
    finally:
        assert backport_tool.revert() == (BACKPORT,)
    assert StorageBox.__dict__["should_realize_on_reuse"] is original


def test_patched_compile_flips_a_realize_decision_and_matches_eager() -> None:
    from realize_probe import four_read_pointwise_three_users, fresh_compile, record_decisions

    args = [torch.randn(256, 512) for _ in range(4)]
    expected = four_read_pointwise_three_users(*args)

    with record_decisions() as unpatched:
        fresh_compile(four_read_pointwise_three_users, *args)
    # Unpatched, the installed heuristic is the original: no disagreement.
    assert unpatched
    assert all(d.original == d.installed for d in unpatched)

    assert backport_tool.apply(eager=True, enable=ENABLE).by_id(BACKPORT).status is Status.APPLIED
    try:
        with record_decisions() as patched:
            out = fresh_compile(four_read_pointwise_three_users, *args)
    finally:
        backport_tool.revert()

    flips = [d for d in patched if d.original != d.installed]
    assert len(flips) == 1
    assert (flips[0].users, flips[0].kind, flips[0].original, flips[0].installed) == (
        3,
        "Pointwise",
        False,
        True,
    )
    for got, want in zip(out, expected, strict=True):
        torch.testing.assert_close(got, want)


def test_cost_model_keeps_inlining_a_cheap_value_with_two_users(
    applied_patch: backport_tool.Report,
) -> None:
    from realize_probe import fresh_compile, record_decisions

    def fn(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # 2 reads, 2 users: 2N*(2-1) < N*(1+2), so inlining stays cheaper.
        x = a + b
        return x * 2, x - 1

    args = [torch.randn(64, 64) for _ in range(2)]
    with record_decisions() as decisions:
        out = fresh_compile(fn, *args)
    assert [(d.users, d.original, d.installed) for d in decisions] == [(2, False, False)]
    for got, want in zip(out, fn(*args), strict=True):
        torch.testing.assert_close(got, want)


def test_probe_reads_the_2_11_heuristic_as_not_fixed() -> None:
    result = backport_tool.check(enable=ENABLE).by_id(BACKPORT)
    assert result.probe is backport_tool.Probe.NOT_FIXED
    assert result.targets[0].fingerprint_matches is True


def test_selftest_compiles_with_the_patch_and_passes() -> None:
    result = backport_tool.check(selftest=True, enable=ENABLE).by_id(BACKPORT)
    assert (result.status, result.selftest, result.selftest_message) == (
        Status.READY,
        "passed",
        "passed",
    )


def test_lock_against_the_installed_2_11_keeps_the_shipped_fingerprint(tmp_path: Path) -> None:
    from backport_tool.locking import lock

    bundled = backport_tool.default_manifest_path()
    shutil.copytree(bundled.parent / "backports", tmp_path / "backports")
    shutil.copy(bundled, tmp_path / "manifest.yaml")
    entries = lock(tmp_path / "manifest.yaml")
    assert [e.action for e in entries] == ["unchanged", "unchanged"]
    assert (tmp_path / "manifest.yaml").read_text() == bundled.read_text()
