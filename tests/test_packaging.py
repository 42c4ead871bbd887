"""The installed (non-editable) package: bundled patch set, console script,
no shadowing of the ``backports`` namespace, torch never pinned."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import backport_tool

pytestmark = pytest.mark.skipif(
    not os.environ.get("BACKPORT_TOOL_TEST_INSTALLED"),
    reason="checks the installed package; the test script installs it and sets "
    "BACKPORT_TOOL_TEST_INSTALLED=1",
)

SOURCE_ROOT = Path(__file__).resolve().parent.parent


def test_the_package_under_test_is_the_installed_one() -> None:
    location = Path(backport_tool.__file__).resolve()
    assert "site-packages" in location.parts
    assert not location.is_relative_to(SOURCE_ROOT / "backport_tool")


def test_the_bundled_patch_set_is_inside_the_package() -> None:
    path = backport_tool.default_manifest_path()
    assert path == Path(backport_tool.__file__).parent / "_bundled" / "manifest.yaml"
    assert (path.parent / "backports" / "inductor_realize_on_reuse.py").is_file()
    assert (path.parent / "backports" / "inductor_realize_refined.py").is_file()
    assert path.read_text() == (SOURCE_ROOT / "manifest.yaml").read_text()


def test_no_top_level_backports_package_is_installed() -> None:
    files = [str(f) for f in importlib.metadata.files("backport-tool") or []]
    assert not [f for f in files if f.startswith("backports/")]
    # A real namespace-package user of that name still imports.
    import backports.tarfile  # type: ignore[import-untyped]

    assert backports.tarfile.__name__ == "backports.tarfile"


def test_torch_is_required_without_any_version_constraint() -> None:
    requires = [Requirement(r) for r in importlib.metadata.requires("backport-tool") or []]
    (torch_req,) = [r for r in requires if r.name == "torch"]
    assert str(torch_req.specifier) == ""


@pytest.mark.torch211
def test_console_script_applies_from_any_directory(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "backport-tool"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "BACKPORT_TOOL_MANIFEST")}
    proc = subprocess.run(
        [str(script), "apply", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["version"] == "2.11.0"
    # The refined model is the default; the faithful port is opt-in.
    assert [(b["id"], b["status"]) for b in report["backports"]] == [
        ("inductor-realize-on-reuse", "disabled"),
        ("inductor-realize-on-reuse-refined", "applied"),
    ]
    # The faithful port ships too, and the environment enables it.
    env["BACKPORT_TOOL_ENABLE"] = "inductor-realize-on-reuse"
    proc = subprocess.run(
        [str(script), "apply", "--json"], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert [(b["id"], b["status"]) for b in json.loads(proc.stdout)["backports"]] == [
        ("inductor-realize-on-reuse", "applied"),
        ("inductor-realize-on-reuse-refined", "disabled"),
    ]
