"""The pytest plugin, run in pytester sessions on a synthetic patch set."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
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


def test_backport_state_gives_the_session_its_patch_set_back(
    pytester: pytest.Pytester, patchset: PatchSet, manifest: str
) -> None:
    # A test that runs as a fresh process would must not leave every later
    # test of a --backports session unpatched.
    pytester.makepyfile(
        f"""
        import {patchset.module} as target

        BEFORE = []

        def test_before_it():
            BEFORE.append(vars(target.Widget)["compute"])

        def test_fresh(monkeypatch, backport_state):
            # Torn down before monkeypatch: the session's own switches apply.
            monkeypatch.setenv("BACKPORT_TOOL_ENABLE", "extra")
            assert target.Widget().compute(1) == 2

        def test_after_it(backport_applied):
            backport_applied("fix")
            assert target.Widget().compute(1) == 1001
            assert target.Widget().other(1) == 3
            # The very objects of before: the backport module did not run
            # again (a replaced class would be another class, and objects
            # built before would no longer be instances of it).
            assert vars(target.Widget)["compute"] is BEFORE[0]
        """
    )
    patchset.add("extra", "Widget.other", opt_in=True)
    manifest = str(patchset.write())
    result = pytester.runpytest_inprocess(*PLUGIN, f"--backports-manifest={manifest}")
    result.assert_outcomes(passed=3)
    assert patchset.target().Widget().compute(1) == 2


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


@pytest.fixture
def broken(patchset: PatchSet, manifest: str) -> str:
    """A manifest with one backport of each problem status apply can give, besides
    an applied and a not-applicable one."""
    patchset.add("gone", "Widget.absent")
    patchset.add("moved", "Widget.helper", signature="(x: str) -> str")
    patchset.write_backport("broken.py", "raise RuntimeError('boom')\n")
    patchset.add("boom", "free_function", module="backports/broken.py")
    return str(patchset.write())


TRIVIAL_TEST = "def test_ok():\n    pass\n"


def test_strict_stops_the_session_at_start_naming_each_problem(
    pytester: pytest.Pytester, patchset: PatchSet, broken: str
) -> None:
    pytester.makepyfile(TRIVIAL_TEST)
    result = pytester.runpytest_inprocess(
        *PLUGIN, "--backports-strict", f"--backports-manifest={broken}"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    # The header with every status still comes first.
    result.stdout.fnmatch_lines(
        [
            f"backport-tool: {patchset.dist} 1.5.0: fix: applied, old: not-applicable, "
            "gone: missing, moved: drift, boom: failed"
        ]
    )
    result.stderr.fnmatch_lines(
        [
            "ERROR: backport-tool (strict): 3 backports of *manifest.yaml are not fully in force, "
            "so no test ran: "
            "gone: missing (target *Widget.absent*); "
            "moved: drift (target *Widget.helper has signature*); "
            "boom: failed (backports/broken.py raised RuntimeError: boom on import). "
            "Run `backport-tool status` for details, or set BACKPORT_TOOL_DISABLE=gone,moved,boom "
            "to skip them."
        ]
    )
    output = result.stdout.str() + result.stderr.str()
    assert "collected" not in output
    assert "Traceback" not in output
    assert "INTERNALERROR" not in output
    assert patchset.target().Widget().compute(1) == 2  # reverted after the session


def test_strict_runs_the_session_when_nothing_is_wrong(
    pytester: pytest.Pytester, patchset: PatchSet, manifest: str
) -> None:
    pytester.makepyfile("def test_ok(backport_applied):\n    backport_applied('fix')\n")
    # A not-applicable backport is correctly not applied, not a problem.
    result = pytester.runpytest_inprocess(
        *PLUGIN, "--backports-strict", f"--backports-manifest={manifest}"
    )
    result.assert_outcomes(passed=1)
    assert "backport-tool" not in result.stdout.str().split("collected")[1]


def test_strict_stops_at_a_switch_that_names_no_backport(
    pytester: pytest.Pytester,
    patchset: PatchSet,
    manifest: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A typo in BACKPORT_TOOL_ENABLE: the CLI exits 2; the strict session
    # printed a warning and tested without the opt-in backport.
    pytester.makepyfile(TRIVIAL_TEST)
    monkeypatch.setenv("BACKPORT_TOOL_ENABLE", "fxi")
    unknown = (
        "the BACKPORT_TOOL_ENABLE variable names 'fxi', which is no backport of the manifest; "
        "did you mean 'fix'?"
    )
    result = pytester.runpytest_inprocess(*PLUGIN, f"--backports-manifest={manifest}")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"backport-tool: {unknown}"])
    strict = pytester.runpytest_inprocess(
        *PLUGIN, "--backports-strict", f"--backports-manifest={manifest}"
    )
    assert strict.ret == pytest.ExitCode.USAGE_ERROR
    strict.stderr.fnmatch_lines([f"ERROR: backport-tool (strict): {unknown}; so no test ran"])


def test_without_strict_a_problem_shows_in_header_and_summary(
    pytester: pytest.Pytester, patchset: PatchSet, broken: str
) -> None:
    pytester.makepyfile(TRIVIAL_TEST)
    result = pytester.runpytest_inprocess(*PLUGIN, f"--backports-manifest={broken}")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "backport-tool: fakepkg*: fix: applied, *boom: failed",
            "backport-tool: gone is missing: target *Widget.absent*",
            "backport-tool: moved is drift: target *Widget.helper has signature*",
            "backport-tool: boom is failed: backports/broken.py raised RuntimeError: boom *",
            "collected 1 item",
            "*= backport-tool =*",
            "3 backports of *manifest.yaml are not fully in force; the tests ran anyway "
            "(--backports-strict stops the session at start instead):",
            "  gone: missing (target *)",
            "  moved: drift (target *)",
            "  boom: failed (*)",
            "*= 1 passed*",
        ]
    )


def _project(pytester: pytest.Pytester, patchset: PatchSet, ini: str) -> Path:
    """The patch set under ci/ of a project configured by ``ini``, with a test in
    tests/; return the tests directory."""
    shutil.copytree(patchset.patches, pytester.path / "ci")
    pytester.makeini(f"[pytest]\n{ini}\n")
    tests = pytester.mkpydir("tests")
    (tests / "test_it.py").write_text(
        f"import {patchset.module} as target\n\n"
        "def test_patched():\n"
        "    assert target.Widget().compute(1) == 1001\n"
    )
    return tests


def test_ini_backports_and_manifest_relative_to_the_ini_file(
    pytester: pytest.Pytester, patchset: PatchSet, manifest: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tests = _project(pytester, patchset, "backports = true\nbackports_manifest = ci/manifest.yaml")
    monkeypatch.chdir(tests)  # relative to the ini file, not the current directory
    result = pytester.runpytest_inprocess(*PLUGIN)
    result.stdout.fnmatch_lines([f"backport-tool: {patchset.dist} 1.5.0: fix: applied, *"])
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("ini", "args", "outcome"),
    [
        # The ini's manifest alone leaves the plugin off; --backports turns it on.
        ("backports_manifest = ci/manifest.yaml", (), "failed"),
        ("backports_manifest = ci/manifest.yaml", ("--backports",), "passed"),
        ("backports = false\nbackports_manifest = ci/manifest.yaml", ("--backports",), "passed"),
        (
            "backports = true\nbackports_manifest = ci/manifest.yaml",
            ("-o", "backports=false"),
            "failed",
        ),
    ],
)
def test_ini_manifest_and_switch(
    pytester: pytest.Pytester,
    patchset: PatchSet,
    manifest: str,
    ini: str,
    args: tuple[str, ...],
    outcome: str,
) -> None:
    _project(pytester, patchset, ini)
    result = pytester.runpytest_inprocess(*PLUGIN, *args)
    result.assert_outcomes(**{outcome: 1})
    assert ("backport-tool:" in result.stdout.str()) == (outcome == "passed")


STRICT_INI = "backports = true\nbackports_strict = true\nbackports_manifest = ci/manifest.yaml"


def test_ini_strict(pytester: pytest.Pytester, patchset: PatchSet, broken: str) -> None:
    _project(pytester, patchset, STRICT_INI)
    result = pytester.runpytest_inprocess(*PLUGIN)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: backport-tool (strict): 3 backports of *ci*manifest.yaml*gone: missing*"]
    )
    assert "collected" not in result.stdout.str()


def test_strict_off_on_the_command_line_overrides_the_ini(
    pytester: pytest.Pytester, patchset: PatchSet, broken: str
) -> None:
    _project(pytester, patchset, STRICT_INI)
    result = pytester.runpytest_inprocess(*PLUGIN, "-o", "backports_strict=false")
    result.stdout.fnmatch_lines(["3 backports of *not fully in force*"])
    result.assert_outcomes(passed=1)


def test_strict_on_the_command_line_overrides_the_ini(
    pytester: pytest.Pytester, patchset: PatchSet, broken: str
) -> None:
    _project(pytester, patchset, "backports_manifest = ci/manifest.yaml\nbackports_strict = false")
    result = pytester.runpytest_inprocess(*PLUGIN, "--backports-strict")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: backport-tool (strict): 3 backports *"])


def test_manifest_on_the_command_line_overrides_the_ini(
    pytester: pytest.Pytester, patchset: PatchSet, broken: str
) -> None:
    _project(pytester, patchset, STRICT_INI)
    good = pytester.path / "ci" / "good.yaml"
    fix = [b for b in patchset.backports if b["id"] == "fix"]
    good.write_text(yaml.safe_dump({"version": 1, "package": patchset.dist, "backports": fix}))
    result = pytester.runpytest_inprocess(*PLUGIN, f"--backports-manifest={good}")
    result.stdout.fnmatch_lines([f"backport-tool: {patchset.dist} 1.5.0: fix: applied"])
    result.assert_outcomes(passed=1)


def test_help_is_shown_whatever_the_manifest(pytester: pytest.Pytester, manifest: str) -> None:
    pytester.makeini("[pytest]\nbackports = true\nbackports_manifest = nowhere.yaml\n")
    result = pytester.runpytest_inprocess(*PLUGIN, "--help")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*--backports-strict*", "*backports_manifest (string):*"])
