from __future__ import annotations

from pathlib import Path

import pytest
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
