from __future__ import annotations

from pathlib import Path

import pytest
from helpers import PatchSet
from packaging.specifiers import SpecifierSet

from backport_tool import UsageError, load_manifest
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
