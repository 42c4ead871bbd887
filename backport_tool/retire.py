"""Which backports can never apply to the versions a project supports."""

from __future__ import annotations

import sys
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from .errors import UsageError
from .manifest import Backport

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

RETIRE_OUTSIDE = "retire: outside every supported version"
RETIRE_FIXED = "retire: upstream fixed in all supported versions"


def parse_supported(text: str, package: str) -> SpecifierSet:
    """Read ``torch>=2.12,<2.14`` or ``>=2.12,<2.14`` as the supported range of ``package``."""
    try:
        requirement = Requirement(text)
    except InvalidRequirement:
        try:
            return SpecifierSet(text)
        except InvalidSpecifier:
            raise UsageError(
                f"--supported {text!r} is neither a requirement like '{package}>=2.12,<2.14' "
                "nor a specifier set like '>=2.12,<2.14'"
            ) from None
    if canonicalize_name(requirement.name) != canonicalize_name(package):
        raise UsageError(
            f"--supported names {requirement.name!r}, but the manifest gates on {package!r}"
        )
    return requirement.specifier


def supported_from_pyproject(path: Path, package: str) -> SpecifierSet:
    """The specifier of ``package`` in a pyproject.toml's ``[project] dependencies``."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: invalid TOML: {exc}") from None
    dependencies = data.get("project", {}).get("dependencies", [])
    for item in dependencies if isinstance(dependencies, list) else []:
        try:
            requirement = Requirement(str(item))
        except InvalidRequirement:
            continue
        if canonicalize_name(requirement.name) == canonicalize_name(package):
            return requirement.specifier
    raise UsageError(
        f"{path}: [project] dependencies has no requirement on {package}; pass --supported instead"
    )


def _candidates(sets: list[SpecifierSet], extra: list[Version]) -> list[Version]:
    # Specifier sets are unions of intervals whose ends are the versions they
    # name. One version on each boundary and one just above it (a release
    # segment too fine for any specifier to name) meet every interval.
    points = set(extra)
    for spec_set in sets:
        for spec in spec_set:
            text = spec.version.removesuffix(".*")
            try:
                points.add(Version(text))
            except ValueError:
                continue
    candidates = {Version("0")}
    for point in points:
        candidates.add(point)
        release = ".".join(str(p) for p in point.release)
        candidates.add(Version(f"{release}.0.0.0.0.1"))
        candidates.add(Version(f"{point.release[0] + 1}"))
    return sorted(candidates)


def retirement(backport: Backport, supported: SpecifierSet) -> str | None:
    """Why ``backport`` can never apply to any version in ``supported``, or None."""
    if backport.retired:
        return None
    extra = [backport.fixed_in] if backport.fixed_in else []
    inside = [
        v
        for v in _candidates([supported, backport.applies_to], extra)
        if supported.contains(v, prereleases=True)
    ]
    if not inside:
        return None  # an empty supported range says nothing about this backport
    if backport.fixed_in is not None and all(v >= backport.fixed_in for v in inside):
        return f"{RETIRE_FIXED} ({supported}; fixed_in {backport.fixed_in})"
    if not any(backport.applies_to.contains(v, prereleases=True) for v in inside):
        return f"{RETIRE_OUTSIDE} ({supported}; applies_to {backport.applies_to_text})"
    return None
