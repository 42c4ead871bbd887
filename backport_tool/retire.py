"""Which backports can never apply to the versions a project supports."""

from __future__ import annotations

import sys
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from .errors import MissingDependencyError, UsageError
from .manifest import Backport

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


def _kind(value: object) -> str:
    # What a TOML key holds, for "got a string" in messages.
    kinds = {bool: "a boolean", str: "a string", int: "an integer", float: "a float"}
    kinds |= {list: "a list", dict: "a table"}
    return kinds.get(type(value), "a date or time")


def supported_from_pyproject(path: Path, package: str) -> SpecifierSet:
    """The specifier of ``package`` in a pyproject.toml's ``[project] dependencies``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: file not found; give the path of a pyproject.toml") from None
    except IsADirectoryError:
        raise UsageError(
            f"{path}: is a directory; give the path of the pyproject.toml file in it"
        ) from None
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"{path}: not UTF-8 (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
            "TOML files must be UTF-8"
        ) from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    # Imported here: on Python 3.10 TOML takes tomli, which `check` without
    # --supported-from must not need.
    if sys.version_info >= (3, 11):
        import tomllib  # noqa: PLC0415
    else:  # pragma: no cover - exercised on 3.10 only
        try:
            import tomli as tomllib  # noqa: PLC0415
        except ImportError as exc:
            raise MissingDependencyError(f"reading {path}", "tomli", "tomli", exc) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: invalid TOML: {exc}") from None
    project = data.get("project", {})
    if not isinstance(project, dict):
        raise UsageError(f"{path}: [project] must be a table, got {_kind(project)}")
    dependencies = project.get("dependencies", [])
    if not isinstance(dependencies, list):
        raise UsageError(
            f"{path}: [project] dependencies must be a list of requirement strings, "
            f"got {_kind(dependencies)}"
        )
    found: SpecifierSet | None = None
    # Every entry is checked, not only those before the match: whether a
    # broken entry is reported must not depend on where it sits.
    for index, item in enumerate(dependencies):
        key = f"[project] dependencies[{index}]"
        if not isinstance(item, str):
            raise UsageError(f"{path}: {key} must be a requirement string, got {_kind(item)}")
        try:
            requirement = Requirement(item)
        except InvalidRequirement as exc:
            # packaging's message goes on with the text and a caret: keep one line.
            why = str(exc).partition("\n")[0]
            raise UsageError(f"{path}: {key} {item!r} is not a valid requirement: {why}") from None
        if found is None and canonicalize_name(requirement.name) == canonicalize_name(package):
            found = requirement.specifier
    if found is None:
        raise UsageError(
            f"{path}: [project] dependencies has no requirement on {package}; "
            "pass --supported instead"
        )
    return found


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
