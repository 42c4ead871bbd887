"""The pytest plugin, run in pytester sessions on a synthetic patch set."""

from __future__ import annotations

import shutil

import pytest
from helpers import PatchSet

PLUGIN = ("-p", "backport_tool.pytest_plugin")


@pytest.fixture
def manifest(patchset: PatchSet, monkeypatch: pytest.MonkeyPatch) -> str:
    # Load the plugin explicitly, the same whether or not it is installed.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    patchset.add("fix", "Widget.compute")
    patchset.add("old", "Widget.other", applies_to="<1.0")
    return str(patchset.write())


def test_applies_for_the_session_and_reports_in_the_header(
    pytester: pytest.Pytester, patchset: PatchSet, manifest: str
) -> None:
    pytester.makepyfile(
        f"""
        import {patchset.module} as target

        def test_patched(backport_applied):
            backport_applied("fix")
            assert target.Widget().compute(1) == 1001

        def test_temporarily_reverted(backport_reverted):
            with backport_reverted("fix"):
                assert target.Widget().compute(1) == 2
            assert target.Widget().compute(1) == 1001

        def test_not_applicable_one_fails(backport_applied):
            backport_applied("old")
        """
    )
    result = pytester.runpytest_inprocess(*PLUGIN, f"--backports-manifest={manifest}")
    result.stdout.fnmatch_lines(
        [
            f"backport-tool: {patchset.dist} 1.5.0: fix: applied, old: not-applicable",
            "*backport 'old' is not applied: it is not-applicable: *outside applies_to*",
        ]
    )
    result.assert_outcomes(passed=2, failed=1)
    assert patchset.target().Widget().compute(1) == 2  # reverted after the session


def test_inert_without_the_option(
    pytester: pytest.Pytester, patchset: PatchSet, manifest: str
) -> None:
    pytester.makepyfile(
        f"""
        import {patchset.module} as target

        def test_unpatched(backport_applied):
            assert target.Widget().compute(1) == 2
            backport_applied("fix")
        """
    )
    result = pytester.runpytest_inprocess(*PLUGIN)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*backport 'fix' is not applied: no patch set was applied (run pytest with --backports)"]
    )
    assert "backport-tool:" not in result.stdout.str().split("collected")[0]


def test_bare_option_uses_the_rootdir_manifest(
    pytester: pytest.Pytester, patchset: PatchSet, manifest: str
) -> None:
    shutil.copytree(patchset.patches, pytester.path, dirs_exist_ok=True)
    pytester.makepyfile("def test_ok(backport_applied):\n    backport_applied('fix')\n")
    # The test path after the flag stays a test path.
    result = pytester.runpytest_inprocess(*PLUGIN, "--backports", str(pytester.path))
    result.stdout.fnmatch_lines(
        [f"backport-tool: {patchset.dist} 1.5.0: fix: applied, old: not-applicable"]
    )
    result.assert_outcomes(passed=1)


def test_invalid_manifest_is_a_usage_error_without_traceback(
    pytester: pytest.Pytester, manifest: str
) -> None:
    bad = pytester.path / "bad.yaml"
    bad.write_text("version: 1\npackage: torch\nbackports: {}\n")
    pytester.makepyfile("def test_ok():\n    pass\n")
    result = pytester.runpytest_inprocess(*PLUGIN, f"--backports-manifest={bad}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*backport-tool: invalid manifest: *bad.yaml*backports*"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
