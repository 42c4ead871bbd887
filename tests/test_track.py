from __future__ import annotations

import textwrap
from pathlib import Path

import git
import pytest
from packaging.version import Version

from backport_tool import UsageError, cli
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
    tmp_path: Path, upstream: tuple[git.Repo, git.Commit], capsys: pytest.CaptureFixture[str]
) -> None:
    repo, _ = upstream
    (result, _) = track(repo.working_tree_dir or "", manifest(tmp_path, "deadbeef" * 5, "2.12.0"))
    assert result.message == (
        f"commit {'deadbeef' * 5} is not in {repo.working_tree_dir}. "
        "Hint: fetch upstream's tags and branches"
    )
    # Nothing could be checked: a CI gate must not pass on it, quiet or not.
    assert (result.found, result.disagrees, result.failed) == (False, False, True)
    command = ["track", "-q", "--manifest", str(tmp_path / "manifest.yaml")]
    assert cli.main([*command, "--upstream", str(repo.working_tree_dir)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"cost-model: {'deadbeef' * 5}",
        f"  {result.message}",
    ]
    with pytest.raises(UsageError) as info:
        track(tmp_path, tmp_path / "manifest.yaml")
    assert str(info.value) == (
        f"{tmp_path} is not a git repository; pass a local clone of upstream"
    )


def plain_upstream(tmp_path: Path) -> git.Repo:
    repo = git.Repo.init(tmp_path / "plain", initial_branch="main")
    with repo.config_writer() as config:
        config.set_value("user", "name", "Test")
        config.set_value("user", "email", "test@example.invalid")
    return repo


def test_a_later_release_without_the_fix_makes_any_fixed_in_wrong(tmp_path: Path) -> None:
    # The version gate takes every release from fixed_in on as fixed; a fix
    # in 2.12.0 that 2.13.0 reverted makes 2.13.0 run without it.
    repo = plain_upstream(tmp_path)
    commit(repo, "ir.py", HEURISTIC, "initial")
    fix = commit(repo, "ir.py", FIXED, "Use a cost model")
    repo.create_tag("v2.12.0")
    repo.git.revert(fix.hexsha, no_edit=True)
    repo.create_tag("v2.13.0")
    (result, _) = track(repo.working_tree_dir or "", manifest(tmp_path, fix.hexsha, "2.12.0"))
    assert (result.first_release, result.fixed_from) == (Version("2.12.0"), None)
    assert result.disagrees
    assert result.failed
    assert result.message == (
        "first release with the fix: 2.12.0, but v2.13.0 does not hold it; no fixed_in is "
        "right: the version gate takes every release from fixed_in on as fixed. Drop fixed_in "
        "and bound applies_to instead; fixed_in 2.12.0 disagrees"
    )
    # Landed again for 2.14.0: from there on every release holds it.
    commit(repo, "ir.py", FIXED, "Use a cost model, again")
    repo.create_tag("v2.14.0")
    (again, _) = track(repo.working_tree_dir or "", tmp_path / "manifest.yaml")
    assert again.fixed_from == Version("2.14.0")
    assert again.message == (
        "first release with the fix: 2.12.0, but v2.13.0 does not hold it; every release from "
        "2.14.0 on holds it; fixed_in 2.12.0 disagrees"
    )


def test_a_pick_with_other_context_is_found_by_its_cherry_picked_from_line(
    tmp_path: Path,
) -> None:
    # release/2.12 changed a line next to the fix: the pick's patch-id differs,
    # but `git cherry-pick -x` names the commit it came from.
    repo = plain_upstream(tmp_path)
    base = "def f(u):\n    n = 4\n    a = 1\n    b = 2\n    return u > n\n"
    commit(repo, "ir.py", base, "initial")
    repo.git.checkout("-b", "release/2.12")
    commit(repo, "ir.py", base.replace("n = 4", "n = 5"), "tune the threshold")
    repo.create_tag("v2.12.0")
    repo.git.checkout("main")
    fix = commit(repo, "ir.py", base.replace("u > n", "cost(u) > n"), "Use a cost model")
    repo.create_tag("v2.13.0")
    repo.git.checkout("release/2.12")
    repo.git.cherry_pick("-x", fix.hexsha)
    repo.create_tag("v2.12.1")
    repo.git.checkout("main")
    (result, _) = track(repo.working_tree_dir or "", manifest(tmp_path, fix.hexsha, "2.12.1"))
    states = {t.tag: t.state.value for t in result.tags}
    assert states == {"v2.12.0": "absent", "v2.12.1": "contains", "v2.13.0": "contains"}
    assert result.message == "first release with the fix: 2.12.1; fixed_in agrees"


def test_a_clone_that_cannot_answer_is_a_usage_error(
    tmp_path: Path, upstream: tuple[git.Repo, git.Commit]
) -> None:
    repo, fix = upstream
    path = manifest(tmp_path, fix.hexsha, "2.14.0")
    source = f"file://{repo.working_tree_dir}"
    shallow = tmp_path / "shallow"
    git.Repo.clone_from(source, shallow, depth=2, no_single_branch=True)
    with pytest.raises(UsageError) as info:
        track(shallow, path)
    assert str(info.value) == (
        f"{shallow} is a shallow clone: its history is cut off, so which releases hold a fix "
        f"cannot be read from it. Fetch the whole history: git -C {shallow} fetch "
        "--unshallow --tags"
    )
    untagged = tmp_path / "untagged"
    git.Repo.clone_from(source, untagged, no_tags=True)
    with pytest.raises(UsageError) as info:
        track(untagged, path)
    assert str(info.value) == (
        f"{untagged} has no release tags (like v2.12.0), so which releases hold a fix cannot "
        f"be read from it. Fetch them: git -C {untagged} fetch --tags"
    )
    # Tags are not needed where no backport names a commit.
    (tmp_path / "none").mkdir()
    quiet = manifest(tmp_path / "none", fix.hexsha, "2.14.0")
    quiet.write_text(quiet.read_text().replace(f'commit: "{fix.hexsha}"', 'pr: "1"'))
    assert [r.message for r in track(untagged, quiet)] == ["no upstream.commit"] * 2


def test_git_failing_on_the_clone_is_a_usage_error_with_gits_words(tmp_path: Path) -> None:
    # A partial clone whose promisor remote is gone cannot show the fix's diff.
    repo = plain_upstream(tmp_path)
    with repo.config_writer() as config:
        config.set_value("uploadpack", "allowFilter", "true")
        config.set_value("uploadpack", "allowAnySHA1InWant", "true")
    commit(repo, "ir.py", HEURISTIC, "initial")
    fix = commit(repo, "ir.py", FIXED, "Use a cost model")
    repo.create_tag("v2.12.0")
    partial = tmp_path / "partial"
    git.Repo.clone_from(
        f"file://{repo.working_tree_dir}", partial, filter="blob:none", no_checkout=True
    )
    Path(repo.working_tree_dir or "").rename(tmp_path / "gone")
    with pytest.raises(UsageError) as info:
        track(partial, manifest(tmp_path, fix.hexsha, "2.12.0"))
    message = str(info.value)
    assert message.startswith(f"git cannot read {partial}: fatal: ")
    assert "promisor remote" in message
    assert "\n" not in message


def test_a_revert_dated_before_its_pick_still_comes_after_it(tmp_path: Path) -> None:
    # Commit dates are not history: on the release branch the revert carries
    # an earlier date than the pick it reverts, and a side branch from the
    # pick touched the file too. Read by date, the revert came first and the
    # release "contained" the fix.
    repo = plain_upstream(tmp_path)
    when = iter(f"{1704067200 + day * 86400} +0000" for day in (0, 4, 8, 1, 7, 9))
    base = "def f(u):\n    return u > 4\n\n\ndef g():\n    return 1\n"

    def dated(path: str, text: str, message: str) -> git.Commit:
        file = Path(repo.working_tree_dir or "") / path
        file.write_text(text)
        repo.index.add([path])
        stamp = next(when)
        return repo.index.commit(message, author_date=stamp, commit_date=stamp)

    dated("ir.py", base, "base")
    repo.create_tag("v1.0.0")
    fixed = base.replace("u > 4", "cost(u) > 4")
    fix = dated("ir.py", fixed, "fix f")  # on main
    repo.git.checkout("-b", "release", "v1.0.0")
    dated("ir.py", fixed, "fix f")  # the pick: the same patch-id
    stamp = next(when)
    repo.git.revert(
        "HEAD", no_edit=True, env={"GIT_COMMITTER_DATE": stamp, "GIT_AUTHOR_DATE": stamp}
    )
    repo.git.checkout("-b", "side", "HEAD~1")
    dated("ir.py", base.replace("return 1", "return 2"), "change g")
    repo.git.checkout("release")
    stamp = next(when)
    repo.git.merge(
        "side", no_edit=True, env={"GIT_COMMITTER_DATE": stamp, "GIT_AUTHOR_DATE": stamp}
    )
    repo.create_tag("v1.1.0")
    (result, _) = track(repo.working_tree_dir or "", manifest(tmp_path, fix.hexsha, "1.1.0"))
    states = {t.tag: t.state.value for t in result.tags}
    assert states == {"v1.0.0": "absent", "v1.1.0": "reverted"}
    assert result.failed


def test_a_retired_entry_is_not_tracked(
    tmp_path: Path, upstream: tuple[git.Repo, git.Commit]
) -> None:
    # Kept for the record, with fixed_in as it was (docs/retiring.md): its
    # fixed_in decides nothing, and failing the run on it would fail it for
    # ever.
    repo, fix = upstream
    path = manifest(tmp_path, fix.hexsha, "2.12.0")
    text = path.read_text()
    path.write_text(
        text.replace("    module:", "    status: retired\n    retired_reason: r\n    module:", 1)
    )
    # Tracked, fixed_in 2.12.0 disagrees (the test above): the run failed.
    result, _ = track(repo.working_tree_dir or "", path)
    assert (result.commit, result.message, result.failed) == (None, "retired: not tracked", False)
