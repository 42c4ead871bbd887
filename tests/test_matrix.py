"""``matrix`` over synthetic versions of a fake package: the columns of every
version read, opt-in backports as if enabled, ``--strict`` and ``--supported``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import BACKPORT_SOURCE, TARGET_SOURCE, PatchSet

from backport_tool import Status, check, lock
from backport_tool.cli import main
from backport_tool.matrix import build_matrix

PROBE = """

def upstream_probe(symbol, source):
    if "a * b" in source:
        return True, "multiplies"
    if "a + b" in source:
        return False, "still adds"
    return None, "cannot tell"
"""

WITH_ALIAS = TARGET_SOURCE + "\nALIAS = free_function\n"
# The next major version: free_function gained a default, lost its alias, and
# Widget.helper (a required symbol) is gone.
CHANGED = TARGET_SOURCE.replace("def free_function(a, b=2):", "def free_function(a, b=3):").replace(
    "    @staticmethod\n    def helper(x: int) -> int:\n        return x * 2\n", ""
)


def version_tree(root: Path, patchset: PatchSet, version: str, source: str) -> str:
    tree = root / f"v{version}"
    tree.mkdir()
    (tree / f"{patchset.module}.py").write_text(source)
    (tree / "version.txt").write_text(f"{version}\n")
    return str(tree)


@pytest.fixture
def locked(patchset: PatchSet) -> Path:
    # free_function with a declared copy and a required symbol, recorded
    # (signature, fingerprint, copies) from 1.5.0, where it applies.
    patchset.write_backport("fix.py", BACKPORT_SOURCE + PROBE)
    (patchset.site / f"{patchset.module}.py").write_text(WITH_ALIAS)
    patchset.add("fix", "free_function", requires=[patchset.sym("Widget.helper")])
    patchset.add("old", "Widget.other", status="retired", retired_reason="fixed in 1.2")
    manifest = patchset.write()
    lock(manifest, source=str(patchset.site))
    assert f'- "{patchset.sym("ALIAS")}"' in manifest.read_text()
    return manifest


def test_columns_are_read_outside_applies_to(
    locked: Path, patchset: PatchSet, tmp_path: Path
) -> None:
    old = version_tree(tmp_path, patchset, "0.9.0", WITH_ALIAS)
    new = version_tree(tmp_path, patchset, "2.5.0", CHANGED)
    matrix = build_matrix([new, str(patchset.site), old], locked)
    sym = patchset.sym
    assert matrix.rows("fix") == [
        ("0.9.0", "not-applicable", "-", "found", "match", "match", "1/1", "not-fixed", "1/1"),
        ("1.5.0", "ready", "-", "found", "match", "match", "1/1", "not-fixed", "1/1"),
        (
            "2.5.0",
            "not-applicable",
            "-",
            "found",
            "drift: (a, b=3)",
            "differs",
            f"0/1 (missing: {sym('ALIAS')})",
            "not-fixed",
            f"0/1 (missing: {sym('Widget.helper')})",
        ),
    ]
    # A retired entry is a record: nothing of it is read.
    assert matrix.rows("old") == [
        (v, "retired", "-", "-", "-", "-", "-", "-", "-") for v in ("0.9.0", "1.5.0", "2.5.0")
    ]
    outside = matrix.reports[2].by_id("fix")
    assert outside.status is Status.NOT_APPLICABLE
    assert outside.reason == f"{patchset.dist} 2.5.0 is outside applies_to '>=1.0,<2.0'"
    assert matrix.cells[2]["fix"].inside == ()
    assert matrix.cells[2]["fix"].drift == (
        f"target {sym('free_function')} has signature (a, b=3)",
        f"target {sym('free_function')} fingerprint differs",
        f"declared copy {sym('ALIAS')} of {sym('free_function')} missing",
        f"required symbol {sym('Widget.helper')} missing",
    )
    assert matrix.problems() == []
    # check --source itself still stops at the version gate.
    assert check(locked, source=new).by_id("fix").targets == ()


def test_an_undeclared_copy_and_a_created_attribute(patchset: PatchSet, tmp_path: Path) -> None:
    patchset.write_backport("fix.py", BACKPORT_SOURCE + "\n\ndef extra(self):\n    return 1\n")
    patchset.add("fix", "free_function")
    created = patchset.add("new-attr", "Widget.extra")
    created["targets"][0]["create"] = True
    manifest = patchset.write()
    aliased = version_tree(tmp_path, patchset, "2.0.0", WITH_ALIAS)
    grown = version_tree(
        tmp_path,
        patchset,
        "2.1.0",
        TARGET_SOURCE.replace("class Widget(Base):\n", "class Widget(Base):\n    extra = 1\n"),
    )
    matrix = build_matrix([str(patchset.site), aliased, grown], manifest)
    assert [row[3:7] for row in matrix.rows("fix")] == [
        ("found", "-", "-", "0/0"),
        ("found", "-", "-", f"0/0 (undeclared: {patchset.sym('ALIAS')})"),
        ("found", "-", "-", "0/0"),
    ]
    # create: true wants the attribute absent; present, it is news.
    assert [row[3] for row in matrix.rows("new-attr")] == [
        "Widget.extra to create",
        "Widget.extra to create",
        "Widget.extra exists",
    ]
    assert matrix.cells[2]["new-attr"].drift == (
        f"target {patchset.sym('Widget.extra')} exists already (create: true)",
    )


def test_a_conditional_copy_a_version_leaves_out_is_no_drift(
    patchset: PatchSet, tmp_path: Path
) -> None:
    # One version binds ALIAS, the next does not: declared conditional, as
    # for a range, neither column is drift (check --source agrees).
    entry = patchset.add("fix", "free_function")
    entry["targets"][0]["conditional_copies"] = [patchset.sym("ALIAS")]
    manifest = patchset.write()
    sources = [
        version_tree(tmp_path, patchset, "1.5.0", WITH_ALIAS),
        version_tree(tmp_path, patchset, "1.6.0", TARGET_SOURCE),
    ]
    matrix = build_matrix(sources, manifest)
    assert [cell["fix"].drift for cell in matrix.cells] == [(), ()]
    assert main(_matrix(manifest, "--strict", "--source", sources[0], "--source", sources[1])) == 0


def test_an_opt_in_backport_shows_what_it_would_do_if_enabled(
    patchset: PatchSet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    patchset.add("default", "Widget.compute", signature="(self, x: int) -> int")
    patchset.add("port", "Widget.compute", opt_in=True, signature="(self, x: int) -> int")
    manifest = patchset.write()
    drifted = version_tree(
        tmp_path,
        patchset,
        "1.6.0",
        TARGET_SOURCE.replace("def compute(self, x: int)", "def compute(self, x: int, *, y=1)"),
    )
    outside = version_tree(tmp_path, patchset, "2.0.0", TARGET_SOURCE)
    matrix = build_matrix([str(patchset.site), drifted, outside], manifest)
    drift = "drift: (self, x: int, *, y=1) -> int"
    assert [row[:5] for row in matrix.rows("port")] == [
        ("1.5.0", "disabled (opt-in; enabled: ready)", "-", "found", "match"),
        ("1.6.0", "disabled (opt-in; enabled: drift)", "-", "found", drift),
        # The version decides first: enabling changes nothing there.
        ("2.0.0", "not-applicable", "-", "found", "match"),
    ]
    assert [row[:2] for row in matrix.rows("default")] == [
        ("1.5.0", "ready"),
        ("1.6.0", "drift"),
        ("2.0.0", "not-applicable"),
    ]
    enabled = matrix.cells[0]["port"].if_enabled
    assert enabled is not None
    assert enabled.reason == "would apply: targets found, signatures match"
    assert matrix.cells[2]["port"].if_enabled is None
    # The JSON output carries the same, per version and backport.
    code = main(["matrix", "--json", "--manifest", str(manifest), "--source", str(patchset.site)])
    assert code == 0
    (version,) = json.loads(capsys.readouterr().out)["versions"]
    port = version["backports"][1]
    assert (port["id"], port["status"], port["if_enabled"]["status"]) == (
        "port",
        "disabled",
        "ready",
    )
    assert port["if_enabled"]["reason"] == enabled.reason


def _matrix(manifest: Path, *args: str) -> list[str]:
    return ["matrix", "--manifest", str(manifest), *args]


@pytest.fixture
def drifting(patchset: PatchSet, tmp_path: Path) -> tuple[Path, str, str]:
    # fix applies to 1.x; 1.6.0 and 2.5.0 change its target's signature.
    patchset.add("fix", "free_function", signature="(a, b=2)")
    manifest = patchset.write()
    changed = TARGET_SOURCE.replace("def free_function(a, b=2):", "def free_function(a, b=3):")
    inside = version_tree(tmp_path, patchset, "1.6.0", changed)
    outside = version_tree(tmp_path, patchset, "2.5.0", changed)
    return manifest, inside, outside


def test_strict_fails_on_drift_inside_applies_to(
    drifting: tuple[Path, str, str], patchset: PatchSet, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest, inside, outside = drifting
    sources = ["--source", inside, "--source", outside]
    assert main(_matrix(manifest, *sources)) == 0
    capsys.readouterr()
    assert main(_matrix(manifest, "--strict", *sources)) == 1
    assert capsys.readouterr().err.splitlines() == [
        "backport-tool: matrix --strict: drift where applies_to or --supported allows the version:",
        f"  fix on 1.6.0 (inside applies_to): target {patchset.sym('free_function')} has "
        "signature (a, b=3)",
    ]


def test_strict_passes_when_drift_is_only_outside_the_ranges(
    drifting: tuple[Path, str, str], patchset: PatchSet, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest, _, outside = drifting
    sources = ["--source", str(patchset.site), "--source", outside]
    assert main(_matrix(manifest, "--strict", *sources)) == 0
    assert capsys.readouterr().err == ""
    # Supported, 2.5.0's drift counts.
    assert (
        main(_matrix(manifest, "--strict", "--supported", f"{patchset.dist}>=1.5", *sources)) == 1
    )
    out, err = capsys.readouterr()
    assert err.splitlines() == [
        "backport-tool: matrix --strict: drift where applies_to or --supported allows the version:",
        f"  fix on 2.5.0 (inside --supported): target {patchset.sym('free_function')} has "
        "signature (a, b=3)",
    ]
    assert "| 2.5.0 |" not in out  # text, not markdown
    assert main(_matrix(manifest, "--strict", "--supported", "<1.0", *sources)) == 0


def test_strict_ignores_the_drift_of_a_confirmed_upstream_fix(
    patchset: PatchSet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    patchset.write_backport("fix.py", BACKPORT_SOURCE + PROBE)
    patchset.add("fix", "free_function", signature="(a, b=2)", fixed_in="2.0.0")
    manifest = patchset.write()
    old = "def free_function(a, b=2):\n    return a + b\n"
    new = "def free_function(a, b=3):\n    return a {} b\n"
    fixed = version_tree(tmp_path, patchset, "2.5.0", TARGET_SOURCE.replace(old, new.format("*")))
    unfixed = version_tree(tmp_path, patchset, "2.6.0", TARGET_SOURCE.replace(old, new.format("+")))
    supported = ["--strict", "--supported", ">=1.5"]
    assert main(_matrix(manifest, *supported, "--source", fixed)) == 0
    row = capsys.readouterr().out.splitlines()[-1].split()
    assert row[:5] == ["2.5.0", "fixed-upstream", "confirmed", "found", "drift:"]
    assert main(_matrix(manifest, *supported, "--source", fixed, "--source", unfixed)) == 1
    assert capsys.readouterr().err.splitlines()[1:] == [
        f"  fix on 2.6.0 (inside --supported): target {patchset.sym('free_function')} has "
        "signature (a, b=3)",
    ]


def test_strict_json_lists_the_ranges_and_the_drift(
    drifting: tuple[Path, str, str], patchset: PatchSet, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest, inside, outside = drifting
    args = ["--json", "--strict", "--supported", ">=2", "--source", inside, "--source", outside]
    assert main(_matrix(manifest, *args)) == 1
    data = json.loads(capsys.readouterr().out)
    assert (data["format"], data["command"], data["manifest"]) == (1, "matrix", str(manifest))
    assert data["supported"] == ">=2"
    entries = [v["backports"][0] for v in data["versions"]]
    assert [(v["version"], v["backports"][0]["status"]) for v in data["versions"]] == [
        ("1.6.0", "drift"),
        ("2.5.0", "not-applicable"),
    ]
    assert [e["inside"] for e in entries] == [["applies_to"], ["supported"]]
    # What check --supported says of it, the same on every version read.
    retire = "retire: outside every supported version (>=2; applies_to >=1.0,<2.0)"
    assert [e["retire"] for e in entries] == [retire, retire]
    signature = f"target {patchset.sym('free_function')} has signature (a, b=3)"
    assert [e["drift"] for e in entries] == [[signature], [signature]]
    assert entries[1]["targets"][0]["signature_matches"] is False
    assert entries[1]["copies"] == [
        {"symbol": patchset.sym("free_function"), "declared": [], "missing": [], "undeclared": []}
    ]
    assert entries[1]["if_enabled"] is None


@pytest.mark.parametrize(
    ("supported", "message"),
    [
        (
            "not a range!",
            "--supported 'not a range!' is neither a requirement like '{dist}>=2.12,<2.14' "
            "nor a specifier set like '>=2.12,<2.14'",
        ),
        ("numpy>=1.0", "--supported names 'numpy', but the manifest gates on '{dist}'"),
    ],
)
def test_supported_that_cannot_be_read_is_a_usage_error(
    patchset: PatchSet, capsys: pytest.CaptureFixture[str], supported: str, message: str
) -> None:
    patchset.add("fix", "free_function")
    manifest = patchset.write()
    args = _matrix(manifest, "--supported", supported, "--source", str(patchset.site))
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"backport-tool: error: {message.format(dist=patchset.dist)}\n"


def test_markdown_has_the_copies_column(
    patchset: PatchSet, capsys: pytest.CaptureFixture[str]
) -> None:
    patchset.add("fix", "Widget.compute", signature="(self, x: int) -> int")
    manifest = patchset.write()
    args = _matrix(manifest, "--format", "markdown", "--source", str(patchset.site))
    assert main(args) == 0
    assert capsys.readouterr().out.splitlines() == [
        "### fix",
        "",
        "| version | status | upstream claim | targets | signature | fingerprint | copies | probe "
        "| requires |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        "| 1.5.0 | ready | - | found | match | - | 0/0 | - | 0/0 |",
    ]


def test_a_refused_backport_whose_module_raises_reads_probe_unknown(
    patchset: PatchSet, tmp_path: Path
) -> None:
    patchset.write_backport("fix.py", "raise RuntimeError('only on 1.x')\n")
    patchset.add("fix", "free_function", signature="(a, b=2)")
    manifest = patchset.write()
    outside = version_tree(tmp_path, patchset, "2.0.0", TARGET_SOURCE)
    (row,) = build_matrix([outside], manifest).rows("fix")
    assert row == ("2.0.0", "not-applicable", "-", "found", "match", "-", "0/0", "unknown", "0/0")
