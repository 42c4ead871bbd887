"""What the environment has installed: a distribution's version as its metadata
states it, read without importing the distribution.

Stdlib only: ``apply()`` reads it at server startup. ``versions.installed_version``
parses what this returns; nothing else reads installed versions.
"""

from __future__ import annotations

import importlib.metadata
import pathlib

from .errors import InstalledVersionError


def version_text(package: str) -> str | None:
    """The ``Version`` field of ``package``'s metadata; None if it is not installed."""
    try:
        raw = _version_field(importlib.metadata.distribution(package))
    except importlib.metadata.PackageNotFoundError:
        return None
    except UnicodeDecodeError as exc:
        raise InstalledVersionError(
            f"the metadata of the installed {package} is not UTF-8 text (invalid byte at "
            f"offset {exc.start}); reinstall {package}, or disable backports with "
            "BACKPORT_TOOL_DISABLE=all"
        ) from None
    if not raw or not raw.strip():
        raise InstalledVersionError(
            f"the metadata of the installed {package} has no Version; backport-tool cannot "
            f"tell which backports apply. Reinstall {package} from a proper wheel, or "
            "disable backports with BACKPORT_TOOL_DISABLE=all"
        )
    return raw.strip()


def _version_field(dist: importlib.metadata.Distribution) -> str | None:
    # .metadata runs the email parser over every header (torch has dozens of
    # Requires-Dist lines): most of the cost of reading a version at startup.
    # The header block ends at the first empty line, and Version is one line.
    text = _header(dist) or dist.read_text("METADATA") or dist.read_text("PKG-INFO")
    if text is not None:
        # Split the header block only: torch's long description makes the
        # file about 30 kB. (A CRLF file is split whole, with the same result.)
        for line in text.partition("\n\n")[0].splitlines():
            if not line.strip():
                break
            name, colon, value = line.partition(":")
            if colon and name.strip().lower() == "version":
                return value.strip()
    # No such line in the headers: let the email parser have the last word.
    return dist.metadata["Version"]


def _header(dist: importlib.metadata.Distribution) -> str | None:
    # torch's METADATA is about 30 kB, almost all of it the long description
    # after the headers: read up to the end of the header block only. Only a
    # distribution in a directory (the stdlib's PathDistribution keeps it in
    # _path) can be read in part; anything else is read whole by the caller.
    where = getattr(dist, "_path", None)
    if not isinstance(where, pathlib.Path):
        return None
    try:
        with open(where / "METADATA", "rb") as file:
            data = b""
            while b"\n\n" not in data:
                chunk = file.read(4096)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    return data.partition(b"\n\n")[0].decode("utf-8")
