from __future__ import annotations

import textwrap
from pathlib import Path

import git
import pytest
from packaging.version import Version

from backport_tool import UsageError
from backport_tool.tracking import track


def commit(repo: git.Repo, path: str, text: str, message: str) -> git.Commit:
    file = Path(repo.working_tree_dir or "") / path
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(text)
    repo.index.add([path])
    return repo.index.commit(message)


HEURISTIC = "def should_realize(users):\n    return users > 4\n"
FIXED = "def should_realize(users):\n    return cost(users) > 0\n"


@pytest.fixture
def upstream(tmp_path: Path) -> tuple[git.Repo, git.Commit]:
    """fix, v2.12.0-rc1, revert, v2.12.0, v2.13.0 on main; release/2.14 cherry-picks."""
    repo = git.Repo.init(tmp_path / "upstream", initial_branch="main")
    with repo.config_writer() as config:
        config.set_value("user", "name", "Test")
        config.set_value("user", "email", "test@example.invalid")
    commit(repo, "ir.py", HEURISTIC, "initial")
    commit(repo, "other.py", "x = 1\n", "unrelated")
    fix = commit(repo, "ir.py", FIXED, "Use a cost model")
    repo.create_tag("v2.12.0-rc1")
    repo.git.revert(fix.hexsha, no_edit=True)
    repo.create_tag("v2.12.0")
    commit(repo, "other.py", "x = 2\n", "more work")
    repo.create_tag("v2.13.0")
    repo.git.checkout("-b", "release/2.14")
    repo.git.cherry_pick(fix.hexsha)  # a new sha, the same patch-id
    repo.create_tag("v2.14.0")
    repo.git.checkout("main")
    return repo, fix


def manifest(tmp_path: Path, sha: str, fixed_in: str) -> Path:
    (tmp_path / "backports").mkdir()
    (tmp_path / "backports" / "fix.py").write_text("def f(): pass\n")
    path = tmp_path / "manifest.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        version: 1
        package: torch
        backports:
          - id: cost-model
            summary: s
            applies_to: "<{fixed_in}"
            fixed_in: "{fixed_in}"
            upstream:
              commit: "{sha}"
            module: backports/fix.py
            targets:
              - symbol: "m:f"
                replacement: f
          - id: untracked
            summary: s
            applies_to: "<3"
            module: backports/fix.py
            targets:
              - symbol: "m:f"
                replacement: f
        """)
    )
    return path


def test_contained_but_reverted_is_not_in_the_release(
    tmp_path: Path, upstream: tuple[git.Repo, git.Commit]
) -> None:
    repo, fix = upstream
    result, untracked = track(repo.working_tree_dir or "", manifest(tmp_path, fix.hexsha, "2.12.0"))
    states = {t.tag: (t.state, t.applied_by, t.reverted_by) for t in result.tags}
    revert = repo.commit("v2.12.0").hexsha
    pick = repo.commit("v2.14.0").hexsha
    assert states == {
        "v2.12.0-rc1": ("contains", fix.hexsha, None),
        "v2.12.0": ("reverted", None, revert),
        "v2.13.0": ("reverted", None, revert),
        "v2.14.0": ("contains", pick, None),
    }
    assert pick != fix.hexsha
    assert result.first_release == Version("2.14.0")
    assert result.disagrees
    assert result.message == ("first release with the fix: 2.14.0; fixed_in 2.12.0 disagrees")
    assert (untracked.commit, untracked.message) == (None, "no upstream.commit")


def test_agreeing_fixed_in(tmp_path: Path, upstream: tuple[git.Repo, git.Commit]) -> None:
    repo, fix = upstream
    (result, _) = track(repo.working_tree_dir or "", manifest(tmp_path, fix.hexsha[:10], "2.14.0"))
    assert not result.disagrees
    assert result.message == "first release with the fix: 2.14.0; fixed_in agrees"


def test_track_leaves_the_work_tree_and_head_alone(
    tmp_path: Path, upstream: tuple[git.Repo, git.Commit]
) -> None:
    repo, fix = upstream
    head = repo.head.commit.hexsha
    track(repo.working_tree_dir or "", manifest(tmp_path, fix.hexsha, "2.12.0"))
    assert repo.head.commit.hexsha == head
    assert not repo.is_dirty(untracked_files=True)


def test_unknown_commit_and_not_a_repo(
    tmp_path: Path, upstream: tuple[git.Repo, git.Commit]
) -> None:
    repo, _ = upstream
    (result, _) = track(repo.working_tree_dir or "", manifest(tmp_path, "deadbeef" * 5, "2.12.0"))
    assert result.message == (
        f"commit {'deadbeef' * 5} is not in {repo.working_tree_dir}. "
        "Hint: fetch upstream's tags and branches"
    )
    with pytest.raises(UsageError) as info:
        track(tmp_path, tmp_path / "manifest.yaml")
    assert str(info.value) == (
        f"{tmp_path} is not a git repository; pass a local clone of upstream"
    )
