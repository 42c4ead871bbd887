from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import PatchSet
from packaging.specifiers import SpecifierSet

from backport_tool import UsageError, check, load_manifest
from backport_tool.retire import (
    RETIRE_FIXED,
    RETIRE_OUTSIDE,
    parse_supported,
    retirement,
    supported_from_pyproject,
)


def backport(tmp_path: Path, applies_to: str, fixed_in: str | None):  # type: ignore[no-untyped-def]
    (tmp_path / "fix.py").write_text("def f(): pass\n")
    fixed = f'\n    fixed_in: "{fixed_in}"' if fixed_in else ""
    (tmp_path / "m.yaml").write_text(
        "version: 1\npackage: torch\nbackports:\n  - id: b\n    summary: s\n"
        f'    applies_to: "{applies_to}"{fixed}\n    module: fix.py\n'
        '    targets:\n      - symbol: "m:f"\n        replacement: f\n'
    )
    return load_manifest(tmp_path / "m.yaml").backports[0]


@pytest.mark.parametrize(
    ("applies_to", "fixed_in", "supported", "expected"),
    [
        (">=2.11.0,<2.12", "2.12.0", ">=2.12,<2.14", RETIRE_FIXED),
        (">=2.11.0,<2.12", "2.12.0", ">=2.11,<2.14", None),
        (">=2.11.0,<2.12", None, ">=2.12,<2.14", RETIRE_OUTSIDE),
        (">=2.11.0,<2.12", None, "==2.11.*", None),
        (">=2.11.0,<2.12", None, "~=2.13.0", RETIRE_OUTSIDE),
        ("==2.11.0", None, ">2.11.0,<2.11.5", RETIRE_OUTSIDE),
        ("==2.11.1", None, ">2.11.0,<2.11.5", None),
        (">=2.9,<2.11", "2.11.0", ">=2.10", None),
        # A wildcard hole: 2.13 is supported and inside applies_to.
        (">2.12", None, ">=2.11,!=2.12.*,<2.14", None),
        (">=2.12.1", None, ">=2.11,!=2.12.*,<2.14", None),
        (">=2.12.1,<2.13", None, ">=2.11,!=2.12.*,<2.14", RETIRE_OUTSIDE),
        # A compatible release ends below 2.13, which only a bump names.
        (">=2.12.5", None, ">=2.10,~=2.12.1", None),
        # Judged as the gate judges an installed build: as its release.
        (">=2.12,<2.13", None, "==2.12.0.dev20260301", None),
        (">=2.12,<2.13", None, "==2.12.0a0+git70d99e9", None),
        (">=2.12,<2.13", None, ">=2.12.0rc1,<2.12.0", None),
        ("<2.12", "2.12.0", ">=2.12.0rc1,<2.14", RETIRE_FIXED),
    ],
)
def test_retirement(
    tmp_path: Path, applies_to: str, fixed_in: str | None, supported: str, expected: str | None
) -> None:
    reason = retirement(backport(tmp_path, applies_to, fixed_in), SpecifierSet(supported))
    if expected is None:
        assert reason is None
    else:
        assert reason is not None
        assert reason.startswith(expected)


def test_parse_supported() -> None:
    assert parse_supported("torch>=2.12,<2.14", "torch") == SpecifierSet(">=2.12,<2.14")
    assert parse_supported(">=2.12", "torch") == SpecifierSet(">=2.12")
    with pytest.raises(UsageError) as info:
        parse_supported("numpy>=2", "torch")
    assert str(info.value) == "--supported names 'numpy', but the manifest gates on 'torch'"
    # `--supported "torch$RANGE"` with RANGE unset must not turn the gate off.
    with pytest.raises(UsageError) as info:
        parse_supported("torch", "torch")
    assert str(info.value) == (
        "--supported 'torch' names no versions; give the torch versions the project supports, "
        "like 'torch>=2.12,<2.14'"
    )


def test_a_supported_range_without_versions_is_refused(tmp_path: Path) -> None:
    # Either would retire nothing, silently: the --strict gate would be off.
    with pytest.raises(UsageError) as info:
        parse_supported(" ", "torch")
    assert str(info.value) == (
        "--supported is empty; give the torch versions the project supports, like "
        "'torch>=2.12,<2.14'"
    )
    with pytest.raises(UsageError) as info:
        parse_supported("torch>=2.14,<2.12", "torch")
    assert str(info.value) == (
        "--supported 'torch>=2.14,<2.12' admits no version (<2.12,>=2.14); give the range of "
        "versions the project supports, like '>=2.12,<2.14'"
    )
    path = tmp_path / "pyproject.toml"
    path.write_text('[project]\nname = "app"\ndependencies = ["torch==2.11.0,!=2.11.0"]\n')
    with pytest.raises(UsageError) as info:
        supported_from_pyproject(path, "torch")
    assert str(info.value).startswith(
        f"{path}: [project] dependencies[0] 'torch==2.11.0,!=2.11.0' admits no version"
    )
    with pytest.raises(UsageError) as info:
        check(
            backport(tmp_path, "<2.12", None) and tmp_path / "m.yaml",
            supported=SpecifierSet(">3,<2"),
        )
    assert str(info.value).startswith("check(supported=...) admits no version (<2,>3)")


def test_every_requirement_on_the_package_counts(tmp_path: Path) -> None:
    # One pin per platform: the project supports their union, whichever
    # platform CI runs on.
    path = tmp_path / "pyproject.toml"
    path.write_text(
        '[project]\nname = "app"\ndependencies = [\n'
        "  \"torch==2.11.0; platform_machine == 'x86_64'\",\n"
        "  \"torch>=2.12,<2.13; platform_machine == 'aarch64'\",\n]\n"
    )
    supported = supported_from_pyproject(path, "torch")
    assert supported == (SpecifierSet("==2.11.0"), SpecifierSet(">=2.12,<2.13"))
    assert retirement(backport(tmp_path, ">=2.12,<2.13", None), supported) is None
    assert retirement(backport(tmp_path, ">=2.11,<2.12", None), supported) is None
    assert retirement(backport(tmp_path, ">=2.13", None), supported) == (
        f"{RETIRE_OUTSIDE} (==2.11.0 or <2.13,>=2.12; applies_to >=2.13)"
    )


def test_supported_from_pyproject(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text('[project]\nname = "app"\ndependencies = ["numpy", "torch>=2.12,<2.14"]\n')
    assert supported_from_pyproject(path, "torch") == SpecifierSet(">=2.12,<2.14")
    path.write_text('[project]\nname = "app"\ndependencies = ["numpy"]\n')
    with pytest.raises(UsageError) as info:
        supported_from_pyproject(path, "torch")
    assert str(info.value) == (
        f"{path}: [project] dependencies has no requirement on torch; pass --supported instead"
    )


NO_LIST = "[project] dependencies must be a list of requirement strings"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (
            b'[project]\nname = "caf\xe9"\n',
            "not UTF-8 (byte 0xe9 at offset 21); TOML files must be UTF-8",
        ),
        (b'project = "app"\n', "[project] must be a table, got a string"),
        (b'project = ["torch"]\n', "[project] must be a table, got a list"),
        (b'[project]\ndependencies = "torch>=2.12"\n', f"{NO_LIST}, got a string"),
        (b"[project.dependencies]\ntorch = '>=2.12'\n", f"{NO_LIST}, got a table"),
        (
            b'[project]\ndependencies = ["numpy", 2]\n',
            "[project] dependencies[1] must be a requirement string, got an integer",
        ),
    ],
)
def test_unusable_pyproject(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_bytes(content)
    with pytest.raises(UsageError) as info:
        supported_from_pyproject(path, "torch")
    assert str(info.value) == f"{path}: {problem}"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b'[project\nname = "app"\n', "invalid TOML: "),
        (
            b'[project]\ndependencies = ["numpy>=>2", "torch>=2.12"]\n',
            "[project] dependencies[0] 'numpy>=>2' is not a valid requirement: ",
        ),
    ],
)
def test_pyproject_problems_worded_by_the_parser(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    # tomllib's and packaging's own words differ between releases: only the
    # start is ours, and it stays one line.
    path = tmp_path / "pyproject.toml"
    path.write_bytes(content)
    with pytest.raises(UsageError) as info:
        supported_from_pyproject(path, "torch")
    assert str(info.value).startswith(f"{path}: {problem}")
    assert "\n" not in str(info.value)


def test_pyproject_that_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        supported_from_pyproject(tmp_path / "pyproject.toml", "torch")
    assert str(info.value) == (
        f"{tmp_path / 'pyproject.toml'}: file not found; give the path of a pyproject.toml"
    )
    with pytest.raises(UsageError) as info:
        supported_from_pyproject(tmp_path, "torch")
    assert str(info.value) == (
        f"{tmp_path}: is a directory; give the path of the pyproject.toml file in it"
    )


def test_check_supported_from_a_directory(patchset: PatchSet) -> None:
    # `--supported-from .` is the likely slip; it used to end in an internal error.
    patchset.add("fix", "Widget.compute")
    manifest = patchset.write()
    proc = patchset.cli(
        "check", "--manifest", str(manifest), "--supported-from", ".", cwd=patchset.root
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == (
        "backport-tool: error: .: is a directory; give the path of the pyproject.toml file in it\n"
    )


@pytest.mark.parametrize(
    "supported",
    [
        "torch>=2.12,<2.14",
        ">=2.12,<2.14",
        SpecifierSet(">=2.12,<2.14"),
        ["torch==2.12.*", SpecifierSet("==2.13.*")],
    ],
)
def test_check_takes_the_supported_range_as_the_cli_does(tmp_path: Path, supported: Any) -> None:
    # The string form, as --supported takes it, raised AttributeError.
    backport(tmp_path, ">=2.11.0,<2.12", "2.12.0")
    result = check(tmp_path / "m.yaml", supported=supported).by_id("b")
    assert result.retire is not None
    assert result.retire.startswith(RETIRE_FIXED)


@pytest.mark.parametrize(
    ("supported", "problem"),
    [
        ("numpy>=2", "check(supported=...) names 'numpy', but the manifest gates on 'torch'"),
        ("", "check(supported=...) is empty; give the torch versions the project supports"),
        ([], "check(supported=...) is empty; give the torch versions the project supports"),
        (2.12, "check(supported=...) takes a packaging SpecifierSet or a string like"),
    ],
)
def test_check_refuses_a_supported_range_it_cannot_read(
    tmp_path: Path, supported: Any, problem: str
) -> None:
    backport(tmp_path, ">=2.11.0,<2.12", "2.12.0")
    with pytest.raises(UsageError) as info:
        check(tmp_path / "m.yaml", supported=supported)
    assert str(info.value).startswith(problem)
