"""Where a manifest really is, and its bytes, read safely.

One rule for every mode (``check``, ``apply``, lazy ``apply()``, ``apply --
CMD``): a manifest given through a symlink is the file the link points to, and
its ``module:`` paths are relative to that file's real directory. A patch set
is a manifest plus the backport modules beside it; a link to the manifest
brings the whole set along, it does not make the link's directory the set.

Stdlib only: ``apply()`` at server startup reads the manifest through this.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import NamedTuple

from .errors import ManifestError

# A patch set is a few KB; anything near this is a mistake or an attack.
MAX_MANIFEST_BYTES = 1024 * 1024


class ManifestFile(NamedTuple):  # not a dataclass: cheaper to define at startup
    path: Path  # as the user gave it, for messages
    location: Path  # the real file, symlinks resolved
    raw: bytes


def _error(path: Path, message: str) -> ManifestError:
    return ManifestError(str(path), [f"{path}: {message}"])


def real_location(path: Path) -> Path:
    """The manifest's real path; raise :class:`ManifestError` if it does not exist."""
    try:
        return path.resolve(strict=True)
    except FileNotFoundError:
        what = "a symlink to a missing file" if path.is_symlink() else "file not found"
        raise _error(path, what) from None
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise _error(path, f"cannot resolve the path: {exc}") from None


def read_manifest_file(path: Path) -> ManifestFile:
    """Read at most :data:`MAX_MANIFEST_BYTES` of a regular file."""
    location = real_location(path)
    # O_NONBLOCK: opening a FIFO for reading must not wait for a writer; the
    # fstat below then refuses it.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(location, flags)
    except OSError as exc:
        raise _error(path, f"cannot read: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise _error(path, "is a directory, not a manifest file")
        if not stat.S_ISREG(info.st_mode):
            raise _error(
                path, "is not a regular file (a device, FIFO or socket); give a manifest file"
            )
        with os.fdopen(fd, "rb", closefd=False) as handle:
            # Bounded even when the size above was wrong (a file still growing).
            raw = handle.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise _error(path, f"cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(raw) > MAX_MANIFEST_BYTES:
        size = max(info.st_size, len(raw))
        raise _error(
            path,
            f"{size} bytes, over the {MAX_MANIFEST_BYTES} byte limit for a manifest; split "
            "the patch set or remove what is not a manifest",
        )
    return ManifestFile(path, location, raw)
