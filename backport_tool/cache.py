"""The files backport-tool keeps for itself in its cache directory: startup plans,
validated manifests and the internal-error log.

Another user, or a process of ours that went wrong, may have left anything at
these paths: a FIFO, a link to ``/dev/zero``, a symlink planted towards a file
of the user's, or a plan written into a directory that others can write. So a
read opens only a regular file, without following a symlink and without
blocking, reads at most ``MAX_BYTES``, and ignores a file or directory that
someone else owns or that others may write (as ssh and pip treat such files).
A write goes to a temporary file with an unpredictable name, created with
``O_EXCL`` and without following symlinks, which is then renamed over the
path. Every failure is a cache miss, never an error: the caller rebuilds.

Stdlib only: ``apply()`` reads the plan at server startup.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import stat
from pathlib import Path

from .config import cache_dir

logger = logging.getLogger("backport_tool")

# A plan is a few kB and a validated manifest tens of kB; anything far larger
# is not ours.
MAX_BYTES = 4 << 20
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


def _trusted(info: os.stat_result) -> bool:
    # Written by us (or root), and not writable by anyone else.
    mine = not hasattr(os, "getuid") or info.st_uid in (os.getuid(), 0)
    return mine and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _trusted_dir(directory: Path) -> bool:
    try:
        info = os.stat(directory)
    except OSError:
        return False
    # A sticky world-writable directory (/tmp) still lets others plant names
    # we have not created yet; only our own unshared directory is trusted.
    return stat.S_ISDIR(info.st_mode) and _trusted(info)


def entry(kind: str, suffix: str, *parts: str | bytes) -> tuple[Path, str]:
    """The path of the cache file of ``kind`` for ``parts``, and the key it is
    named by (the sha256 of the parts, each ended by a NUL): a file that can
    only stand for exactly those parts."""
    digest = hashlib.sha256()
    for part in parts:
        raw = part if isinstance(part, bytes) else part.encode("utf-8", "surrogateescape")
        digest.update(raw + b"\0")
    key = digest.hexdigest()
    return cache_dir() / f"{kind}-{key[:32]}{suffix}", key


def read_bytes(path: Path) -> bytes | None:
    """The contents of ``path`` if it is a trusted regular file of at most
    ``MAX_BYTES``; None for anything else."""
    # A relative path would be read from whatever the working directory is.
    if not path.is_absolute() or not _trusted_dir(path.parent):
        return None
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or not _trusted(info) or info.st_size > MAX_BYTES:
            return None
        data = read_limited(fd, info.st_size, MAX_BYTES)
        # Grown past the bound since the fstat: not a file we wrote.
        return data if len(data) <= MAX_BYTES else None
    except OSError:
        return None
    finally:
        os.close(fd)


def read_limited(fd: int, size: int, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of ``fd`` (one more than ``limit`` tells a
    file over it), asking first for ``size``, what fstat said."""
    # Asking for the whole limit at once allocates a buffer of that size: for
    # a file of a few kB that costs more than the read (0.1 ms per 1 MiB).
    chunks = []
    left = limit + 1
    want = min(size + 1, left)
    while left > 0:
        chunk = os.read(fd, min(want, left))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
        want = 1 << 16
    return b"".join(chunks)


def read_json(path: Path) -> object | None:
    """The JSON value in ``path`` (see :func:`read_bytes`); None if it is not one."""
    raw = read_bytes(path)
    if raw is None:
        return None
    try:
        value: object = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return value


def write_bytes(path: Path, data: bytes) -> Path | None:
    """Write ``data`` to ``path`` through a fresh temporary file; the path
    written, or None when the directory cannot hold it safely."""
    if not path.is_absolute():
        return None
    directory = path.parent
    try:
        # 0700: the directory must stay ours alone for reads to trust it.
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        logger.debug("backport-tool: cannot create %s: %s", directory, exc)
        return None
    if not _trusted_dir(directory):
        logger.debug("backport-tool: not writing into %s: others can write there", directory)
        return None
    # os.urandom, not secrets: the same bytes, without secrets' imports at startup.
    tmp = directory / f".{path.name}.{os.urandom(8).hex()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
    except OSError as exc:
        logger.debug("backport-tool: cannot write %s: %s", tmp, exc)
        return None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        # rename() replaces a symlink at `path` itself, never its target.
        os.replace(tmp, path)
    except OSError as exc:
        logger.debug("backport-tool: cannot write %s: %s", path, exc)
        with contextlib.suppress(OSError):
            tmp.unlink()
        return None
    return path


def write_json(path: Path, value: object) -> bool:
    """Store ``value`` as JSON at ``path`` (see :func:`write_bytes`)."""
    return write_bytes(path, json.dumps(value, separators=(",", ":")).encode("utf-8")) is not None
