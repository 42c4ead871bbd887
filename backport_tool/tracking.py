"""``backport-tool track``: which upstream releases really contain a backport's
fix, read from a local clone with gitpython.

A release contains the fix when, on the history that leads to its tag, the fix
commit or a cherry-pick of it was applied and not reverted afterwards. A
cherry-pick is found by its patch-id (as ``git cherry`` compares) or by the
"(cherry picked from commit <sha>)" line ``git cherry-pick -x`` writes; a revert
by the "This reverts commit <sha>" line git writes, or by the patch-id of the
inverse change.
"""

from __future__ import annotations

import enum
import os
import re
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from .api import manifest_for
from .errors import MissingDependencyError, UsageError
from .manifest import Backport, Manifest

_REVERTS = re.compile(r"This reverts commit ([0-9a-f]{7,40})")
# A pick whose context lines differ on the release branch has another
# patch-id; -x names the commit it came from.
_PICKED = re.compile(r"\(cherry picked from commit ([0-9a-f]{7,40})\)")


class TrackState(str, enum.Enum):
    """Whether a release tag holds a fix. The values appear in JSON."""

    CONTAINS = "contains"  # the fix commit, or a cherry-pick of it (see applied_by)
    REVERTED = "reverted"
    ABSENT = "absent"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class TagState:
    """Whether the history of one release tag holds the fix."""

    tag: str
    version: Version
    contains: bool
    applied_by: str | None  # the fix commit or a cherry-pick of it
    reverted_by: str | None  # the last revert, when it undid the fix

    @property
    def state(self) -> TrackState:
        """What the tag's history says about the fix."""
        if self.contains:
            return TrackState.CONTAINS
        return TrackState.REVERTED if self.reverted_by else TrackState.ABSENT


@dataclass(frozen=True)
class TrackResult:
    """What the upstream history says about one backport's ``upstream.commit``."""

    backport: str
    commit: str | None
    tags: tuple[TagState, ...]
    first_release: Version | None
    fixed_in: Version | None
    message: str
    # The commit named by upstream.commit is in the clone (False: it is not,
    # and nothing could be read).
    found: bool = True

    @property
    def fixed_from(self) -> Version | None:
        """The first final release from which on every final release holds the fix:
        the only ``fixed_in`` the version gate gets right (it takes every
        version from ``fixed_in`` on as fixed). None if the latest lacks it."""
        fixed: Version | None = None
        for tag in self.tags:
            if tag.version.is_prerelease:
                continue
            if not tag.contains:
                fixed = None
            elif fixed is None:
                fixed = tag.version
        return fixed

    @property
    def disagrees(self) -> bool:
        """True when the manifest's ``fixed_in`` is not :attr:`fixed_from`."""
        if self.commit is None or not self.found:
            return False
        return self.fixed_from != self.fixed_in

    @property
    def failed(self) -> bool:
        """``fixed_in`` disagrees, or the named commit is not in the clone."""
        return self.disagrees or (self.commit is not None and not self.found)


def _release_tags(repo: Any) -> list[tuple[Version, Any]]:
    tags = []
    for tag in repo.tags:
        name = tag.name[1:] if tag.name.startswith("v") else tag.name
        try:
            version = Version(name)
        except InvalidVersion:
            continue
        try:
            _ = tag.commit
        except ValueError:
            continue  # a tag of a tree or a blob: no release
        tags.append((version, tag))
    return sorted(tags, key=lambda item: item[0])


class _PatchIds:
    """``git patch-id --stable`` of commits and of inverse changes, cached."""

    def __init__(self, repo: Any) -> None:
        self.repo = repo
        self._cache: dict[str, str | None] = {}

    def _patch_id(self, diff: str) -> str | None:
        if not diff.strip():
            return None
        # gitpython hands istream to the git process as its stdin; it must be
        # a real file.
        with tempfile.TemporaryFile("w+b") as handle:
            handle.write(diff.encode("utf-8", errors="surrogateescape"))
            handle.seek(0)
            out: str = self.repo.git.execute(["git", "patch-id", "--stable"], istream=handle)
        return out.split(maxsplit=1)[0] if out.strip() else None

    def of(self, sha: str) -> str | None:
        if sha not in self._cache:
            diff = self.repo.git.show(sha, "--format=", "--no-color", "--no-ext-diff")
            self._cache[sha] = self._patch_id(diff + "\n")
        return self._cache[sha]

    def inverse_of(self, sha: str) -> str | None:
        commit = self.repo.commit(sha)
        if not commit.parents:
            return None
        diff = self.repo.git.diff(sha, commit.parents[0].hexsha, "--no-color", "--no-ext-diff")
        return self._patch_id(diff + "\n")


def _files(commit: Any) -> list[str]:
    return sorted(str(p) for p in commit.stats.files)


def _names(pattern: re.Pattern[str], message: str, shas: set[str]) -> bool:
    # The message names one of ``shas``, in full or abbreviated.
    named = pattern.findall(message)
    return any(sha.startswith(name) for sha in shas for name in named)


def _state(repo: Any, ids: _PatchIds, fix: Any, tag: Any, version: Version) -> TagState:
    head = tag.commit
    fix_id = ids.of(fix.hexsha)
    undo_id = ids.inverse_of(fix.hexsha)
    bases = repo.merge_base(fix, head)
    # Only commits after the fork point that touch the fix's files can apply
    # or revert it; the path filter keeps this fast on a real torch clone.
    rev_range = f"{bases[0].hexsha}..{head.hexsha}" if bases else head.hexsha
    # Parents before children: a revert committed with an earlier date than
    # the pick it reverts must still come after it. Every commit on every
    # merged branch: git's default simplification drops a branch whose
    # changes to these files a merge did not keep (a pick and its revert).
    candidates = list(
        repo.iter_commits(
            rev_range, paths=_files(fix), reverse=True, topo_order=True, full_history=True
        )
    )
    applied_by: str | None = None
    reverted_by: str | None = None
    if repo.is_ancestor(fix, head) and not any(c.hexsha == fix.hexsha for c in candidates):
        applied_by = fix.hexsha  # at or before the merge base
    applied_shas = {fix.hexsha}
    for commit in candidates:
        if (
            commit.hexsha == fix.hexsha
            or _names(_PICKED, commit.message, applied_shas)
            or (fix_id and ids.of(commit.hexsha) == fix_id)
        ):
            applied_by, reverted_by = commit.hexsha, None
            applied_shas.add(commit.hexsha)
            continue
        undoes = _names(_REVERTS, commit.message, applied_shas)
        if applied_by and (undoes or (undo_id and ids.of(commit.hexsha) == undo_id)):
            applied_by, reverted_by = None, commit.hexsha
    return TagState(tag.name, version, applied_by is not None, applied_by, reverted_by)


def track(
    upstream: str | os.PathLike[str],
    manifest: str | os.PathLike[str] | Manifest | None = None,
) -> tuple[TrackResult, ...]:
    """For each backport with ``upstream.commit``, read which release tags of the
    clone at ``upstream`` really contain the fix, and the first release that does."""
    try:
        import git  # noqa: PLC0415 - only track needs gitpython; apply never pays for it
    except ImportError as exc:
        raise MissingDependencyError("`track`", "GitPython", "git", exc) from exc

    loaded = manifest_for(manifest)
    try:
        repo = git.Repo(Path(upstream))
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise UsageError(
            f"{upstream} is not a git repository; pass a local clone of upstream"
        ) from None
    try:
        if not any(_tracks(backport) for backport in loaded.backports):
            return tuple(_tracked(repo, upstream, b, [], None) for b in loaded.backports)
        tags = _history(repo, upstream)
        ids = _PatchIds(repo)
        return tuple(_tracked(repo, upstream, b, tags, ids) for b in loaded.backports)
    except (git.GitCommandError, BrokenPipeError) as exc:
        # git refusing the clone (another user's, "dubious ownership"), a
        # partial clone whose remote is gone: the clone, not a bug. A broken
        # pipe here is git's (its cat-file process died), never our output's.
        why = _git_said(exc) if isinstance(exc, git.GitCommandError) else "git stopped reading"
        raise UsageError(f"git cannot read {upstream}: {why}") from None


def _tracks(backport: Backport) -> bool:
    # A retired entry is kept for the record: no version applies it, so its
    # fixed_in decides nothing, and check reports it without complaint.
    return backport.upstream.commit is not None and not backport.retired


def _history(repo: Any, upstream: str | os.PathLike[str]) -> list[tuple[Version, Any]]:
    # The clone's release tags, once its history is known to be whole.
    if repo.git.rev_parse("--is-shallow-repository").strip() == "true":
        raise UsageError(
            f"{upstream} is a shallow clone: its history is cut off, so which releases hold "
            f"a fix cannot be read from it. Fetch the whole history: git -C {upstream} "
            "fetch --unshallow --tags"
        )
    tags = _release_tags(repo)
    if not tags:
        raise UsageError(
            f"{upstream} has no release tags (like v2.12.0), so which releases hold a fix "
            f"cannot be read from it. Fetch them: git -C {upstream} fetch --tags"
        )
    return tags


def _tracked(
    repo: Any,
    upstream: str | os.PathLike[str],
    backport: Backport,
    tags: list[tuple[Version, Any]],
    ids: _PatchIds | None,
) -> TrackResult:
    import git  # noqa: PLC0415 - imported by track() already

    sha = backport.upstream.commit
    if not _tracks(backport) or ids is None:
        why = "retired: not tracked" if backport.retired else "no upstream.commit"
        return TrackResult(backport.id, None, (), None, backport.fixed_in, why)
    try:
        fix = repo.commit(sha)
    except (git.BadName, ValueError):
        return TrackResult(
            backport.id,
            sha,
            (),
            None,
            backport.fixed_in,
            f"commit {sha} is not in {upstream}. Hint: fetch upstream's tags and branches",
            found=False,
        )
    states = tuple(_state(repo, ids, fix, tag, version) for version, tag in tags)
    finals = [s for s in states if s.contains and not s.version.is_prerelease]
    first = finals[0].version if finals else None
    result = TrackResult(backport.id, fix.hexsha, states, first, backport.fixed_in, "")
    return replace(result, message=_summary(result))


def _git_said(exc: Any) -> str:
    # gitpython wraps git's stderr as "\n  stderr: '...'": keep git's words.
    text = str(exc.stderr or "").strip()
    text = text.removeprefix("stderr:").strip().strip("'").strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " ".join(lines) if lines else f"git exited with {exc.status}"


def _summary(result: TrackResult) -> str:
    first, fixed_in, fixed_from = result.first_release, result.fixed_in, result.fixed_from
    found = f"first release with the fix: {first}" if first else "no release contains the fix"
    if first is not None and fixed_from != first:
        lacking = [
            t.tag
            for t in result.tags
            if not t.version.is_prerelease and t.version > first and not t.contains
        ]
        found += f", but {', '.join(lacking)} {'does' if len(lacking) == 1 else 'do'} not hold it"
        found += (
            f"; every release from {fixed_from} on holds it"
            if fixed_from
            else "; no fixed_in is right: the version gate takes every release from fixed_in "
            "on as fixed. Drop fixed_in and bound applies_to instead"
        )
    if fixed_from == fixed_in:
        return f"{found}; {'fixed_in agrees' if fixed_in else 'no fixed_in, which agrees'}"
    declared = f"fixed_in {fixed_in}" if fixed_in else "no fixed_in"
    return f"{found}; {declared} disagrees"
