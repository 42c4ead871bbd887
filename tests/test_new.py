"""`backport-tool new`: a skeleton that fails its self-test until implemented,
and a manifest entry with the installed target's signature and fingerprint."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from helpers import PatchSet


def cli(patchset: PatchSet, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return patchset.cli(*args, cwd=cwd)


def test_new_writes_a_module_and_a_verified_entry(patchset: PatchSet, tmp_path: Path) -> None:
    work = tmp_path / "project"
    work.mkdir()
    target = patchset.sym("Widget.compute")
    proc = cli(patchset, work, "new", "fix-compute", "--target", target, "--package", patchset.dist)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "wrote backports/fix_compute.py"
    module = (work / "backports" / "fix_compute.py").read_text()
    assert "def compute(self, x: int) -> int:" in module

    checked = cli(patchset, work, "check", "--json", "--manifest", "manifest.yaml")
    assert checked.returncode == 0, checked.stderr
    (entry,) = json.loads(checked.stdout)["backports"]
    assert (entry["id"], entry["status"]) == ("fix-compute", "ready")
    assert entry["reason"] == "would apply: targets found, signatures match, fingerprints match"

    selftest = cli(patchset, work, "check", "--selftest", "--manifest", "manifest.yaml")
    assert selftest.returncode == 1
    assert "selftest failed: AssertionError: fix-compute: the self-test is not " in (
        selftest.stdout
    )


def test_new_appends_keeping_comments_and_refuses_duplicates(
    patchset: PatchSet, tmp_path: Path
) -> None:
    work = tmp_path / "project"
    work.mkdir()
    (work / "manifest.yaml").write_text(
        f"# my patch set\nversion: 1\npackage: {patchset.dist}\nbackports: []  # none yet\n"
    )
    assert (
        cli(patchset, work, "new", "one", "--target", patchset.sym("Widget.compute")).returncode
        == 0
    )
    assert (
        cli(patchset, work, "new", "two", "--target", patchset.sym("Widget.other")).returncode == 0
    )
    text = (work / "manifest.yaml").read_text()
    assert text.startswith("# my patch set\nversion: 1\n")
    again = cli(patchset, work, "new", "two", "--target", patchset.sym("Widget.other"))
    assert (again.returncode, again.stderr) == (
        2,
        "backport-tool: error: manifest.yaml already has a backport 'two'\n",
    )
    missing = cli(patchset, work, "new", "three", "--target", patchset.sym("Widget.nope"))
    assert missing.returncode == 2
    assert "cannot read the installed" in missing.stderr
