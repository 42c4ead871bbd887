"""The operator surface, through the installed console script: switches, which
manifest, claims in CI, output hygiene, and the files the tool keeps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import git
import pytest
from helpers import BACKPORT_SOURCE, PatchSet, python_env

from backport_tool import plan
from backport_tool.config import Switches
from backport_tool.manifest_file import read_manifest_file

SCRIPT = Path(sys.executable).parent / "backport-tool"

PROBE_NOT_FIXED = """

def upstream_probe(symbol, source):
    return False, "the code still adds 1"
"""


def tool(
    patchset: PatchSet | None,
    *args: str,
    cwd: Path | None = None,
    paths: tuple[Path, ...] = (),
    **env: str,
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``backport-tool`` console script, with ``paths`` (and the
    patch set's fake distribution) first on PYTHONPATH."""
    site = (patchset.site,) if patchset is not None else ()
    environ = python_env(*paths, *site, **env)
    return subprocess.run(
        [str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=environ,
        cwd=cwd or (patchset.root if patchset is not None else None),
        timeout=600,
        check=False,
    )


def apply_python(
    patchset: PatchSet, manifest: str, code: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """``backport-tool apply --manifest MANIFEST -- python -c CODE``."""
    return subprocess.run(
        [str(SCRIPT), "apply", "--manifest", manifest, "--", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=python_env(patchset.site, **env),
        cwd=patchset.root,
        timeout=600,
        check=False,
    )


@pytest.fixture
def manifest(patchset: PatchSet) -> str:
    patchset.add("fix", "Widget.compute")
    patchset.add("later", "Widget.other", applies_to=">=2.0")
    return str(patchset.write())


# --- 2. switches -------------------------------------------------------------


@pytest.mark.parametrize("command", ["apply", "check", "status"])
@pytest.mark.parametrize(
    ("args", "env", "source"),
    [
        (("--enable", "fxi"), {}, "--enable"),
        (("--disable", "fxi"), {}, "--disable"),
        ((), {"BACKPORT_TOOL_DISABLE": "fxi"}, "the BACKPORT_TOOL_DISABLE variable"),
        ((), {"BACKPORT_TOOL_ENABLE": "fxi"}, "the BACKPORT_TOOL_ENABLE variable"),
    ],
)
def test_an_unknown_id_is_exit_2_with_did_you_mean(
    patchset: PatchSet,
    manifest: str,
    command: str,
    args: tuple[str, ...],
    env: dict[str, str],
    source: str,
) -> None:
    proc = subprocess.run(
        [str(SCRIPT), command, "--manifest", manifest, *args],
        capture_output=True,
        text=True,
        env=patchset.env(**env),
        check=False,
    )
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == (
        f"backport-tool: error: {source} names 'fxi', which is no backport of the manifest; "
        "did you mean 'fix'?\n"
    )


def test_an_unknown_id_with_nothing_close_lists_the_known_ones(
    patchset: PatchSet, manifest: str
) -> None:
    proc = tool(patchset, "apply", "--manifest", manifest, "--disable", "zzzz", "--", "true")
    assert proc.returncode == 2
    assert proc.stderr == (
        "backport-tool: error: --disable names 'zzzz', which is no backport of the manifest; "
        "known ids: fix, later, or 'all'\n"
    )


def test_disable_switches_a_backport_off(patchset: PatchSet, manifest: str) -> None:
    proc = tool(patchset, "apply", "--manifest", manifest, "--disable", "fix", "--json")
    assert proc.returncode == 0, proc.stderr
    statuses = {b["id"]: b["status"] for b in json.loads(proc.stdout)["backports"]}
    assert statuses == {"fix": "disabled", "later": "not-applicable"}


# --- 3. which manifest ---------------------------------------------------------


def test_the_manifest_is_found_upwards_and_named(patchset: PatchSet, manifest: str) -> None:
    deep = patchset.patches / "backports" / "sub"
    deep.mkdir()
    for command in ("apply", "check", "status"):
        proc = tool(patchset, command, cwd=deep)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines()[0] == f"manifest: {manifest}"


def test_the_search_stops_at_the_repository_root(patchset: PatchSet, manifest: str) -> None:
    inner = patchset.patches / "inner"
    (inner / ".git").mkdir(parents=True)
    proc = tool(patchset, "status", cwd=inner)
    # Not the patch set above the repository: the bundled one.
    assert f"manifest: {manifest}" not in proc.stdout
    assert "manifest: " in proc.stdout


def test_lock_and_new_refuse_to_write_into_an_installed_package(tmp_path: Path) -> None:
    import backport_tool  # the installed copy, which the script runs

    bundled = Path(backport_tool.__file__).parent / "_bundled" / "manifest.yaml"
    if not bundled.is_file():
        pytest.skip("backport-tool is not installed (run through scripts/run-tests)")
    before = bundled.read_bytes()
    lock = tool(None, "lock", cwd=tmp_path)  # no manifest.yaml here or above: the bundled one
    assert lock.returncode == 2
    assert "inside an installed package" in lock.stderr
    assert lock.stderr.count("\n") == 1
    new = tool(
        None,
        "new",
        "some-fix",
        "--target",
        "json:dumps",
        "--manifest",
        str(bundled),
        cwd=tmp_path,
    )
    assert new.returncode == 2
    assert "inside an installed package" in new.stderr
    assert bundled.read_bytes() == before


# --- 4. claims and CI ----------------------------------------------------------


@pytest.fixture
def contradicted(patchset: PatchSet) -> str:
    patchset.add("fixed", "Widget.compute", applies_to=">=1.0,<1.5", fixed_in="1.5.0")
    patchset.write_backport("fix.py", BACKPORT_SOURCE + PROBE_NOT_FIXED)
    return str(patchset.write())


def test_a_contradicted_claim_warns_and_fails_only_strict(
    patchset: PatchSet, contradicted: str
) -> None:
    plain = tool(patchset, "check", "--manifest", contradicted)
    assert plain.returncode == 0, plain.stderr
    assert "warning: fixed_in is contradicted" in plain.stdout
    quiet = tool(patchset, "check", "-q", "--manifest", contradicted)
    assert quiet.returncode == 0
    assert "warning: fixed_in is contradicted" in quiet.stdout
    for extra in ((), ("--supported", f"{patchset.dist}>=1.0"), ("--json",)):
        strict = tool(patchset, "check", "--strict", "--manifest", contradicted, *extra)
        assert strict.returncode == 1, strict.stdout


def test_apply_says_a_fixed_upstream_claim_is_not_verified(
    patchset: PatchSet, contradicted: str
) -> None:
    proc = tool(patchset, "apply", "--manifest", contradicted)
    assert proc.returncode == 0, proc.stderr
    assert "not verified" in proc.stdout
    assert "backport-tool check" in proc.stdout


def test_check_without_the_gated_package_is_exit_2(patchset: PatchSet) -> None:
    patchset.add("fix", "Widget.compute")
    data = {"version": 1, "package": "surely-not-installed-dist", "backports": patchset.backports}
    manifest = str(patchset.write(data))
    proc = tool(patchset, "check", "--manifest", manifest)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr.startswith(
        "backport-tool: error: surely-not-installed-dist is not installed"
    )
    assert proc.stderr.count("\n") == 1


# --- 5. output hygiene ---------------------------------------------------------


@pytest.mark.parametrize("command", ["status", "check", "apply"])
def test_a_closed_pipe_ends_quietly(patchset: PatchSet, manifest: str, command: str) -> None:
    proc = subprocess.Popen(
        [str(SCRIPT), command, "--manifest", manifest],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=patchset.env(),
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    # No reader left before the first line is written: every write is EPIPE.
    proc.stdout.close()
    with proc.stderr:
        err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert err == ""


def test_quiet_is_silent_even_when_torch_warns_about_numpy(tmp_path: Path) -> None:
    # A NumPy that cannot be imported, as in a venv without it: torch warns.
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['numpy'] = None\n")
    repo_manifest = Path(__file__).resolve().parents[1] / "manifest.yaml"
    warned = subprocess.run(
        [sys.executable, "-c", "import torch"],
        capture_output=True,
        text=True,
        env=python_env(tmp_path),
        check=False,
    )
    assert "Failed to initialize NumPy" in warned.stderr
    for command in ("apply", "check"):
        proc = tool(
            None, command, "-q", "--manifest", str(repo_manifest), cwd=tmp_path, paths=(tmp_path,)
        )
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", ""), command


def _upstream(tmp_path: Path) -> Path:
    repo = git.Repo.init(tmp_path / "upstream")
    (tmp_path / "upstream" / "a.txt").write_text("a\n")
    repo.index.add(["a.txt"])
    repo.index.commit("first")
    return tmp_path / "upstream"


def test_every_json_output_is_one_object_with_format_and_command(
    patchset: PatchSet, manifest: str, tmp_path: Path
) -> None:
    upstream = _upstream(tmp_path)
    runs = {
        "apply": ("apply", "--json", "--manifest", manifest),
        "check": ("check", "--json", "--manifest", manifest),
        "status": ("status", "--json", "--manifest", manifest),
        "lock": ("lock", "--json", "--manifest", manifest),
        "matrix": ("matrix", "--json", "--manifest", manifest, "--source", str(patchset.site)),
        "track": (
            "track",
            "--json",
            "--manifest",
            manifest,
            "--upstream",
            str(upstream),
        ),
        "new": (
            "new",
            "another",
            "--json",
            "--manifest",
            manifest,
            "--target",
            patchset.sym("Widget.helper"),
        ),
    }
    for command, args in runs.items():
        proc = tool(patchset, *args)
        assert proc.returncode == 0, (command, proc.stderr)
        data = json.loads(proc.stdout)
        assert isinstance(data, dict)
        assert data["format"] == 1, command
        assert data["command"] == command
        assert data["manifest"] == manifest, command
        entries = data.get("backports") or data.get("entries") or data.get("versions") or [data]
        for entry in entries:
            if "backports" in entry:  # matrix: one report per version
                assert all("id" in b for b in entry["backports"])
            else:
                assert "id" in entry, (command, entry)


def test_help_lists_the_environment_variables_and_exit_codes() -> None:
    for args in (("--help",), ("apply", "--help"), ("check", "--help")):
        proc = tool(None, *args)
        assert proc.returncode == 0
        for name in (
            "BACKPORT_TOOL_MANIFEST",
            "BACKPORT_TOOL_ENABLE",
            "BACKPORT_TOOL_DISABLE",
            "BACKPORT_TOOL_LOG",
            "BACKPORT_TOOL_CACHE_DIR",
            "exit codes:",
            "141",
        ):
            assert name in proc.stdout, (args, name)


# --- 7. never break the app ----------------------------------------------------


def test_apply_cmd_keeps_every_pythonpath_entry(patchset: PatchSet, manifest: str) -> None:
    given = os.pathsep.join([str(patchset.site), "", "elsewhere", ""])
    code = "import os; print(os.environ['PYTHONPATH'])"
    proc = apply_python(patchset, manifest, code, PYTHONPATH=given)
    assert proc.returncode == 0, proc.stderr
    boot, _, rest = proc.stdout.strip().partition(os.pathsep)
    assert boot.endswith("_boot")
    assert rest == given


# --- 8. files the tool reads -----------------------------------------------------


def test_a_fifo_at_the_plan_path_does_not_hang_apply_cmd(
    patchset: PatchSet, manifest: str, tmp_path: Path
) -> None:
    home = tmp_path / "plans"
    home.mkdir(mode=0o700)
    file = read_manifest_file(Path(manifest))
    os.environ["BACKPORT_TOOL_CACHE_DIR"] = str(home)  # the autouse fixture restores it
    os.mkfifo(plan.plan_path(file, "1.5.0", Switches()))
    code = (
        "import backport_tool; r = backport_tool.current_report(); "
        "print(r.by_id('fix').status.value)"
    )
    proc = apply_python(patchset, manifest, code, BACKPORT_TOOL_CACHE_DIR=str(home))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "pending"
