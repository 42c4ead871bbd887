"""The refined realize-on-reuse model on the real torch 2.11.0: the bundled patch
set applies it by default, it gives the target to the faithful port only when
that opt-in port is enabled, and each of its rules decides as measured, in real
compiles."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import torch

pytestmark = pytest.mark.torch211

torch = pytest.importorskip("torch")

import backport_tool  # noqa: E402
from backport_tool import Status  # noqa: E402

FAITHFUL = "inductor-realize-on-reuse"
REFINED = "inductor-realize-on-reuse-refined"


@pytest.fixture
def refined() -> Iterator[backport_tool.Report]:
    report = backport_tool.apply(eager=True)  # the default: no switch needed
    assert report.by_id(REFINED).status is Status.APPLIED, report
    yield report
    backport_tool.revert()


def decide(fn: Callable[..., Any], *args: torch.Tensor) -> list[tuple[int, bool, bool, bool]]:
    """(users, 2.11, faithful, refined) for each decision of a real compile of
    ``fn``, whose outputs must equal eager's."""
    from realize_probe import fresh_compile, record_decisions

    with record_decisions() as decisions:
        out = fresh_compile(fn, *args)
    for got, want in zip(out, fn(*args), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    return [(d.users, d.original, d.models["faithful"], d.models["refined"]) for d in decisions]


def test_applied_by_default_and_the_faithful_port_takes_over_only_when_enabled() -> None:
    from torch._inductor.ir import StorageBox

    original = StorageBox.__dict__["should_realize_on_reuse"]
    default = backport_tool.check()
    assert default.by_id(REFINED).status is Status.READY
    assert default.by_id(FAITHFUL).status is Status.DISABLED
    assert (default.by_id(FAITHFUL).reason or "").startswith(
        f"opt-in: enable it with BACKPORT_TOOL_ENABLE={FAITHFUL},"
    )

    report = backport_tool.apply(eager=True)
    try:
        assert report.by_id(REFINED).status is Status.APPLIED
        assert report.by_id(FAITHFUL).status is Status.DISABLED
        installed = StorageBox.__dict__["should_realize_on_reuse"]
        assert installed.__module__ == "_backport_tool_bp_inductor_realize_on_reuse_refined"
        assert [a.id for a in backport_tool.applied()] == [REFINED]
    finally:
        backport_tool.revert()
    assert StorageBox.__dict__["should_realize_on_reuse"] is original

    report = backport_tool.apply(eager=True, enable=[FAITHFUL])
    try:
        assert report.by_id(FAITHFUL).status is Status.APPLIED
        assert report.by_id(REFINED).status is Status.DISABLED
        assert report.by_id(REFINED).reason == (
            f"opt-in backport {FAITHFUL} is enabled and replaces "
            "torch._inductor.ir:StorageBox.should_realize_on_reuse instead"
        )
        installed = StorageBox.__dict__["should_realize_on_reuse"]
        assert installed.__module__ == "_backport_tool_bp_inductor_realize_on_reuse"
        assert [a.id for a in backport_tool.applied()] == [FAITHFUL]
    finally:
        backport_tool.revert()
    assert StorageBox.__dict__["should_realize_on_reuse"] is original


def test_selftest_passes_with_the_refined_model_in_force() -> None:
    result = backport_tool.check(selftest=True).by_id(REFINED)
    assert (result.status, result.selftest) == (Status.READY, "passed"), result


def across_axes(*t: torch.Tensor) -> Any:
    # A value of len(t) reads (products of pairs), summed over rows and over
    # columns (two kernels) and scaled.
    x = t[0] * t[1]
    for i in range(2, len(t), 2):
        x = x + t[i] * t[i + 1]
    return x.sum(0), x.sum(1), x * 2


def test_a_value_reduced_over_both_axes_is_realized(refined: backport_tool.Report) -> None:
    # 256x256 fp32, 256 KiB per tensor: inlined, the 4 inputs are read by 3
    # users; realized, once, then the value is written once and read 3 times.
    # It saves 4 * 256 KiB, far above the 64 KiB a CPU kernel is charged.
    assert decide(across_axes, *(torch.randn(256, 256) for _ in range(4))) == [
        (3, False, True, True)
    ]


def test_below_a_kernel_launch_of_bytes_2_11_decides(refined: backport_tool.Report) -> None:
    # 32x32 fp32: the byte model saves 16 KiB (4 reads) or 32 KiB (6 reads)
    # by realizing, less than one CPU kernel: 2.11's read count decides, and
    # the byte model's choice is taken only where it agrees.
    small = (32, 32)
    assert decide(across_axes, *(torch.randn(small) for _ in range(4))) == [(3, False, True, False)]
    assert decide(across_axes, *(torch.randn(small) for _ in range(6))) == [(3, True, True, True)]


def test_users_of_one_kernel_keep_the_2_11_rule(refined: backport_tool.Report) -> None:
    def four_reads(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, d: torch.Tensor) -> Any:
        x = a * b + c * d
        return x * 2, x - 1, x.sum(-1), x.amax(-1)

    def six_reads(*t: torch.Tensor) -> Any:
        x = t[0] * t[1] + t[2] * t[3] + t[4] * t[5]
        return x * 2, x - 1, x.sum(-1)

    # Pointwise users and reductions over the last dimension fuse into one
    # kernel: the byte model's savings are not real there, 2.11's read count
    # decides (4 reads: inline, as 2.11; 6 reads: realize, as 2.11).
    big = (512, 512)
    assert decide(four_reads, *(torch.randn(big) for _ in range(4))) == [(4, False, True, False)]
    assert decide(six_reads, *(torch.randn(big) for _ in range(6))) == [(3, True, True, True)]


def test_the_fp32_residual_norm_near_tie_stays_inline(refined: backport_tool.Report) -> None:
    def fn(x: torch.Tensor, residual: torch.Tensor) -> Any:
        h = x + residual
        return h * (h.pow(2).mean(-1, keepdim=True) + 1e-6).rsqrt(), h.amax(-1)

    decisions = decide(fn, torch.randn(512, 1024), torch.randn(512, 1024))
    # The sum of two fp32 inputs, reused 3 times: a tie of the byte model.
    assert (3, False, True, False) in decisions
    assert not any(refined for *_, refined in decisions)


def test_a_cheap_value_with_broadcast_reads_is_inlined_as_by_the_port(
    refined: backport_tool.Report,
) -> None:
    def fn(*v: torch.Tensor) -> Any:
        x = (v[0][:, None] * v[1][None, :] + v[2][:, None] - v[3][None, :]) * v[4][:, None]
        return x.sum(0), x.sum(1), x.amax(1)

    rows, cols = 512, 1024
    decisions = decide(fn, *(torch.randn(n) for n in (rows, cols, rows, cols, rows)))
    # 5 reads: 2.11 realizes; the byte model and the refined model inline.
    assert (3, True, False, False) in decisions


@pytest.mark.parametrize(
    ("rows", "cols", "expected"),
    [
        (16384, 512, True),  # as Inductor's MixOrderReduction.can_fuse would fuse
        (8192, 4096, True),  # multiread-cross-axes at 8192 tokens
        (2048, 4096, False),  # fewer than 4096 rows
        (4096, 4096, False),  # fewer than 2 rows per column
        (8192, 512, False),  # under 5 Mi elements
    ],
)
def test_reductions_over_both_axes_of_a_large_value_are_a_mix_order_candidate(
    refined: backport_tool.Report, rows: int, cols: int, expected: bool
) -> None:
    from torch._inductor.ir import StorageBox

    candidate = StorageBox.__dict__["should_realize_on_reuse"].__globals__["mix_order_candidate"]
    answers: list[tuple[int, bool]] = []
    real_mark_reuse = StorageBox.mark_reuse

    def mark_reuse(box: StorageBox, users: int) -> None:
        answers.append((users, candidate(box, users)))
        real_mark_reuse(box, users)

    def fn(a: torch.Tensor, b: torch.Tensor) -> Any:
        x = a * b + 1
        return x.sum(0), x.sum(1), x * 2

    StorageBox.mark_reuse = mark_reuse  # type: ignore[method-assign,assignment]
    try:
        decide(fn, torch.randn(rows, cols), torch.randn(rows, cols))
    finally:
        StorageBox.mark_reuse = real_mark_reuse  # type: ignore[method-assign]
    # On the GPU only: the CPU backend has no mix-order reductions, and the
    # refined model asks this only for GPU values.
    assert answers == [(3, expected)]
