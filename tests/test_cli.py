from __future__ import annotations

import errno
import io
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import BACKPORT_SOURCE, TESTS_DIR, PatchSet, run_backport_tool

from backport_tool import __version__, cli
from backport_tool.commands import apply as apply_cmd
from backport_tool.commands import check as check_cmd


def run(patchset: PatchSet | None, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # mypy cannot tell that no key of **env is the helpers' `cwd` or `paths`.
    if patchset:
        return patchset.cli(*args, **env)  # type: ignore[arg-type]
    return run_backport_tool(*args, **env)  # type: ignore[arg-type]


@pytest.fixture
def manifest(patchset: PatchSet) -> str:
    patchset.add("fix", "Widget.compute", signature="(self, x: int) -> int")
    patchset.add("later", "Widget.other", applies_to=">=2.0")
    return str(patchset.write())


def test_apply_prints_one_line_per_backport(patchset: PatchSet, manifest: str) -> None:
    proc = run(patchset, "apply", "--manifest", manifest)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        f"manifest: {manifest}",
        f"applied         fix: replaced {patchset.sym('Widget.compute')}",
        f"not-applicable  later: {patchset.dist} 1.5.0 is outside applies_to '>=2.0'",
        f"{patchset.dist} 1.5.0: 1 applied, 1 not-applicable",
    ]
    assert proc.stderr == ""


def test_check_json(patchset: PatchSet, manifest: str) -> None:
    proc = run(patchset, "check", "--json", "--manifest", manifest)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {
        "format": 1,
        "command": "check",
        "package": patchset.dist,
        "version": "1.5.0",
        "manifest": manifest,
        "source": None,
        "error": None,
        "warnings": [],
        "backports": [
            {
                "id": "fix",
                "status": "ready",
                "reason": "would apply: targets found, signatures match",
                "upstream_claim": None,
                "probe": None,
                "retire": None,
                "selftest": None,
            },
            {
                "id": "later",
                "status": "not-applicable",
                "reason": f"{patchset.dist} 1.5.0 is outside applies_to '>=2.0'",
                "upstream_claim": None,
                "probe": None,
                "retire": None,
                "selftest": None,
            },
        ],
    }


def test_manifest_comes_from_the_environment(patchset: PatchSet, manifest: str) -> None:
    proc = run(patchset, "check", "--json", BACKPORT_TOOL_MANIFEST=manifest)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["manifest"] == manifest


def test_status_shows_the_manifest_against_the_installed_version(
    patchset: PatchSet, manifest: str
) -> None:
    proc = run(patchset, "status", "--manifest", manifest)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[:14] == [
        f"manifest: {manifest}",
        f"{patchset.dist}: 1.5.0",
        "",
        "fix: ready",
        "  summary:    test backport fix",
        "  applies_to: >=1.0,<2.0",
        "  fixed_in:   -",
        "  module:     backports/fix.py",
        f"  target:     {patchset.sym('Widget.compute')}",
        f"    defined on:         {patchset.module}:Widget",
        "    signature expected: (self, x: int) -> int",
        "    signature found:    (self, x: int) -> int",
        "  reason:     would apply: targets found, signatures match",
        "",
    ]
    data = json.loads(run(patchset, "status", "--json", "--manifest", manifest).stdout)
    assert data["backports"][0]["targets"][0]["actual_signature"] == "(self, x: int) -> int"
    assert data["backports"][0]["applies_to"] == ">=1.0,<2.0"


@pytest.mark.parametrize("command", ["apply", "check", "status"])
def test_drift_exits_1(patchset: PatchSet, command: str) -> None:
    patchset.add("fix", "Widget.compute", signature="(self) -> int")
    proc = run(patchset, command, "--manifest", str(patchset.write()))
    assert proc.returncode == 1
    assert "drift" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_disabled_by_environment(patchset: PatchSet, manifest: str) -> None:
    proc = run(patchset, "apply", "--json", "--manifest", manifest, BACKPORT_TOOL_DISABLE="all")
    assert proc.returncode == 0
    statuses = [b["status"] for b in json.loads(proc.stdout)["backports"]]
    assert statuses == ["disabled", "disabled"]


def test_malformed_manifest_exits_2_with_the_key_path(patchset: PatchSet) -> None:
    patchset.add("fix", "Widget.compute")
    patchset.backports[0]["targets"][0]["symbol"] = "no colon here"
    path = patchset.write()
    for command in ("apply", "check", "status"):
        proc = run(patchset, command, "--manifest", str(path))
        assert proc.returncode == 2
        assert proc.stdout == ""
        assert proc.stderr == (
            f"backport-tool: error: invalid manifest: {path}:9: backports[0].targets[0].symbol: "
            "expected a symbol 'dotted.module:Dotted.qualname' (no ':' between the module and "
            "the qualified name), got 'no colon here'\n"
        )


def test_missing_manifest_exits_2(tmp_path: Path) -> None:
    proc = run(None, "check", "--manifest", str(tmp_path / "none.yaml"))
    assert proc.returncode == 2
    assert proc.stderr == (
        f"backport-tool: error: invalid manifest: {tmp_path / 'none.yaml'}: file not found\n"
    )


@pytest.mark.parametrize("argv", [[], ["frobnicate"], ["apply", "--bogus"]])
def test_usage_errors_exit_2(argv: list[str]) -> None:
    proc = run(None, *argv)
    assert proc.returncode == 2
    assert proc.stderr.startswith("usage: backport-tool")
    assert "Traceback" not in proc.stderr


def test_version() -> None:
    proc = run(None, "--version")
    assert (proc.returncode, proc.stdout) == (0, f"backport-tool {__version__}\n")


def test_internal_error_exits_3_and_points_to_a_log(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def explode(*args: object, **kwargs: object) -> int:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(apply_cmd, "run", explode)
    # The log goes where the cache goes.
    monkeypatch.setenv("BACKPORT_TOOL_CACHE_DIR", str(tmp_path / "cache"))
    assert cli.main(["apply"]) == 3
    log = tmp_path / "cache" / "backport-tool.log"
    assert capsys.readouterr().err == (
        "backport-tool: internal error: RuntimeError: kaboom\n"
        f"The traceback is in {log}. Please report it with that file.\n"
    )
    assert "Traceback (most recent call last)" in log.read_text()


def test_internal_error_log_never_follows_a_planted_symlink(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def explode(*args: object, **kwargs: object) -> int:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(apply_cmd, "run", explode)
    home = tmp_path / "cache"
    home.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (home / "backport-tool.log").symlink_to(victim)
    monkeypatch.setenv("BACKPORT_TOOL_CACHE_DIR", str(home))
    assert cli.main(["apply"]) == 3
    assert victim.read_text() == "precious"
    assert "kaboom" in (home / "backport-tool.log").read_text()
    # Another user's directory, writable by all: the log goes to a fresh temp file.
    home.chmod(0o777)
    try:
        assert cli.main(["apply"]) == 3
    finally:
        home.chmod(0o700)
    err = capsys.readouterr().err
    assert f"The traceback is in {home}" not in err.splitlines()[-1]
    assert "backport-tool-" in err.splitlines()[-1]


def test_interrupt_exits_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(*args: object, **kwargs: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(apply_cmd, "run", interrupted)
    assert cli.main(["apply"]) == 130
    assert capsys.readouterr().err == "backport-tool: interrupted\n"


def test_check_supported_strict(patchset: PatchSet, manifest: str) -> None:
    proc = run(patchset, "check", "--manifest", manifest, "--supported", f"{patchset.dist}>=2.0")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[2].strip() == (
        "retire: outside every supported version (>=2.0; applies_to >=1.0,<2.0)"
    )
    strict = run(
        patchset, "check", "--manifest", manifest, "--supported", ">=2.0", "--strict", "--json"
    )
    assert strict.returncode == 1
    retire = [b["retire"] for b in json.loads(strict.stdout)["backports"]]
    assert retire == [
        "retire: outside every supported version (>=2.0; applies_to >=1.0,<2.0)",
        None,
    ]
    # Without --supported, --strict has no retirement to fail on.
    alone = run(patchset, "check", "--manifest", manifest, "--strict")
    assert (alone.returncode, alone.stderr) == (0, "")


def test_lock_and_matrix_commands(patchset: PatchSet, manifest: str, tmp_path: Path) -> None:
    proc = run(patchset, "lock", "--manifest", manifest)
    assert proc.returncode == 0, proc.stderr
    pin, target = proc.stdout.splitlines()[:2]
    assert pin.startswith("updated    fix: sha256 ")
    assert target.startswith(
        f"updated    fix {patchset.sym('Widget.compute')}: fingerprint sha256:"
    )
    proc = run(
        patchset,
        "matrix",
        "--manifest",
        manifest,
        "--source",
        str(patchset.site),
        "--format",
        "markdown",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[:5] == [
        "### fix",
        "",
        "| version | status | upstream claim | targets | signature | fingerprint | copies | "
        "probe | requires |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        "| 1.5.0 | ready | - | found | match | match | 0/0 | - | 0/0 |",
    ]


def test_track_command_exits_1_when_fixed_in_disagrees(tmp_path: Path) -> None:
    proc = run(None, "track", "--upstream", str(tmp_path))
    assert proc.returncode == 2
    assert "is not a git repository" in proc.stderr


def test_check_format_github_annotates_the_manifest_line(patchset: PatchSet) -> None:
    patchset.add("fix", "Widget.compute", signature="(self) -> int")
    patchset.add("old", "Widget.other", applies_to="<1.0")
    manifest = patchset.write()
    command = ("check", "--manifest", str(manifest), "--format", "github", "--supported", ">=1.0")
    proc = run(patchset, *command)
    assert proc.returncode == 1
    annotation, retire, summary = proc.stdout.splitlines()
    assert annotation == (
        f"::error file={str(manifest).replace(':', '%3A')},line=4,"
        "title=backport fix%3A drift::target "
        f"{patchset.sym('Widget.compute')} has signature (self, x: int) -> int, "
        "the backport expects (self) -> int"
    )
    assert retire.startswith(
        f"::warning file={manifest},line=12,title=backport old%3A retire::retire: outside"
    )
    assert summary == f"{patchset.dist} 1.5.0: 1 drift, 1 not-applicable"
    strict = run(patchset, *command, "--strict")
    # --strict fails the job for it, so the annotation is an error.
    assert strict.stdout.splitlines()[1].startswith(f"::error file={manifest},line=12,")


def test_check_format_github_makes_a_contradicted_claim_an_error_under_strict(
    patchset: PatchSet,
) -> None:
    # --strict fails the job for it: a warning annotation would hide why.
    probe = "\n\ndef upstream_probe(symbol, source):\n    return False, 'still adds 1'\n"
    patchset.write_backport("fix.py", BACKPORT_SOURCE + probe)
    patchset.add("fix", "Widget.compute", applies_to="<1.5", fixed_in="1.5.0")
    manifest = patchset.write()
    command = ("check", "--manifest", str(manifest), "--format", "github")
    title = "title=backport fix%3A fixed_in contradicted::"
    plain = run(patchset, *command)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.startswith(f"::warning file={manifest},line=4,{title}")
    strict = run(patchset, *command, "--strict")
    assert strict.returncode == 1, strict.stderr
    assert strict.stdout.startswith(f"::error file={manifest},line=4,{title}")


def test_quiet_prints_only_problems(patchset: PatchSet, manifest: str) -> None:
    quiet = run(patchset, "check", "-q", "--manifest", manifest)
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")
    patchset.add("bad", "Widget.other", signature="(self) -> int")
    noisy = run(patchset, "apply", "--quiet", "--manifest", str(patchset.write()))
    assert noisy.returncode == 1
    assert noisy.stdout.splitlines()[0] == f"manifest: {patchset.patches / 'manifest.yaml'}"
    assert noisy.stdout.splitlines()[1].startswith("drift           bad: target ")
    assert len(noisy.stdout.splitlines()) == 2


def test_manifest_in_the_current_directory_is_the_default(
    patchset: PatchSet, manifest: str
) -> None:
    # `new` writes ./manifest.yaml; `check` run next to it must read that one,
    # not the bundled patch set.
    proc = patchset.cli("check", "--json", cwd=patchset.patches)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["manifest"] == "manifest.yaml"
    assert [b["id"] for b in json.loads(proc.stdout)["backports"]] == ["fix", "later"]


def test_manifest_env_wins_over_the_current_directory(
    patchset: PatchSet, manifest: str, tmp_path: Path
) -> None:
    other = tmp_path / "other.yaml"
    other.write_text(f"version: 1\npackage: {patchset.dist}\nbackports: []\n")
    proc = patchset.cli("check", "--json", cwd=patchset.patches, BACKPORT_TOOL_MANIFEST=str(other))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["backports"] == []


def test_without_a_local_manifest_the_bundled_one_is_used(tmp_path: Path) -> None:
    proc = run_backport_tool("check", "--json", cwd=tmp_path)
    assert proc.returncode in (0, 1), proc.stderr
    assert Path(json.loads(proc.stdout)["manifest"]).name == "manifest.yaml"
    assert json.loads(proc.stdout)["manifest"] != "manifest.yaml"


def exec_error(patchset: PatchSet, manifest: str, *cmd: str) -> str:
    proc = run(patchset, "apply", "--manifest", manifest, "--", *cmd)
    assert (proc.returncode, proc.stdout) == (2, ""), proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stderr


def test_apply_exec_errors_are_usage_errors(
    patchset: PatchSet, manifest: str, tmp_path: Path
) -> None:
    script = tmp_path / "no-shebang.sh"
    script.write_text("echo hi\n")
    script.chmod(0o755)
    assert exec_error(patchset, manifest, str(script)) == (
        f"backport-tool: error: cannot execute {script}: not a program the system can run; a "
        "script needs a '#!' first line naming its interpreter (or run it as: python SCRIPT)\n"
    )
    missing = tmp_path / "missing-interpreter"
    missing.write_text("#!/no/such/python3 -u\nprint('hi')\n")
    missing.chmod(0o755)
    assert exec_error(patchset, manifest, str(missing)) == (
        f"backport-tool: error: cannot execute {missing}: its interpreter /no/such/python3 "
        "(from its '#!' line) was not found; fix the '#!' line or install that interpreter\n"
    )
    assert exec_error(patchset, manifest, str(tmp_path)) == (
        f"backport-tool: error: cannot execute {tmp_path}: it is a directory\n"
    )
    assert exec_error(patchset, manifest, "surely-no-such-command-here") == (
        "backport-tool: error: command not found: surely-no-such-command-here\n"
    )
    assert exec_error(patchset, manifest, "--json", "true") == (
        "backport-tool: error: command not found: --json\n"
    )


def test_apply_of_an_empty_command_name_is_a_usage_error(patchset: PatchSet, manifest: str) -> None:
    # What `apply -- "$PY" x.py` runs with PY unset.
    assert exec_error(patchset, manifest, "", "x.py") == (
        "backport-tool: error: command not found: '' (an empty name: is a variable in the "
        "command unset?)\n"
    )


OUTPUT_FULL = (
    "backport-tool: error: cannot write the output to stdout: No space left on device; what "
    "was printed is incomplete. Check where stdout goes (a full disk?), then run the command "
    "again\n"
)


def test_an_output_that_cannot_be_written_exits_2_not_as_a_bug(
    patchset: PatchSet, manifest: str, tmp_path: Path
) -> None:
    full = Path("/dev/full")
    if not full.exists():
        pytest.skip("no /dev/full here")
    env = patchset.env(BACKPORT_TOOL_CACHE_DIR=str(tmp_path / "cache"))
    command = [sys.executable, "-m", "backport_tool", "check"]
    with full.open("w") as sink:
        to_stdout = subprocess.run(
            [*command, "--manifest", manifest],
            stdout=sink,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=TESTS_DIR,
        )
        # An error message that cannot be written either: the status says it.
        to_stderr = subprocess.run(
            [*command, "--manifest", str(tmp_path / "none.yaml")],
            stdout=subprocess.PIPE,
            stderr=sink,
            text=True,
            env=env,
            cwd=TESTS_DIR,
        )
    assert (to_stdout.returncode, to_stdout.stderr) == (2, OUTPUT_FULL)
    assert (to_stderr.returncode, to_stderr.stdout) == (2, "")
    # Not an internal error: no log of one.
    assert not (tmp_path / "cache" / "backport-tool.log").exists()


class _Failing(io.StringIO):
    def write(self, text: str) -> int:
        raise OSError(errno.EIO, "Input/output error")


def test_an_output_error_is_told_from_an_oserror_of_the_command(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    patchset: PatchSet,
    manifest: str,
    tmp_path: Path,
) -> None:
    failing = _Failing()
    with monkeypatch.context() as patched:
        patched.setattr(sys, "stdout", failing)
        assert cli.main(["check", "--manifest", manifest]) == 2
        assert sys.stdout is failing
    assert capsys.readouterr().err == (
        "backport-tool: error: cannot write the output to stdout: Input/output error; what was "
        "printed is incomplete. Check where stdout goes (a full disk?), then run the command "
        "again\n"
    )

    # The same error raised by the command's own work is a bug.
    def explode(*args: object, **kwargs: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(check_cmd, "run", explode)
    monkeypatch.setenv("BACKPORT_TOOL_CACHE_DIR", str(tmp_path / "cache"))
    assert cli.main(["check", "--manifest", manifest]) == 3
    assert capsys.readouterr().err.startswith(
        "backport-tool: internal error: OSError: [Errno 28] No space left on device\n"
    )


BAD_LOG_LEVEL = "backport-tool: ignoring BACKPORT_TOOL_LOG='GARBAGE': not a logging level\n"


def test_a_log_level_that_is_no_level_is_warned_of_once(patchset: PatchSet, manifest: str) -> None:
    proc = run(patchset, "check", "-q", "--manifest", manifest, BACKPORT_TOOL_LOG="garbage")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", BAD_LOG_LEVEL)
    # apply() warns too; the log at DEBUG would show it a second time.
    proc = run(patchset, "apply", "-v", "--manifest", manifest, BACKPORT_TOOL_LOG="garbage")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("BACKPORT_TOOL_LOG") == 1
    assert proc.stderr.startswith(BAD_LOG_LEVEL)


def test_json_and_quiet_are_refused_with_a_command(patchset: PatchSet, manifest: str) -> None:
    proc = run(patchset, "apply", "--json", "--manifest", manifest, "--", "true")
    assert (proc.returncode, proc.stderr) == (
        2,
        "backport-tool: error: --json and --quiet report on this process; with -- CMD, CMD "
        "reports\n",
    )


def test_every_command_takes_json_and_quiet_where_it_means_something(
    patchset: PatchSet, manifest: str
) -> None:
    parser = cli.build_parser()
    commands = cli.subcommands(parser)
    quiet = {name for name, p in commands.items() if "--quiet" in p._option_string_actions}
    assert quiet == {"apply", "check", "status", "lock", "track", "new"}
    assert all("--json" in p._option_string_actions for p in commands.values())
    # status -q: nothing when all is well.
    proc = run(patchset, "status", "-q", "--manifest", manifest)
    assert (proc.returncode, proc.stdout) == (0, "")
    # lock --json and -q.
    proc = run(patchset, "lock", "--json", "-q", "--manifest", manifest)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {
        "format": 1,
        "command": "lock",
        "manifest": manifest,
        "entries": [
            {
                "id": "fix",
                "symbol": None,
                "action": "updated",
                "detail": json.loads(proc.stdout)["entries"][0]["detail"],
            },
            {
                "id": "fix",
                "symbol": patchset.sym("Widget.compute"),
                "action": "updated",
                "detail": json.loads(proc.stdout)["entries"][1]["detail"],
            },
        ],
    }
    again = run(patchset, "lock", "-q", "--manifest", manifest)
    assert (again.returncode, again.stdout) == (0, "")


def test_cmd_gets_back_the_signals_python_ignores(patchset: PatchSet, manifest: str) -> None:
    # An ignored signal stays ignored across exec: CMD must die of SIGPIPE as
    # it would started from the shell (`yes | head -1`), not ignore it.
    proc = run(patchset, "apply", "--manifest", manifest, "--", "sh", "-c", "kill -PIPE $$")
    assert proc.returncode == -signal.SIGPIPE, proc.stderr


def test_a_closed_stdout_is_refused_before_anything_is_written(
    patchset: PatchSet,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # `backport-tool new ... >&-`: Python starts with sys.stdout None.
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.syspath_prepend(str(patchset.site))
    monkeypatch.chdir(work)
    monkeypatch.setattr(sys, "stdout", None)
    command = ["new", "fix", "--target", patchset.sym("Widget.compute"), "--package", patchset.dist]
    assert cli.main(command) == 2
    assert capsys.readouterr().err == (
        "backport-tool: error: stdout is closed, so nothing can be printed; run it with "
        "stdout open (>/dev/null to drop the output)\n"
    )
    assert list(work.iterdir()) == []
