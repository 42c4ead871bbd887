"""Fingerprints, content probes, retired entries and static checks of other
versions, on synthetic packages."""

from __future__ import annotations

import functools
import shutil
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import BACKPORT_SOURCE, TARGET_SOURCE, PatchSet

import backport_tool
from backport_tool import Claim, Probe, Status, check, load_manifest, lock

PROBE = """

def upstream_probe(symbol, source):
    if "+ 1000" in source:
        return True, f"{symbol} already adds 1000"
    if "+ 1" in source:
        return False, f"{symbol} still adds 1"
    return None, "cannot tell"
"""

FIXED_TARGET = TARGET_SOURCE.replace("return x + 1\n", "return x + 1000\n")

# These tests are about verifying and patching, so they apply eagerly;
# test_lazy.py covers the deferred default.
apply = functools.partial(backport_tool.apply, eager=True)


def fingerprint(patchset: PatchSet) -> str:
    result = check(patchset.write()).by_id("fix")
    fp = result.targets[0].actual_fingerprint
    assert fp is not None
    return fp


def test_fingerprint_drift_names_the_target_and_recorded_versions(patchset: PatchSet) -> None:
    entry = patchset.add("fix", "Widget.compute")
    good = fingerprint(patchset)
    entry["targets"][0]["fingerprint"] = good
    assert check(patchset.write()).by_id("fix").status is Status.READY

    entry["targets"][0]["fingerprint"] = ["sha256:0000000000000000", "sha256:1111111111111111"]
    # Written by hand: no versions to name.
    assert check(patchset.write()).by_id("fix").reason == (
        f"target {patchset.sym('Widget.compute')} source fingerprint {good} is not the recorded "
        "sha256:0000000000000000 or sha256:1111111111111111; the code the backport replaces "
        "has changed"
    )
    entry["targets"][0]["recorded_from"] = ["1.4.0", "1.4.1"]
    result = apply(patchset.write()).by_id("fix")
    assert result.status is Status.DRIFT
    assert result.reason == (
        f"target {patchset.sym('Widget.compute')} source fingerprint {good} is not the recorded "
        f"sha256:0000000000000000 or sha256:1111111111111111 (recorded from {patchset.dist} "
        "1.4.0, 1.4.1); the code the backport replaces has changed"
    )
    assert patchset.target().Widget().compute(1) == 2


def test_a_list_of_equivalent_fingerprints_is_accepted(patchset: PatchSet) -> None:
    entry = patchset.add("fix", "Widget.compute")
    entry["targets"][0]["fingerprint"] = ["sha256:0000000000000000", fingerprint(patchset)]
    assert apply(patchset.write()).by_id("fix").status is Status.APPLIED


def test_probe_refuses_when_the_code_in_range_already_has_the_fix(patchset: PatchSet) -> None:
    patchset.write_backport("fix.py", BACKPORT_SOURCE + PROBE)
    (patchset.site / f"{patchset.module}.py").write_text(FIXED_TARGET)
    patchset.add("fix", "Widget.compute")
    result = apply(patchset.write()).by_id("fix")
    assert result.status is Status.FIXED_UPSTREAM
    assert result.probe is Probe.FIXED
    assert result.reason == (
        f"{patchset.dist} 1.5.0 is inside applies_to '>=1.0,<2.0', but the installed code "
        f"already has the fix: {patchset.sym('Widget.compute')} already adds 1000"
    )
    assert patchset.target().Widget().compute(1) == 1001  # the original, untouched


def test_probe_not_fixed_lets_it_apply(patchset: PatchSet) -> None:
    patchset.write_backport("fix.py", BACKPORT_SOURCE + PROBE)
    patchset.add("fix", "Widget.compute")
    result = apply(patchset.write()).by_id("fix")
    assert (result.status, result.probe) == (Status.APPLIED, Probe.NOT_FIXED)


@pytest.mark.parametrize(
    ("source", "claim", "tail"),
    [
        (
            TARGET_SOURCE,
            Claim.CONTRADICTED,
            "but the code does not have the fix: {sym} still adds 1",
        ),
        (FIXED_TARGET, Claim.CONFIRMED, "the code confirms it: {sym} already adds 1000"),
    ],
)
def test_check_verifies_fixed_in_against_the_code(
    patchset: PatchSet, source: str, claim: Claim, tail: str
) -> None:
    patchset.write_backport("fix.py", BACKPORT_SOURCE + PROBE)
    (patchset.site / f"{patchset.module}.py").write_text(source)
    patchset.add("fix", "Widget.compute", applies_to="<1.5", fixed_in="1.5.0")
    result = check(patchset.write()).by_id("fix")
    assert result.status is Status.FIXED_UPSTREAM
    assert result.upstream_claim is claim
    assert result.reason == (
        f"{patchset.dist} 1.5.0 >= fixed_in 1.5.0: upstream is declared to include the fix; "
        + tail.format(sym=patchset.sym("Widget.compute"))
    )
    assert result.to_dict()["upstream_claim"] == claim.value


def test_contradicted_claim_on_identical_code_says_so(patchset: PatchSet) -> None:
    patchset.write_backport("fix.py", BACKPORT_SOURCE + PROBE)
    entry = patchset.add("fix", "Widget.compute", applies_to="<1.5", fixed_in="1.5.0")
    patchset.set_version("1.4.0")
    entry["targets"][0]["fingerprint"] = fingerprint(patchset)
    entry["targets"][0]["recorded_from"] = ["1.4.0"]
    patchset.set_version("1.5.0")
    reason = check(patchset.write()).by_id("fix").reason
    # The versions are the manifest's package's, whatever its name.
    assert reason.endswith(
        f"the target's source is identical to the one the backport was written for "
        f"({patchset.dist} 1.4.0)"
    )


def test_retired_entries_are_documented_but_never_applied(patchset: PatchSet) -> None:
    patchset.add("fix", "Widget.compute", status="retired", retired_reason="fixed in 1.5")
    report = apply(patchset.write())
    assert report.by_id("fix").status is Status.RETIRED
    assert report.by_id("fix").reason == "retired: fixed in 1.5"
    assert report.exit_code == 0
    assert patchset.target().Widget().compute(1) == 2


def test_a_static_read_compares_what_calls_bind_not_how_aliases_are_spelled(
    patchset: PatchSet, tmp_path: Path
) -> None:
    # The live read evaluates the alias (int), the source spells it (Number):
    # check --source of the very same code said drift, and lock --source then
    # wrote the source's spelling, which the live check called drift.
    source = patchset.site / f"{patchset.module}.py"
    source.write_text(
        "Number = int\n\n\ndef free_function(a: Number, b: Number = 2) -> Number:\n"
        "    return a + b\n"
    )
    patchset.add("fix", "free_function")
    manifest = patchset.write()
    lock(manifest)
    recorded = "(a: int, b: int = 2) -> int"
    assert load_manifest(manifest).get("fix").targets[0].signature == recorded
    checked = check(manifest, source=str(patchset.site)).by_id("fix")
    assert checked.status is Status.READY, checked.reason
    assert checked.targets[0].signature_matches is True
    lock(manifest, source=str(patchset.site))
    assert load_manifest(manifest).get("fix").targets[0].signature == recorded
    # A change of what calls bind is still drift when read statically.
    source.write_text(source.read_text().replace("b: Number = 2", "c: Number = 2"))
    drift = check(manifest, source=str(patchset.site)).by_id("fix")
    assert drift.status is Status.DRIFT


@pytest.mark.parametrize(
    ("target", "recorded"),
    [
        ("free_function", "(a, role: str = 'default', size=(4, 'x'), *, at=1.5)"),
        ("Widget.compute", "(self, x: int = 3, again=None) -> int"),
    ],
)
def test_a_default_that_names_a_constant_reads_as_its_value_statically_too(
    patchset: PatchSet, target: str, recorded: str
) -> None:
    # The live read spells a default by its value's repr, the source by the
    # name it writes: check --source of the very same code said drift, and
    # lock --source wrote the name, which the live check called drift.
    (patchset.site / "fake_constants.py").write_text("SIZE = (4, 'x')\nAT = 1.5\n")
    source = patchset.site / f"{patchset.module}.py"
    source.write_text(
        "from fake_constants import SIZE\nimport fake_constants\n\nDEFAULT_ROLE = 'default'\n"
        "LIMIT = 99\n\n\n"
        "def free_function(a, role: str = DEFAULT_ROLE, size=SIZE, *, at=fake_constants.AT):\n"
        "    return a\n\n\n"
        "class Widget:\n    LIMIT = 3\n    NOTHING = None\n\n"
        "    def compute(self, x: int = LIMIT, again=NOTHING) -> int:\n        return x\n"
    )
    patchset.write_backport(
        "fix.py",
        "def free_function(*args, **kwargs):\n    return 0\n\n\n"
        "def compute(self, *args, **kwargs):\n    return 0\n",
    )
    patchset.add("fix", target)
    manifest = patchset.write()
    for locked_from in (None, str(patchset.site)):
        lock(manifest, source=locked_from)
        assert load_manifest(manifest).get("fix").targets[0].signature == recorded
        for read in (None, str(patchset.site)):
            checked = check(manifest, source=read).by_id("fix")
            assert checked.status is Status.READY, checked.reason
            assert checked.targets[0].signature_matches is True


def test_a_default_that_names_no_literal_stays_as_the_source_writes_it(
    patchset: PatchSet,
) -> None:
    source = patchset.site / f"{patchset.module}.py"
    source.write_text(
        "MARKER = object()\nLIMIT = 2 ** 3\n\n\n"
        "def free_function(a, marker=MARKER, limit=LIMIT, other=UNDEFINED):\n    return a\n"
    )
    patchset.add("fix", "free_function")
    manifest = patchset.write()
    lock(manifest, source=str(patchset.site))
    assert load_manifest(manifest).get("fix").targets[0].signature == (
        "(a, marker=MARKER, limit=LIMIT, other=UNDEFINED)"
    )


@pytest.mark.parametrize("where", ["target", "required"])
def test_a_source_file_that_cannot_be_parsed_fails_the_static_check(
    patchset: PatchSet, tmp_path: Path, where: str
) -> None:
    # A file of newer syntax than this Python parses (`type Num = int` on
    # 3.11) said "ready": nothing of the target was compared, and a changed
    # signature in it passed check --source --strict and matrix --strict.
    patchset.add("fix", "Widget.compute")
    if where == "required":
        patchset.backports[0]["requires"] = [f"{patchset.module}_extra:helper"]
        (patchset.site / f"{patchset.module}_extra.py").write_text("def helper():\n    pass\n")
    manifest = patchset.write()
    lock(manifest)
    assert check(manifest).by_id("fix").status is Status.READY
    other = tmp_path / "other"
    shutil.copytree(patchset.site, other)
    broken = other / (
        f"{patchset.module}_extra.py" if where == "required" else f"{patchset.module}.py"
    )
    broken.write_text(broken.read_text() + "\ntype Num = int\n" + "def (:\n")
    report = check(manifest, source=str(other))
    fix = report.by_id("fix")
    assert fix.status is Status.FAILED, fix.reason
    assert f"{broken.name} cannot be parsed" in fix.reason
    assert fix.reason.endswith("parses needs check --source run by a newer Python); not verified")
    assert report.exit_code == 1
    if where == "required":
        # Not read, so not missing either: matrix and JSON said missing.
        helper = f"{patchset.module}_extra:helper"
        assert (fix.requires_missing, fix.requires_failed) == ((), (helper,))
        assert fix.to_dict(details=True)["requires"] == {
            "total": 1,
            "missing": [],
            "failed": [helper],
            "unknown": [],
        }


def test_a_target_that_became_an_alias_of_a_moved_function_reads_as_that_function(
    patchset: PatchSet, tmp_path: Path
) -> None:
    # `free_function = _impl.free_function`: the live read finds the function,
    # the static read fingerprinted the assignment and said drift.
    patchset.add("fix", "free_function")
    manifest = patchset.write()
    lock(manifest)
    moved = tmp_path / "moved"
    shutil.copytree(patchset.site, moved)
    source = (patchset.site / f"{patchset.module}.py").read_text()
    (moved / f"{patchset.module}_impl.py").write_text(source)
    (moved / f"{patchset.module}.py").write_text(
        f"import {patchset.module}_impl as _impl\n\nfree_function = _impl.free_function\n"
    )
    fix = check(manifest, source=str(moved)).by_id("fix")
    assert fix.targets[0].fingerprint_matches is True
    assert fix.targets[0].signature_matches is True
    # Its home is where the code now calls it: a copy to declare.
    assert fix.status is Status.PARTIAL, fix.reason
    assert f"{patchset.module}_impl:free_function" in fix.reason
    lock(manifest, source=str(moved))
    assert check(manifest, source=str(moved)).by_id("fix").status is Status.READY


PROPERTY_TARGET = """
class Widget:
    @property
    def value(self) -> int:
        return self._v

    @value.setter
    def value(self, v: int) -> None:
        self._v = v

    @value.deleter
    def value(self) -> None:
        del self._v
"""


@pytest.mark.parametrize("changed", ["return self._v", "self._v = v", "del self._v"])
def test_a_property_is_fingerprinted_by_every_def_that_makes_it(
    patchset: PatchSet, changed: str
) -> None:
    # The property is the last def bound to its name (the deleter), built
    # from the ones before it: a changed getter went unseen, live and read
    # statically, and lock recorded the deleter's signature as the target's.
    source = patchset.site / f"{patchset.module}.py"
    source.write_text(PROPERTY_TARGET)
    patchset.write_backport("fix.py", textwrap.dedent(PROPERTY_TARGET.split("class Widget:")[1]))
    patchset.add("fix", "Widget.value")
    manifest = patchset.write()
    lock(manifest)
    locked = load_manifest(manifest).get("fix").targets[0]
    assert locked.signature == "(self) -> int"
    assert check(manifest).by_id("fix").status is Status.READY
    assert check(manifest, source=str(patchset.site)).by_id("fix").status is Status.READY
    source.write_text(PROPERTY_TARGET.replace(changed, f"{changed}  # changed\n        pass"))
    sys.modules.pop(patchset.module, None)
    for result in (check(manifest), check(manifest, source=str(patchset.site))):
        fix = result.by_id("fix")
        assert fix.status is Status.DRIFT, fix.reason
        assert fix.targets[0].fingerprint_matches is False


def test_static_check_of_other_versions(patchset: PatchSet, tmp_path: Path) -> None:
    patchset.write_backport("fix.py", BACKPORT_SOURCE + PROBE)
    patchset.add(
        "fix",
        "Widget.compute",
        applies_to=">=1.0,<1.6",
        fixed_in="1.6.0",
        signature="(self, x: int) -> int",
    )
    manifest = patchset.write()
    old = tmp_path / "old"
    shutil.copytree(patchset.site, old)
    new = tmp_path / "new"
    shutil.copytree(patchset.site, new)
    for info in new.glob("*.dist-info"):
        shutil.rmtree(info)
    (new / "version.txt").write_text("1.7.0\n")
    (new / f"{patchset.module}.py").write_text(
        TARGET_SOURCE.replace("def compute(self, x: int)", "def compute(self, x: int, *, y=1)")
    )
    ready = check(manifest, source=str(old))
    assert ready.source == str(old)
    assert ready.version == "1.5.0"
    assert ready.by_id("fix").status is Status.READY
    refused = check(manifest, source=str(new)).by_id("fix")
    assert refused.status is Status.FIXED_UPSTREAM
    assert refused.upstream_claim is Claim.CONTRADICTED
    assert refused.targets[0].signature_matches is False
    assert refused.targets[0].actual_signature == "(self, x: int, *, y=1) -> int"
    assert patchset.module not in __import__("sys").modules


@pytest.mark.parametrize(
    ("body", "verdict", "message"),
    [
        ("    assert Widget().compute(1) == 1001\n", "passed", "passed"),
        (
            "    raise TypeError('takes 2 positional arguments')\n",
            "failed",
            "failed: TypeError: takes 2 positional arguments",
        ),
    ],
)
def test_selftest_runs_in_a_subprocess_with_the_patch_applied(
    patchset: PatchSet, monkeypatch: pytest.MonkeyPatch, body: str, verdict: str, message: str
) -> None:
    selftest = f"\n\ndef selftest():\n    from {patchset.module} import Widget\n{body}"
    patchset.write_backport("fix.py", BACKPORT_SOURCE + selftest)
    patchset.add("fix", "Widget.compute")
    patchset.add("other", "Widget.other")
    monkeypatch.setenv("PYTHONPATH", patchset.env()["PYTHONPATH"])
    report = check(patchset.write(), selftest=True)
    result = report.by_id("fix")
    assert (result.status, result.selftest, result.selftest_message) == (
        Status.READY,
        verdict,
        message,
    )
    assert report.exit_code == (1 if verdict == "failed" else 0)
    assert patchset.target().Widget().compute(1) == 2  # this process stays unpatched


def test_selftest_child_ignores_a_backport_tool_in_the_working_directory(
    patchset: PatchSet, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    decoy = tmp_path / "cwd" / "backport_tool"
    decoy.mkdir(parents=True)
    (decoy / "__init__.py").write_text("raise ImportError('the decoy in the cwd was imported')\n")
    selftest = f"\n\ndef selftest():\n    from {patchset.module} import Widget\n"
    selftest += "    assert Widget().compute(1) == 1001\n"
    patchset.write_backport("fix.py", BACKPORT_SOURCE + selftest)
    patchset.add("fix", "Widget.compute")
    manifest = patchset.write()
    monkeypatch.setenv("PYTHONPATH", patchset.env()["PYTHONPATH"])
    monkeypatch.chdir(decoy.parent)
    result = check(manifest, selftest=True).by_id("fix")
    assert (result.selftest, result.selftest_message) == ("passed", "passed")
