"""What the environment has installed: a distribution's version as its metadata
states it, read without importing the distribution.

Stdlib only: ``apply()`` reads it at server startup. ``versions.installed_version``
parses what this returns; nothing else reads installed versions.
"""

from __future__ import annotations

import importlib.metadata

from .errors import InstalledVersionError


def version_text(package: str) -> str | None:
    """The ``Version`` field of ``package``'s metadata; None if it is not installed."""
    try:
        metadata = importlib.metadata.distribution(package).metadata
        raw = metadata["Version"]
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
