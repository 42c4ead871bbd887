"""Patch sets shipped as packages: ``pkg:PACKAGE/path/manifest.yaml`` wherever a
manifest is named, and the ``backport_tool.patch_sets`` entry point group."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import PatchSet, run_backport_tool

import backport_tool
from backport_tool import Status
from backport_tool.config import MANIFEST_ENV
from backport_tool.errors import ManifestError

PLUGIN = ("-p", "backport_tool.pytest_plugin")


class Shipped:
    """``patchset``'s manifest and backports as the package ``name``."""

    def __init__(self, patchset: PatchSet, root: Path) -> None:
        self.patchset = patchset
        self.name = f"patchpkg{patchset.n}"
        self.site = root / "pkgsite"
        self.directory = self.site / self.name

    def ship(self) -> str:
        if self.directory.exists():
            shutil.rmtree(self.directory)
        shutil.copytree(self.patchset.patches, self.directory)
        (self.directory / "__init__.py").write_text("")
        return f"pkg:{self.name}/manifest.yaml"


@pytest.fixture
def shipped(patchset: PatchSet, tmp_path: Path) -> Iterator[Shipped]:
    shipped = Shipped(patchset, tmp_path)
    patchset.add("fix", "Widget.compute")
    patchset.write()
    shipped.ship()
    sys.path.insert(0, str(shipped.site))
    yield shipped
    sys.path.remove(str(shipped.site))
    sys.modules.pop(shipped.name, None)


def test_apply_takes_a_manifest_inside_a_package(shipped: Shipped) -> None:
    widget = shipped.patchset.target().Widget
    report = backport_tool.apply(f"pkg:{shipped.name}/manifest.yaml", eager=True)
    assert report.by_id("fix").status is Status.APPLIED, report.by_id("fix").reason
    assert report.manifest == f"pkg:{shipped.name}/manifest.yaml"
    assert widget().compute(1) == 1001
    backport_tool.revert()
    # pkg:PACKAGE alone names the package's manifest.yaml.
    assert backport_tool.check(f"pkg:{shipped.name}").by_id("fix").status is Status.READY


def test_the_environment_names_a_package_manifest(
    shipped: Shipped, monkeypatch: pytest.MonkeyPatch
) -> None:
    widget = shipped.patchset.target().Widget
    monkeypatch.setenv(MANIFEST_ENV, f"pkg:{shipped.name}/manifest.yaml")
    assert backport_tool.apply(eager=True).by_id("fix").status is Status.APPLIED
    assert widget().compute(1) == 1001


def test_the_cli_reads_a_package_manifest_and_lock_writes_it_in_place(
    shipped: Shipped, tmp_path: Path
) -> None:
    spec = f"pkg:{shipped.name}/manifest.yaml"
    # The patch set's package is importable in the child through PYTHONPATH.
    paths: list[Path | str] = [shipped.patchset.site, shipped.site]
    checked = run_backport_tool("check", "--json", "--manifest", spec, paths=paths, cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    data = json.loads(checked.stdout)
    assert (data["manifest"], data["backports"][0]["status"]) == (spec, "ready")

    locked = run_backport_tool("lock", "--manifest", spec, paths=paths, cwd=tmp_path)
    assert locked.returncode == 0, locked.stderr
    assert "fingerprint:" in (shipped.directory / "manifest.yaml").read_text()
    assert not (tmp_path / "pkg:" / shipped.name).exists()
    assert not list(tmp_path.glob("pkg:*"))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("pkg:nosuchpkg_xyz/manifest.yaml", "no package 'nosuchpkg_xyz' can be imported here"),
        ("pkg:json.decoder/manifest.yaml", "'json.decoder' is a module, not a package"),
        ("pkg:/manifest.yaml", "pkg: must be followed by an importable package name"),
        ("pkg:json/../manifest.yaml", "the path must stay inside the package"),
        ("pkg:json/none.yaml", "file not found: "),
    ],
)
def test_a_bad_package_spec_is_a_clear_error(spec: str, message: str) -> None:
    with pytest.raises(ManifestError, match="^invalid manifest: " + spec.replace(".", r"\.")) as e:
        backport_tool.check(spec)
    assert message in str(e.value)
    # apply() at startup never raises: it reports and applies nothing.
    report = backport_tool.apply(spec)
    assert report.error is not None
    assert message in report.error


def test_installed_patch_sets_are_listed_by_status(shipped: Shipped, tmp_path: Path) -> None:
    info = shipped.site / "patchdist-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: patchdist\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[backport_tool.patch_sets]\nmine = {shipped.name}\nother = {shipped.name}:manifest.yaml\n"
    )
    paths: list[Path | str] = [shipped.patchset.site, shipped.site]
    spec = f"pkg:{shipped.name}/manifest.yaml"
    shown = run_backport_tool("status", "--manifest", spec, paths=paths, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert f"installed patch set: mine: {spec} (from patchdist)" in shown.stdout
    assert f"installed patch set: other: {spec} (from patchdist)" in shown.stdout
    data = json.loads(
        run_backport_tool("status", "--json", "--manifest", spec, paths=paths, cwd=tmp_path).stdout
    )
    assert {"name": "mine", "manifest": spec, "distribution": "patchdist"} in data["patch_sets"]


def test_the_pytest_plugin_takes_a_package_manifest(
    pytester: pytest.Pytester, shipped: Shipped, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Load the plugin explicitly, the same whether or not it is installed.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(
        f"""
        def test_patched(backport_applied):
            import {shipped.patchset.module} as m
            assert m.Widget().compute(1) == 1001
        """
    )
    spec = f"pkg:{shipped.name}/manifest.yaml"
    result = pytester.runpytest_inprocess(*PLUGIN, f"--backports-manifest={spec}")
    result.assert_outcomes(passed=1)
    pytester.makeini(f"[pytest]\nbackports = true\nbackports_manifest = {spec}\n")
    result = pytester.runpytest_inprocess(*PLUGIN)
    result.assert_outcomes(passed=1)
