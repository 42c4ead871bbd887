"""``backport-tool track``: which upstream releases really contain a backport's
fix, read from a local clone with gitpython.

A release contains the fix when, on the history that leads to its tag, the fix
commit or a cherry-pick of it (same patch-id, as ``git cherry`` compares) was
applied and not reverted afterwards. Reverts are found by the "This reverts
commit <sha>" line git writes, or by the patch-id of the inverse change.
"""

from __future__ import annotations

import enum
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from .api import manifest_for
from .errors import MissingDependencyError, UsageError
from .manifest import Manifest

_REVERTS = re.compile(r"This reverts commit ([0-9a-f]{7,40})")


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

    @property
    def disagrees(self) -> bool:
        """True when the manifest's ``fixed_in`` is not the first release with the fix."""
        if self.commit is None or not self.tags:
            return False
        return self.first_release != self.fixed_in


def _release_tags(repo: Any) -> list[tuple[Version, Any]]:
    tags = []
    for tag in repo.tags:
        name = tag.name[1:] if tag.name.startswith("v") else tag.name
        try:
            version = Version(name)
        except InvalidVersion:
            continue
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


def _state(repo: Any, ids: _PatchIds, fix: Any, tag: Any, version: Version) -> TagState:
    head = tag.commit
    fix_id = ids.of(fix.hexsha)
    undo_id = ids.inverse_of(fix.hexsha)
    bases = repo.merge_base(fix, head)
    # Only commits after the fork point that touch the fix's files can apply
    # or revert it; the path filter keeps this fast on a real torch clone.
    rev_range = f"{bases[0].hexsha}..{head.hexsha}" if bases else head.hexsha
    candidates = list(repo.iter_commits(rev_range, paths=_files(fix), reverse=True))
    applied_by: str | None = None
    reverted_by: str | None = None
    if repo.is_ancestor(fix, head) and not any(c.hexsha == fix.hexsha for c in candidates):
        applied_by = fix.hexsha  # at or before the merge base
    applied_shas = {fix.hexsha}
    for commit in candidates:
        if commit.hexsha == fix.hexsha or (fix_id and ids.of(commit.hexsha) == fix_id):
            applied_by, reverted_by = commit.hexsha, None
            applied_shas.add(commit.hexsha)
            continue
        named = _REVERTS.findall(commit.message)
        names_fix = any(s for s in applied_shas if any(s.startswith(n) for n in named))
        if applied_by and (names_fix or (undo_id and ids.of(commit.hexsha) == undo_id)):
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
    tags = _release_tags(repo)
    ids = _PatchIds(repo)
    results = []
    for backport in loaded.backports:
        sha = backport.upstream.commit
        if sha is None:
            results.append(
                TrackResult(backport.id, None, (), None, backport.fixed_in, "no upstream.commit")
            )
            continue
        try:
            fix = repo.commit(sha)
        except (git.BadName, ValueError):
            results.append(
                TrackResult(
                    backport.id,
                    sha,
                    (),
                    None,
                    backport.fixed_in,
                    f"commit {sha} is not in {upstream}. Hint: fetch upstream's tags and branches",
                )
            )
            continue
        states = tuple(_state(repo, ids, fix, tag, version) for version, tag in tags)
        finals = [s for s in states if s.contains and not s.version.is_prerelease]
        first = finals[0].version if finals else None
        results.append(
            TrackResult(
                backport.id,
                fix.hexsha,
                states,
                first,
                backport.fixed_in,
                _summary(first, backport.fixed_in),
            )
        )
    return tuple(results)


def _summary(first: Version | None, fixed_in: Version | None) -> str:
    found = f"first release with the fix: {first}" if first else "no release contains the fix"
    if first == fixed_in:
        return f"{found}; fixed_in agrees"
    declared = f"fixed_in {fixed_in}" if fixed_in else "no fixed_in"
    return f"{found}; {declared} disagrees"
