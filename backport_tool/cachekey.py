"""Keeps torch's compile caches apart for patched and unpatched code.

torch's FX-graph and AOTAutograd cache keys hash torch's files on disk, so an
in-memory patch is invisible to them: an artifact compiled without the patch
would be reused with it, and the other way round. ``cache_key_tag`` enters
those keys; we append a fingerprint of the applied set to the user's tag.
"""

from __future__ import annotations

import hashlib
import logging
import sys

from .state import STATE

logger = logging.getLogger("backport_tool")

MARK = "backport-tool:"


def fingerprint(applied: list[tuple[str, str]]) -> str:
    """A stable digest of the applied backports: their ids and the sha256 of the
    module bytes that ran."""
    digest = hashlib.sha256()
    for backport_id, module_sha256 in sorted(applied):
        digest.update(f"{backport_id}\0{module_sha256}\0".encode())
    return digest.hexdigest()[:16]


def update(applied: list[tuple[str, str]]) -> str | None:
    """Set ``torch.compiler.config.cache_key_tag`` for the applied set; return it."""
    if "torch" not in sys.modules:
        return None
    try:
        from torch.compiler import config  # noqa: PLC0415
    except Exception:  # torch without compile support: nothing to key
        return None
    with STATE.lock:
        current: str = config.cache_key_tag
        if STATE.tag_ours is None or current != STATE.tag_ours:
            STATE.tag_base = current  # first time, or the user changed it since
        base = STATE.tag_base or ""
        if not applied:
            config.cache_key_tag = base
            STATE.tag_ours = None
            return base
        suffix = MARK + fingerprint(applied)
        tag = f"{base}|{suffix}" if base else suffix
        config.cache_key_tag = tag
        STATE.tag_ours = tag
        logger.debug("backport-tool: compile cache key tag is now %r", tag)
        return tag
