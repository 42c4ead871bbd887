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
from typing import Any

from . import configs
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
    """Set ``torch.compiler.config.cache_key_tag`` for the applied set, in
    every thread and task; return the calling context's tag."""
    if "torch" not in sys.modules:
        return None
    try:
        from torch.compiler import config  # noqa: PLC0415
    except Exception:  # torch without compile support: nothing to key
        return None
    suffix = MARK + fingerprint(applied) if applied else None
    with STATE.lock:
        site = configs.site_of(config, "cache_key_tag")
        if site is not None and configs.per_context(site):
            # torch 2.13 on keeps each option per thread and task, and a new
            # thread starts with none set: setting the option reaches the
            # calling one only, while the patch is in force in all of them.
            _tag_every_context(site, suffix)
            if configs.override(site) is configs.unset(site):
                # This context reads the process-wide layer, tagged above.
                STATE.tag_ours = None
                tag: str = config.cache_key_tag
                return tag
        return _tag_this_context(config, suffix)


def _tag_every_context(site: configs.ConfigSite, suffix: str | None) -> None:
    # The layer under every context's own setting: the value that the
    # option's variable (TORCH_COMPILE_CACHE_KEY_TAG) gave at import, which
    # every thread and task reads unless it set the option itself. Tagging
    # it is what setting that variable would have done.
    entry = site.entry
    if STATE.tag_layer is None:
        if suffix is None:
            return
        STATE.tag_layer = (entry.env_value_default,)
    (before,) = STATE.tag_layer
    if suffix is None:
        entry.env_value_default = before
        STATE.tag_layer = None
        return
    base = configs.default(site) if before is configs.unset(site) else before
    entry.env_value_default = _joined(str(base or ""), suffix)


def _tag_this_context(config: Any, suffix: str | None) -> str:
    current: str = config.cache_key_tag
    if STATE.tag_ours is None or current != STATE.tag_ours:
        STATE.tag_base = current  # first time, or the user changed it since
    base = STATE.tag_base or ""
    if suffix is None:
        config.cache_key_tag = base
        STATE.tag_ours = None
        return base
    tag = _joined(base, suffix)
    config.cache_key_tag = tag
    STATE.tag_ours = tag
    logger.debug("backport-tool: compile cache key tag is now %r", tag)
    return tag


def _joined(base: str, suffix: str) -> str:
    return f"{base}|{suffix}" if base else suffix
