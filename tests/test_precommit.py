"""The pre-commit hook, run by a real pre-commit on a temporary repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import git
import pytest
from helpers import PatchSet

ROOT = Path(__file__).resolve().parent.parent


def precommit(repo: Path, patchset: PatchSet, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    bindir = Path(sys.executable).parent
    env = patchset.env(
        PATH=os.pathsep.join([str(bindir), os.environ.get("PATH", "")]),
        PRE_COMMIT_HOME=str(tmp_path / "pre-commit-home"),
    )
    return subprocess.run(
        [str(bindir / "pre-commit"), "try-repo", str(ROOT), "backport-tool-check", "--all-files"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def repo(patchset: PatchSet, tmp_path: Path) -> Path:
    patchset.add("fix", "Widget.compute", signature="(self, x: int) -> int")
    patchset.write()
    repo = tmp_path / "user-repo"
    shutil.copytree(patchset.patches, repo)
    git.Repo.init(repo).git.add("-A")
    return repo


def test_the_hook_passes_on_a_good_patch_set(
    repo: Path, patchset: PatchSet, tmp_path: Path
) -> None:
    proc = precommit(repo, patchset, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "backport-tool check" in proc.stdout
    assert "Passed" in proc.stdout


def test_the_hook_fails_on_drift_with_the_reason(
    repo: Path, patchset: PatchSet, tmp_path: Path
) -> None:
    manifest = repo / "manifest.yaml"
    manifest.write_text(manifest.read_text().replace("(self, x: int) -> int", "(self) -> int"))
    git.Repo(repo).git.add("-A")
    proc = precommit(repo, patchset, tmp_path)
    assert proc.returncode == 1
    assert "Failed" in proc.stdout
    assert "drift           fix: target " in proc.stdout
