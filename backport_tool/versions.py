"""How an installed version is matched against a backport's range.

The rules (documented in the README, "Versions"):

* The installed version is read from the distribution's metadata with
  ``importlib.metadata``; the gated package is never imported for it.
* Local labels (``+cu130``, ``+cpu``, ``+git70d99e9``) are ignored: a CUDA build
  carries the same Python sources as the CPU build of the same release.
* Pre-releases, dev/nightly builds and source builds count as the release they
  lead up to: ``2.12.0rc1``, ``2.12.0.dev20260301+cu130`` and
  ``2.12.0a0+git70d99e9`` all count as ``2.12.0``. Their code is that release's
  branch, so a fix declared in 2.12.0 is declared in them too; plain PEP 440
  would put them *below* 2.12.0 and patch them as if they were 2.11.
* Post-releases keep their ``.postN``: ``2.11.0.post1`` is in ``>=2.11.0,<2.12``.
* A version decision is only the first gate: signatures and the presence of
  every symbol are still verified against the installed code, which is the only
  thing that can tell what a source build really holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from .errors import InstalledVersionError
from .installed import version_text


def installed_version(package: str) -> Version | None:
    """Return the installed version of ``package``, or None if it is not installed."""
    return parse_installed(package, version_text(package))


def parse_installed(package: str, raw: str | None) -> Version | None:
    """The version ``version_text(package)`` returned, parsed; None stays None."""
    if raw is None:
        return None
    try:
        return Version(raw)
    except InvalidVersion:
        raise InstalledVersionError(
            f"installed {package} has version {raw!r}, which is not a PEP 440 version; "
            f"backport-tool cannot tell which backports apply. Reinstall {package} "
            "from a proper wheel, or disable backports with BACKPORT_TOOL_DISABLE=all"
        ) from None


def effective_version(version: Version) -> Version:
    """Drop the local label and any pre/dev part, keeping epoch, release and post."""
    text = ".".join(str(part) for part in version.release)
    if version.epoch:
        text = f"{version.epoch}!{text}"
    if version.post is not None:
        text += f".post{version.post}"
    return Version(text)


@dataclass(frozen=True)
class Gate:
    """The version decision for one backport: ``eligible`` or why not."""

    eligible: bool
    fixed_upstream: bool
    reason: str


def gate(
    package: str,
    version: Version,
    applies_to: SpecifierSet,
    fixed_in: Version | None,
    applies_to_text: str | None = None,
) -> Gate:
    """Decide from versions alone whether a backport may apply."""
    spec = applies_to_text or str(applies_to)
    effective = effective_version(version)
    shown = f"{package} {version}"
    if effective != version:
        shown += f" (counted as {effective})"
    if version.local is not None and version.local.startswith("git"):
        shown += ", a source build whose version says little about the fixes it holds"
    if fixed_in is not None and effective >= fixed_in:
        return Gate(
            False,
            True,
            f"{shown} >= fixed_in {fixed_in}: upstream is declared to include the fix",
        )
    if not applies_to.contains(effective, prereleases=True):
        return Gate(False, False, f"{shown} is outside applies_to {spec!r}")
    return Gate(True, False, f"{shown} is inside applies_to {spec!r}")
