"""Which backports can never apply to the versions a project supports."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from .errors import MissingDependencyError, UsageError
from .manifest import Backport
from .versions import effective_version

RETIRE_OUTSIDE = "retire: outside every supported version"
RETIRE_FIXED = "retire: upstream fixed in all supported versions"


# What a project supports: one specifier set, or the union of several (a
# pyproject.toml may require torch once per platform).
Supported = SpecifierSet | Sequence[SpecifierSet]
# What check(supported=...) takes: also the strings --supported takes.
SupportedGiven = SpecifierSet | str | Sequence[SpecifierSet | str]


def parse_supported(text: str, package: str, where: str = "--supported") -> SpecifierSet:
    """Read ``torch>=2.12,<2.14`` or ``>=2.12,<2.14`` as the supported range of ``package``."""
    if not text.strip():
        # An unset variable in `--supported "$RANGE"` must not turn the gate off.
        raise UsageError(
            f"{where} is empty; give the {package} versions the project supports, "
            f"like '{package}>=2.12,<2.14'"
        )
    try:
        requirement = Requirement(text)
    except InvalidRequirement:
        try:
            spec = SpecifierSet(text)
        except InvalidSpecifier:
            raise UsageError(
                f"{where} {text!r} is neither a requirement like '{package}>=2.12,<2.14' "
                "nor a specifier set like '>=2.12,<2.14'"
            ) from None
    else:
        if canonicalize_name(requirement.name) != canonicalize_name(package):
            raise UsageError(
                f"{where} names {requirement.name!r}, but the manifest gates on {package!r}"
            )
        spec = requirement.specifier
    if not spec:
        # `--supported "torch$RANGE"` with RANGE unset: every version, which
        # retires nothing, silently.
        raise UsageError(
            f"{where} {text!r} names no versions; give the {package} versions the project "
            f"supports, like '{package}>=2.12,<2.14'"
        )
    require_versions(spec, f"{where} {text!r}")
    return spec


def supported_given(value: object, package: str, where: str) -> tuple[SpecifierSet, ...]:
    """The supported range a library caller gave: a ``SpecifierSet`` or a string
    as ``--supported`` takes it, or a sequence of them for their union."""
    members = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    if not members:
        raise UsageError(f"{where} is empty; give the {package} versions the project supports")
    found = []
    for member in members:
        if isinstance(member, str):
            found.append(parse_supported(member, package, where))
        elif isinstance(member, SpecifierSet):
            require_versions(member, where)
            found.append(member)
        else:
            raise UsageError(
                f"{where} takes a packaging SpecifierSet or a string like "
                f"'{package}>=2.12,<2.14' (or a sequence of them), got "
                f"{type(member).__name__} {member!r:.60}"
            )
    return tuple(found)


def require_versions(spec: SpecifierSet, where: str) -> None:
    """Raise :class:`UsageError` when ``spec`` admits no version at all: a
    supported range that is empty would retire nothing, silently."""
    if not any(spec.contains(v, prereleases=True) for v in _candidates([spec], [])):
        raise UsageError(
            f"{where} admits no version ({spec}); give the range of versions the project "
            "supports, like '>=2.12,<2.14'"
        )


def _kind(value: object) -> str:
    # What a TOML key holds, for "got a string" in messages.
    kinds = {bool: "a boolean", str: "a string", int: "an integer", float: "a float"}
    kinds |= {list: "a list", dict: "a table"}
    return kinds.get(type(value), "a date or time")


def supported_from_pyproject(path: Path, package: str) -> Supported:
    """The versions of ``package`` that a pyproject.toml's ``[project] dependencies``
    allow: its specifier, or the union of several (one per platform)."""
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
    found: list[SpecifierSet] = []
    # Every entry is checked, not only those before the match: whether a
    # broken entry is reported must not depend on where it sits. Every entry
    # on the package counts: one per platform (environment markers) makes the
    # supported versions their union, whichever platform CI runs on.
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
        if canonicalize_name(requirement.name) == canonicalize_name(package):
            require_versions(requirement.specifier, f"{path}: {key} {item!r}")
            found.append(requirement.specifier)
    if not found:
        raise UsageError(
            f"{path}: [project] dependencies has no requirement on {package}; "
            "pass --supported instead"
        )
    return found[0] if len(found) == 1 else tuple(found)


def _candidates(sets: list[SpecifierSet], extra: list[Version]) -> list[Version]:
    # Specifier sets are unions of intervals whose ends are the versions they
    # name, or the next release after a prefix (`!=2.12.*` ends at 2.13,
    # `~=2.12.1` at 2.13). One version on each end, one just above it (a
    # release segment too fine for any specifier to name) and the next
    # release at every level of it meet every interval.
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
        release = point.release
        candidates.add(Version(".".join(map(str, release)) + ".0.0.0.0.1"))
        for level in range(len(release)):
            bumped = (*release[:level], release[level] + 1)
            candidates.add(Version(".".join(map(str, bumped))))
    return sorted(candidates)


def supported_sets(supported: Supported) -> tuple[SpecifierSet, ...]:
    return (supported,) if isinstance(supported, SpecifierSet) else tuple(supported)


def retirement(backport: Backport, supported: Supported) -> str | None:
    """Why ``backport`` can never apply to any version in ``supported``, or None.

    Versions are judged as the version gate judges an installed one: a
    pre-release, dev or local build as its release (2.12.0rc1 as 2.12.0)."""
    if backport.retired:
        return None
    members = supported_sets(supported)
    extra = [backport.fixed_in] if backport.fixed_in else []
    inside = [
        effective_version(v)
        for v in _candidates([*members, backport.applies_to], extra)
        if any(member.contains(v, prereleases=True) for member in members)
    ]
    if not inside:
        return None  # an empty supported range says nothing about this backport
    shown = " or ".join(str(member) for member in members)
    if backport.fixed_in is not None and all(v >= backport.fixed_in for v in inside):
        return f"{RETIRE_FIXED} ({shown}; fixed_in {backport.fixed_in})"
    if not any(backport.applies_to.contains(v, prereleases=True) for v in inside):
        return f"{RETIRE_OUTSIDE} ({shown}; applies_to {backport.applies_to_text})"
    return None
