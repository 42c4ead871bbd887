"""The upgrade matrix of the shipped backport over the real torch wheels 2.10.0
to 2.15.0, read statically. scripts/run-tests downloads the wheels (see
scripts/fetch-wheels) and points BACKPORT_TOOL_WHEELS at them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import write_patch_set
from packaging.specifiers import SpecifierSet

from backport_tool import Probe, Status, check, load_manifest, lock
from backport_tool.matrix import build_matrix

WHEELS = os.environ.get("BACKPORT_TOOL_WHEELS")

pytestmark = pytest.mark.skipif(
    not WHEELS, reason="set BACKPORT_TOOL_WHEELS to a directory from scripts/fetch-wheels"
)

DRIFT = "drift: (self, users: int, *, graph_reuse: bool = True) -> bool"
NO_HINT = "(missing: torch._inductor.sizevars:SizeVarAllocator.optimization_hint)"

# Every version is read, also where the version refuses a backport. The
# faithful port is opt-in: on 2.11.0, where it would apply, it is disabled (the
# matrix enables nothing) and shown as it would be enabled; from 2.12.0 the
# version refuses it first, and the claim is checked against the code. 2.10.0
# lacks a required symbol; its target is 2.11.0's.
TRUTH = [
    (
        "2.10.0",
        "not-applicable",
        "-",
        "found",
        "match",
        "match",
        "0/0",
        "not-fixed",
        f"16/17 {NO_HINT}",
    ),
    (
        "2.11.0",
        "disabled (opt-in; enabled: ready)",
        "-",
        "found",
        "match",
        "match",
        "0/0",
        "not-fixed",
        "17/17",
    ),
    (
        "2.12.0",
        "fixed-upstream",
        "contradicted",
        "found",
        "match",
        "match",
        "0/0",
        "not-fixed",
        "17/17",
    ),
    *[
        (
            v,
            "fixed-upstream",
            "contradicted",
            "found",
            DRIFT,
            "differs",
            "0/0",
            "not-fixed",
            "17/17",
        )
        for v in ("2.13.0", "2.14.0", "2.14.1", "2.15.0")
    ],
]
# The default on torch 2.11, and on 2.11 only (no probe: not an upstream fix).
REFINED_TRUTH = [
    ("2.10.0", "not-applicable", "-", "found", "match", "match", "0/0", "-", f"21/22 {NO_HINT}"),
    ("2.11.0", "ready", "-", "found", "match", "match", "0/0", "-", "22/22"),
    ("2.12.0", "not-applicable", "-", "found", "match", "match", "0/0", "-", "22/22"),
    *[
        (v, "not-applicable", "-", "found", DRIFT, "differs", "0/0", "-", "22/22")
        for v in ("2.13.0", "2.14.0", "2.14.1", "2.15.0")
    ],
]


def _wheels() -> list[str]:
    assert WHEELS is not None
    wheels = sorted(str(p) for p in Path(WHEELS).glob("torch-*.whl"))
    assert len(wheels) == 7, wheels
    return wheels


def test_matrix_of_released_wheels_matches_the_truth_table() -> None:
    matrix = build_matrix(_wheels())
    assert matrix.rows("inductor-realize-on-reuse") == TRUTH
    assert matrix.rows("inductor-realize-on-reuse-refined") == REFINED_TRUTH
    reason = matrix.reports[2].by_id("inductor-realize-on-reuse").reason
    assert reason == (
        "torch 2.12.0 >= fixed_in 2.12.0: upstream is declared to include the fix; but the code "
        "does not have the fix: torch._inductor.ir:StorageBox.should_realize_on_reuse decides "
        "from num_reads() > realize_reads_threshold and reads no buffer sizes: it is the "
        "read-count heuristic, without the cost model; the target's source is identical to the "
        "one the backport was written for (torch 2.11.0)"
    )
    # Only 2.11.0 is inside applies_to, and it does not drift.
    assert matrix.problems() == []


def test_matrix_strict_on_the_supported_versions_names_the_drift() -> None:
    # What `matrix --strict --supported 'torch>=2.11,<2.14'` exits 1 for.
    supported = SpecifierSet(">=2.11,<2.14")
    problems = build_matrix(_wheels(), supported=supported).problems()
    target = "torch._inductor.ir:StorageBox.should_realize_on_reuse"
    drift = (
        f"target {target} has signature (self, users: int, *, graph_reuse: bool = True) -> bool",
        f"target {target} fingerprint differs",
    )
    assert [(v, i, c.inside, c.drift) for v, i, c in problems] == [
        ("2.13.0", "inductor-realize-on-reuse", ("supported",), drift),
        ("2.13.0", "inductor-realize-on-reuse-refined", ("supported",), drift),
    ]


def test_enabled_the_faithful_port_verifies_on_the_2_11_wheel() -> None:
    # The matrix's "enabled: ready" for the opt-in port, in full.
    assert WHEELS is not None
    (wheel,) = Path(WHEELS).glob("torch-2.11.0-*.whl")
    report = check(source=str(wheel), enable=["inductor-realize-on-reuse"])
    result = report.by_id("inductor-realize-on-reuse")
    assert result.status is Status.READY
    assert result.reason == (
        "would apply: targets found, signatures match, fingerprints match, "
        "17 required symbols found"
    )
    assert result.probe is Probe.NOT_FIXED
    assert report.by_id("inductor-realize-on-reuse-refined").status is Status.DISABLED


def test_a_default_named_by_a_constant_reads_alike_live_and_from_the_wheel(
    tmp_path: Path,
) -> None:
    # SimpleElasticAgent.run(self, role: str = DEFAULT_ROLE): the live read
    # gives the value, 'default'. Locked live, the 2.11 wheel said drift.
    assert WHEELS is not None
    (wheel,) = Path(WHEELS).glob("torch-2.11.0-*.whl")
    manifest = write_patch_set(
        tmp_path,
        [
            {
                "id": "elastic-run",
                "summary": "a target whose default names a constant",
                "applies_to": ">=2.11,<2.12",
                "module": "backports/fix.py",
                "targets": [
                    {
                        "symbol": "torch.distributed.elastic.agent.server.api:"
                        "SimpleElasticAgent.run",
                        "replacement": "run",
                    }
                ],
            }
        ],
        {"fix.py": "def run(self, *args, **kwargs):\n    return None\n"},
    )
    lock(manifest)
    signature = load_manifest(manifest).get("elastic-run").targets[0].signature
    assert signature is not None
    assert "role: str = 'default'" in signature
    result = check(manifest, source=str(wheel)).by_id("elastic-run")
    assert result.status is Status.READY, result.reason
    assert result.targets[0].signature_matches is True
