from __future__ import annotations

from pathlib import Path

import pytest
from helpers import PatchSet
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from backport_tool import InstalledVersionError
from backport_tool.versions import effective_version, gate, installed_version

APPLIES = SpecifierSet(">=2.11.0,<2.12")
FIXED = Version("2.12.0")


def verdict(version: str) -> str:
    decision = gate("torch", Version(version), APPLIES, FIXED, ">=2.11.0,<2.12")
    if decision.eligible:
        return "applies"
    return "fixed-upstream" if decision.fixed_upstream else "not-applicable"


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("2.11.0", "applies"),
        ("2.11.0+cu130", "applies"),
        ("2.11.0+cpu", "applies"),
        ("2.11.1", "applies"),
        ("2.11.0.post1", "applies"),
        ("2.11.0rc1", "applies"),
        ("2.11.0.dev20260101+cu130", "applies"),
        ("2.11.0a0+gitabc1234", "applies"),
        ("2.12.0", "fixed-upstream"),
        ("2.12.0+cu130", "fixed-upstream"),
        ("2.12.0rc1", "fixed-upstream"),
        ("2.12.0.dev20260301+cu130", "fixed-upstream"),
        ("2.12.0a0+git70d99e9", "fixed-upstream"),
        ("2.13.0+cpu", "fixed-upstream"),
        ("2.10.0", "not-applicable"),
        ("2.10.1+cu128", "not-applicable"),
        ("2.7.0a0+79aa17489c.nv25.04", "not-applicable"),
    ],
)
def test_version_forms(version: str, expected: str) -> None:
    assert verdict(version) == expected


def test_reasons_say_how_the_version_was_counted() -> None:
    assert gate("torch", Version("2.12.0.dev20260301+cu130"), APPLIES, FIXED).reason == (
        "torch 2.12.0.dev20260301+cu130 (counted as 2.12.0) >= fixed_in 2.12.0: "
        "upstream is declared to include the fix"
    )
    assert gate("torch", Version("2.12.0a0+git70d99e9"), APPLIES, FIXED).reason == (
        "torch 2.12.0a0+git70d99e9 (counted as 2.12.0), a source build whose version says "
        "little about the fixes it holds >= fixed_in 2.12.0: upstream is declared to include "
        "the fix"
    )
    assert gate("torch", Version("2.10.0"), APPLIES, FIXED, ">=2.11.0,<2.12").reason == (
        "torch 2.10.0 is outside applies_to '>=2.11.0,<2.12'"
    )


def test_without_fixed_in_only_the_range_counts() -> None:
    decision = gate("torch", Version("2.12.0"), APPLIES, None)
    assert (decision.eligible, decision.fixed_upstream) == (False, False)


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("2.12.0.dev20260301+cu130", "2.12.0"),
        ("2.11.0.post1", "2.11.0.post1"),
        ("1!2.0rc1", "1!2.0"),
        ("2.11.0+cu130", "2.11.0"),
    ],
)
def test_effective_version(version: str, expected: str) -> None:
    assert effective_version(Version(version)) == Version(expected)
    assert str(effective_version(Version(version))) == expected


def test_installed_version_reads_metadata_without_importing(tmp_path: Path) -> None:
    ps = PatchSet(tmp_path, version="1.2.3+cu130")
    try:
        assert installed_version(ps.dist) == Version("1.2.3+cu130")
        assert ps.module not in __import__("sys").modules
        assert installed_version("surely-not-installed-dist") is None
    finally:
        ps.close()


def test_unparseable_installed_version_is_a_clear_error(tmp_path: Path) -> None:
    ps = PatchSet(tmp_path, version="banana")
    try:
        with pytest.raises(InstalledVersionError) as info:
            installed_version(ps.dist)
        assert str(info.value).startswith(
            f"installed {ps.dist} has version 'banana', which is not a PEP 440 version"
        )
    finally:
        ps.close()
