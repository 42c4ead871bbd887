"""`apply` and `check` need only packaging and pyyaml: GitPython, ruamel.yaml and
tomli are imported by the commands that use them, and their absence is a
one-line error there."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import PatchSet, python_env

from backport_tool.errors import BackportToolError, MissingDependencyError

# Only what the patch set needs, with the fake package.
OPTIONAL = {"git": "git.py", "ruamel": "ruamel/__init__.py", "tomli": "tomli.py"}

# What a module that is not installed raises, and a record of the attempt: a
# command that caught the ImportError and went on would otherwise pass.
BLOCKER = """\
import os

with open(os.environ["BLOCKED_LOG"], "a", encoding="utf-8") as log:
    log.write({name!r} + "\\n")
raise ModuleNotFoundError("No module named {name!r}", name={name!r})
"""

Run = Callable[..., subprocess.CompletedProcess[str]]


def _console_script() -> Path:
    script = Path(sys.executable).parent / "backport-tool"
    if not script.exists():
        pytest.skip(f"no console script next to {sys.executable}; pip install the project")
    return script


@pytest.fixture
def blocked(tmp_path: Path) -> Path:
    """A directory that, first on PYTHONPATH, makes GitPython, ruamel.yaml and
    tomli unimportable; the attempts go to ``blocked.log`` beside it."""
    root = tmp_path / "blocked"
    for name, relpath in OPTIONAL.items():
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(BLOCKER.format(name=name), encoding="utf-8")
    return root


def _attempts(blocked: Path) -> list[str]:
    log = blocked.parent / "blocked.log"
    return log.read_text(encoding="utf-8").split() if log.exists() else []


@pytest.fixture(params=["module", "console-script"])
def run(request: pytest.FixtureRequest, patchset: PatchSet, blocked: Path, tmp_path: Path) -> Run:
    """Run backport-tool (``python -m`` or the installed script) without the
    optional packages, in a directory with no manifest of its own."""
    launcher = (
        [sys.executable, "-m", "backport_tool"]
        if request.param == "module"
        else [str(_console_script())]
    )
    cwd = tmp_path / "cwd"
    cwd.mkdir()

    def invoke(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        environ = python_env(
            blocked, patchset.site, BLOCKED_LOG=str(blocked.parent / "blocked.log"), **env
        )
        return subprocess.run(
            [*launcher, *args], capture_output=True, text=True, env=environ, cwd=cwd, timeout=120
        )

    return invoke


def _manifest(patchset: PatchSet) -> str:
    patchset.add("fix-compute", "Widget.compute")
    return str(patchset.write())


def test_the_blocker_really_blocks(blocked: Path, tmp_path: Path) -> None:
    env = python_env(blocked, BLOCKED_LOG=str(tmp_path / "blocked.log"))
    for module in ("git", "ruamel.yaml", "tomli"):
        code = f"import {module}"
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        assert done.returncode == 1, done.stderr
        assert "ModuleNotFoundError" in done.stderr, done.stderr
    assert _attempts(blocked) == ["git", "ruamel", "tomli"]


@pytest.mark.parametrize(
    "args",
    [["apply"], ["apply", "--json"], ["check"], ["check", "--json"], ["status"]],
    ids=" ".join,
)
def test_apply_check_and_status_need_no_optional_package(
    run: Run, patchset: PatchSet, blocked: Path, args: list[str]
) -> None:
    done = run(*args, "--manifest", _manifest(patchset))
    assert done.returncode == 0, done.stderr
    assert "fix-compute" in done.stdout
    assert _attempts(blocked) == []


def test_apply_cmd_needs_no_optional_package(run: Run, patchset: PatchSet, blocked: Path) -> None:
    # The child starts with our sitecustomize, which applies the patch set.
    code = textwrap.dedent(f"""\
        import {patchset.module} as target
        import backport_tool
        assert target.Widget().compute(1) == 1001
        print(backport_tool.current_report().results[0].status.value)
        """)
    done = run("apply", "--manifest", _manifest(patchset), "--", sys.executable, "-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["applied"]
    assert _attempts(blocked) == []


def test_the_library_apply_and_check_need_no_optional_package(
    patchset: PatchSet, blocked: Path, tmp_path: Path
) -> None:
    code = textwrap.dedent(f"""\
        import sys
        import backport_tool

        manifest = {_manifest(patchset)!r}
        checked = backport_tool.check(manifest)
        applied = backport_tool.apply(manifest, eager=True)
        print(checked.results[0].status.value, applied.results[0].status.value)
        print(sorted({{"git", "ruamel", "tomli"}} & set(sys.modules)))
        """)
    env = python_env(blocked, patchset.site, BLOCKED_LOG=str(blocked.parent / "blocked.log"))
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["ready applied", "[]"]
    assert _attempts(blocked) == []


def _one_line_error(done: subprocess.CompletedProcess[str], message: str) -> None:
    assert done.returncode == 2, done.stderr
    assert done.stderr == f"backport-tool: error: {message}\n"
    assert done.stdout == ""


def test_track_without_gitpython_is_a_one_line_error(
    run: Run, patchset: PatchSet, tmp_path: Path
) -> None:
    done = run("track", "--upstream", str(tmp_path), "--manifest", _manifest(patchset))
    _one_line_error(done, "`track` needs GitPython: pip install GitPython")


def test_reading_a_git_revision_without_gitpython_is_a_one_line_error(
    run: Run, patchset: PatchSet, tmp_path: Path
) -> None:
    spec = f"{tmp_path}@v1.5.0"
    done = run("check", "--source", spec, "--manifest", _manifest(patchset))
    _one_line_error(done, f"reading {spec} needs GitPython: pip install GitPython")


@pytest.mark.parametrize(
    "args",
    [["lock"], ["new", "fix-other", "--target", "MODULE:Widget.other"]],
    ids=lambda args: args[0],
)
def test_writing_the_manifest_without_ruamel_is_a_one_line_error(
    run: Run, patchset: PatchSet, args: list[str]
) -> None:
    manifest = _manifest(patchset)
    before = Path(manifest).read_bytes()
    args = [arg.replace("MODULE", patchset.module) for arg in args]
    done = run(*args, "--manifest", manifest)
    _one_line_error(
        done, "writing the manifest (`lock`, `new`) needs ruamel.yaml: pip install ruamel.yaml"
    )
    assert Path(manifest).read_bytes() == before


def test_a_dependency_that_fails_to_import_says_why() -> None:
    # GitPython installed without a git executable raises a plain ImportError
    # over several lines; `pip install` would not fix that.
    cause = ImportError("Failed to initialize: Bad git executable.\nThe git executable must be")
    error = MissingDependencyError("`track`", "GitPython", "git", cause)
    assert str(error) == (
        "`track` needs GitPython, which failed to import: Failed to initialize: Bad git executable."
    )
    assert isinstance(error, BackportToolError)
    assert isinstance(error, ImportError)
    assert error.exit_code == 2
    assert error.name == "git"


@pytest.mark.parametrize(
    ("missing", "not_installed"),
    [("ruamel", True), ("ruamel.yaml", True), ("ruamel.yaml.comments", False), ("yaml", False)],
)
def test_only_the_package_itself_missing_means_not_installed(
    missing: str, not_installed: bool
) -> None:
    cause = ModuleNotFoundError(f"No module named {missing!r}", name=missing)
    message = str(MissingDependencyError("`lock`", "ruamel.yaml", "ruamel.yaml", cause))
    assert message.endswith(": pip install ruamel.yaml") is not_installed, message
