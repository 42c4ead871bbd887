"""Values of torch's config modules (``torch.utils._config_module.ConfigModule``:
``torch._inductor.config``, ``torch._dynamo.config``, ...) as patch sites.

A config module keeps its options outside ``__dict__``: each is an entry of
``module._config`` that remembers whether the user set it
(``user_override``, or a sentinel for "not set, the default applies"). A
backport sets an option through the module's own ``__setattr__`` and puts the
entry's ``user_override`` back on revert, so that "not set by the user" stays
exactly that. torch 2.13 keeps the override in a ``ContextVar``: it is set and
restored in the calling context, as the module's ``__setattr__`` sets it. An
alias (``cache_size_limit`` reads and writes
``recompile_limit``) is one setting: both names lead to one entry.

This module is on the startup path: it reads the objects it is given and
imports nothing of torch's.
"""

from __future__ import annotations

import importlib
import sys
import types
import typing
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

# An alias of an alias is followed this far, no further (a cycle).
_MAX_ALIASES = 8


@dataclass(frozen=True)
class ConfigSite:
    """The entry behind a config option: its module, its key in
    ``module._config`` (``"triton.cudagraphs"`` for a sub-config) and the
    entry."""

    module: object
    key: str
    entry: Any

    @property
    def symbol(self) -> str:
        """``module:key``, for messages."""
        name = getattr(self.module, "__name__", "?")
        return f"{name}:{self.key}"


def _config_table(module: object) -> dict[str, Any] | None:
    # Read from the instance's __dict__: a plain module answers getattr
    # through its own __getattr__, which must not run here.
    try:
        namespace = object.__getattribute__(module, "__dict__")
    except AttributeError:
        return None
    table = namespace.get("_config")
    if not isinstance(table, dict) or not isinstance(module, types.ModuleType):
        return None
    return table


def _config_of(owner: object, name: str) -> tuple[object, str] | None:
    # (the config module, the key) for ``owner.name``; owner is the module or
    # one of its sub-config proxies (``config.triton``), which keep the module
    # and the key prefix in their own __dict__.
    if isinstance(owner, types.ModuleType):
        return owner, name
    try:
        namespace = object.__getattribute__(owner, "__dict__")
    except AttributeError:
        return None
    module, prefix = namespace.get("_config"), namespace.get("_prefix")
    if isinstance(module, types.ModuleType) and isinstance(prefix, str):
        return module, prefix + name
    return None


def site_of(owner: object, name: str) -> ConfigSite | None:
    """The config entry that ``owner.name`` reads and writes, aliases
    followed; None when ``owner`` is not a config module (or sub-config) or
    has no such option. An alias whose module cannot be imported is an
    ``AttributeError``, as torch raises it."""
    found = _config_of(owner, name)
    if found is None:
        return None
    module, key = found
    table = _config_table(module)
    if table is None or key not in table:
        return None
    written = f"{getattr(module, '__name__', '?')}:{key}"
    for _ in range(_MAX_ALIASES):
        alias = getattr(table[key], "alias", None)
        if not isinstance(alias, str):
            return ConfigSite(module, key, table[key])
        module_name, _, key = alias.rpartition(".")
        module = sys.modules.get(module_name) or importlib.import_module(module_name)
        table = _config_table(module)
        if table is None or key not in table:
            raise AttributeError(f"config alias {alias} does not exist")
    raise AttributeError(f"config alias chain from {written} does not end")


def override(site: ConfigSite) -> object:
    """What the user (or a backport) set, or torch's sentinel for "not set"."""
    held = site.entry.user_override
    # torch 2.13 keeps it in a ContextVar: the value of the current context.
    return held.get() if isinstance(held, ContextVar) else held


def per_context(site: ConfigSite) -> bool:
    """True where torch keeps the option per thread (torch 2.13 on: a
    ``ContextVar``), so that setting it reaches the calling thread only."""
    return isinstance(site.entry.user_override, ContextVar)


def _put(site: ConfigSite, value: object) -> None:
    held = site.entry.user_override
    if isinstance(held, ContextVar):
        held.set(value)
    else:
        site.entry.user_override = value


def read(site: ConfigSite) -> object:
    """The option's value, as the config module answers it, leaving the entry
    as it was: torch's ``__getattr__`` stores a copy of a list, set or dict
    default as the user override when it is read."""
    before = override(site)
    try:
        return getattr(site.module, site.key)
    finally:
        _put(site, before)


def set_value(site: ConfigSite, value: object) -> None:
    """Set the option through the config module's ``__setattr__``, which also
    marks its hash dirty."""
    setattr(site.module, site.key, value)


def restore(site: ConfigSite, previous: object) -> None:
    """Put ``previous`` (an :func:`override`) back as the entry's user
    override, torch's "not set" sentinel included, through the module's
    ``__setattr__``: it stores what it is given and invalidates the module's
    hash and caches as for any change."""
    setattr(site.module, site.key, previous)


def forced_by_env(site: ConfigSite) -> bool:
    """An environment variable forces this option: a user override (ours
    too) does not change what it reads."""
    return getattr(site.entry, "env_value_force", unset(site)) is not unset(site)


def unset(site: ConfigSite) -> object:
    """torch's sentinel for "not set"."""
    module = sys.modules.get(type(site.entry).__module__)
    found = getattr(module, "_UNSET_SENTINEL", None)
    if found is not None:
        return found
    return type(site.entry).__dataclass_fields__["env_value_force"].default


def default(site: ConfigSite) -> object:
    """The option's default as the config module declares it."""
    return site.entry.default


def accepts(site: ConfigSite, value: object) -> bool | None:
    """Whether ``value`` fits the option's declared type; None when the type
    is not one that can be tested (a generic alias, a forward reference)."""
    wanted = getattr(site.entry, "value_type", None)
    return _fits(wanted, value)


def _fits(wanted: object, value: object) -> bool | None:
    if wanted is None or wanted is Any:
        return None
    if wanted is type(None):
        return value is None
    if isinstance(wanted, type) and not typing.get_args(wanted):
        if wanted is float and isinstance(value, int) and not isinstance(value, bool):
            return True
        return isinstance(value, wanted)
    origin = typing.get_origin(wanted)
    if origin is typing.Union or origin is types.UnionType:
        answers = [_fits(arg, value) for arg in typing.get_args(wanted)]
        if any(a is True for a in answers):
            return True
        return None if any(a is None for a in answers) else False
    if isinstance(origin, type):
        return isinstance(value, origin)
    return None


def type_name(site: ConfigSite) -> str:
    """The option's declared type, for messages."""
    wanted = getattr(site.entry, "value_type", None)
    if isinstance(wanted, type) and not typing.get_args(wanted):
        return wanted.__name__
    return str(wanted).replace("typing.", "")
