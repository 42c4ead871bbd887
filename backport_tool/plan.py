"""The startup plan: ``engine.decide``'s answer for every backport of a manifest,
kept as JSON between processes so that ``apply()`` at startup needs neither
yaml nor the validator.

A plan is keyed by the manifest's real path and bytes, backport-tool's
version, the installed version and the disabled and enabled sets. A cached plan is only
trusted after it is checked against the manifest it claims to be for:
anything foreign, invalid or incomplete is rebuilt, never used. Stdlib only.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, NamedTuple

from . import __version__
from .cache import entry, read_json, write_json
from .config import Switches
from .manifest_file import ManifestFile
from .report import Status

# 5: opt-in backports decided by version first; fixed-upstream says unverified.
# 6: the modules of each backport's required symbols.
# 7: a disabled backport names every switch that can disable it.
PLAN_FORMAT = 7
# What decide() can answer; READY backports are verified and applied later.
DECIDED = frozenset(
    {Status.RETIRED, Status.DISABLED, Status.NOT_APPLICABLE, Status.FIXED_UPSTREAM, Status.READY}
)

# Enough of the schema to cross-check a cached plan without yaml: block-style
# `id:` keys (only backports have one). A manifest written another way simply
# never matches, and its plan is rebuilt every time: slower, never wrong.
_ID_LINE = re.compile(r"""^[ \t-]*id:[ \t]*['"]?([a-z0-9][a-z0-9-]*)['"]?[ \t]*(?:#.*)?$""", re.M)
_PACKAGE_LINE = re.compile(r"""^package:[ \t]*['"]?([^'"#\s]+)""", re.M)


# NamedTuples, not dataclasses: each frozen dataclass costs about half a
# millisecond to create, and this module is on the startup path.
class PlanEntry(NamedTuple):
    id: str
    status: Status
    reason: str
    modules: tuple[str, ...]  # the targets' modules, whose import applies it
    copy_modules: tuple[str, ...] = ()  # the declared copies' modules, bound on import
    # The required symbols' modules: verified live, as eager apply does, so
    # the hook applies only once they are imported too.
    required_modules: tuple[str, ...] = ()


class Plan(NamedTuple):
    package: str
    version: str | None
    entries: tuple[PlanEntry, ...]


def package_name(raw: bytes) -> str | None:
    """The manifest's ``package``, read without yaml (only to know which version to
    read before a plan exists; the validator has the last word), normalized as
    the validator normalizes it."""
    match = _PACKAGE_LINE.search(raw.decode("utf-8", errors="replace"))
    # A plan records the validated name: `package: My_Pkg` must find the plan
    # of `my-pkg`. This is PEP 503's rule, which packaging's canonicalize_name
    # applies in the validator; packaging is not imported at startup.
    return _SEPARATORS.sub("-", match.group(1)).lower() if match else None


_SEPARATORS = re.compile(r"[-_.]+")


def plan_path(file: ManifestFile, version: str | None, switches: Switches) -> Path:
    parts = (str(file.location), __version__, str(version), repr(_switched(switches)))
    return entry("plan", ".json", *parts, str(PLAN_FORMAT), file.raw)[0]


def _switched(switches: Switches) -> dict[str, list[str]]:
    return {"disabled": sorted(switches.disabled), "enabled": sorted(switches.enabled)}


def _digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def to_json(plan: Plan, file: ManifestFile, switches: Switches) -> dict[str, Any]:
    return {
        "format": PLAN_FORMAT,
        "manifest_sha256": _digest(file.raw),
        "package": plan.package,
        "version": plan.version,
        "switches": _switched(switches),
        "backports": [
            {
                "id": e.id,
                "status": e.status.value,
                "reason": e.reason,
                "modules": list(e.modules),
                "copy_modules": list(e.copy_modules),
                "required_modules": list(e.required_modules),
            }
            for e in plan.entries
        ],
    }


def from_json(
    data: object, file: ManifestFile, version: str | None, switches: Switches
) -> Plan | None:
    """The plan ``data`` describes, if it is one for exactly this manifest and
    environment; None for anything else."""
    if not isinstance(data, dict):
        return None
    if (
        data.get("format") != PLAN_FORMAT
        or data.get("manifest_sha256") != _digest(file.raw)
        or data.get("version") != version
        or data.get("switches") != _switched(switches)
        or not isinstance(data.get("package"), str)
        or not isinstance(data.get("backports"), list)
    ):
        return None
    entries = [_entry(item) for item in data["backports"]]
    if any(e is None for e in entries):
        return None
    checked = tuple(e for e in entries if e is not None)
    ids = [e.id for e in checked]
    expected = set(_ID_LINE.findall(file.raw.decode("utf-8", errors="replace")))
    # Complete: one entry per backport of the manifest, no more, no fewer.
    if len(set(ids)) != len(ids) or set(ids) != expected:
        return None
    return Plan(data["package"], version, checked)


def _entry(item: object) -> PlanEntry | None:
    if not isinstance(item, dict):
        return None
    ident, status, reason, modules = (item.get(k) for k in ("id", "status", "reason", "modules"))
    if not (isinstance(ident, str) and isinstance(reason, str) and isinstance(modules, list)):
        return None
    copies, required = item.get("copy_modules"), item.get("required_modules")
    if not isinstance(copies, list) or not isinstance(required, list):
        return None
    if not all(isinstance(m, str) and m for m in (*modules, *copies, *required)):
        return None
    try:
        decided = Status(status)
    except ValueError:
        return None
    if decided not in DECIDED or (decided is Status.READY and not modules):
        return None
    return PlanEntry(ident, decided, reason, tuple(modules), tuple(copies), tuple(required))


def load(path: Path, file: ManifestFile, version: str | None, switches: Switches) -> Plan | None:
    return from_json(read_json(path), file, version, switches)


def store(path: Path, plan: Plan, file: ManifestFile, switches: Switches) -> None:
    # A cache that cannot be written only costs speed: the plan is rebuilt
    # next time (cache.py logs why at DEBUG).
    write_json(path, to_json(plan, file, switches))
