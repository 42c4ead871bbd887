"""The cache files: only regular, trusted files are read, writes never follow a
planted link, and apply() survives whatever was left at a plan path."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from helpers import BACKPORT_SOURCE, TARGET_SOURCE, PatchSet

import backport_tool
from backport_tool import api, cache, installed, plan
from backport_tool.config import Switches
from backport_tool.errors import ManifestError
from backport_tool.manifest import parse_manifest_file
from backport_tool.manifest_file import read_manifest_file
from backport_tool.report import Status

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    directory = tmp_path / "cache"
    directory.mkdir(mode=0o700)
    return directory


def test_a_written_file_reads_back(home: Path) -> None:
    path = home / "plan.json"
    assert cache.write_json(path, {"a": [1, 2]})
    assert cache.read_json(path) == {"a": [1, 2]}
    assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0
    assert [p.name for p in home.iterdir()] == ["plan.json"]  # no temporary file left


def test_a_fifo_is_not_read_and_does_not_block(home: Path) -> None:
    path = home / "plan.json"
    os.mkfifo(path)
    # A blocking open of a FIFO with no writer would hang this test for ever.
    assert cache.read_bytes(path) is None


@pytest.mark.parametrize("target", ["/dev/zero", "file"])
def test_a_symlink_is_not_followed_on_read(home: Path, tmp_path: Path, target: str) -> None:
    real = tmp_path / "elsewhere.json"
    real.write_text("{}")
    path = home / "plan.json"
    path.symlink_to(real if target == "file" else Path(target))
    assert cache.read_bytes(path) is None


def test_a_file_over_the_size_bound_is_not_read(home: Path) -> None:
    path = home / "plan.json"
    path.write_bytes(b" " * (cache.MAX_BYTES + 1))
    assert cache.read_bytes(path) is None


@pytest.mark.parametrize(
    ("size", "limit", "expected"),
    [
        (10, 100, 10),  # what fstat said
        (2, 100, 10),  # fstat said less: the file grew since, read on
        (100, 100, 10),  # fstat said more: it shrank, stop at its end
        (10, 5, 6),  # over the limit: one byte more than it tells so
        (2, 5, 6),
    ],
)
def test_a_limited_read_stops_one_byte_past_the_limit(
    home: Path, size: int, limit: int, expected: int
) -> None:
    path = home / "data"
    path.write_bytes(bytes(range(10)))
    fd = os.open(path, os.O_RDONLY)
    try:
        assert cache.read_limited(fd, size, limit) == bytes(range(10))[:expected]
    finally:
        os.close(fd)


def test_a_file_others_may_write_is_ignored(home: Path) -> None:
    path = home / "plan.json"
    path.write_text("{}")
    path.chmod(0o666)
    assert cache.read_bytes(path) is None
    path.chmod(0o644)
    assert cache.read_bytes(path) == b"{}"


def test_a_directory_others_may_write_is_neither_read_nor_written(home: Path) -> None:
    path = home / "plan.json"
    path.write_text("{}")
    home.chmod(0o777)
    try:
        assert cache.read_bytes(path) is None
        assert not cache.write_json(home / "other.json", {})
        assert not (home / "other.json").exists()
    finally:
        home.chmod(0o700)


def test_a_write_replaces_a_planted_symlink_and_leaves_its_target_alone(
    home: Path, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    path = home / "plan.json"
    path.symlink_to(victim)
    assert cache.write_json(path, {"x": 1})
    assert victim.read_text() == "precious"
    assert not path.is_symlink()
    assert json.loads(path.read_text()) == {"x": 1}


def test_a_new_cache_directory_is_private(tmp_path: Path) -> None:
    path = tmp_path / "new" / "plan.json"
    assert cache.write_json(path, {})
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_a_relative_cache_directory_caches_nothing(
    patchset: PatchSet,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # It named another directory in each working directory: a chdir between
    # startup and a lazy apply wrote the compiled backport to one and read it
    # from the other, and a checkout with a planted cache file ran its code.
    from backport_tool import state

    patchset.add("fix", "Widget.compute")
    manifest = patchset.write()
    work = tmp_path / "work"
    planted = work / ".btcache"
    planted.mkdir(parents=True, mode=0o700)
    monkeypatch.chdir(work)
    monkeypatch.setenv("BACKPORT_TOOL_CACHE_DIR", ".btcache")
    with caplog.at_level("WARNING", logger="backport_tool"):
        assert backport_tool.apply(manifest, eager=True).by_id("fix").status is Status.APPLIED
    assert patchset.target().Widget().compute(1) == 1001
    assert list(planted.iterdir()) == []
    assert (
        "backport-tool: BACKPORT_TOOL_CACHE_DIR='.btcache' is a relative path; nothing is cached. "
        "Set it to an absolute path" in caplog.messages
    )
    backport_tool.revert()
    state.reset()
    # A relative XDG_CACHE_HOME is ignored, as the XDG specification says.
    monkeypatch.delenv("BACKPORT_TOOL_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", ".btcache")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert backport_tool.config.cache_dir() == tmp_path / "home" / ".cache" / "backport-tool"


def _plan_path(manifest: Path) -> Path:
    file = read_manifest_file(manifest)
    return plan.plan_path(file, "1.5.0", Switches(frozenset(), frozenset()))


@pytest.mark.parametrize(
    ("planted", "status"),
    [
        ("fifo", Status.PENDING),
        ("dev-zero", Status.PENDING),
        ("world-writable-plan", Status.PENDING),
        # The control: the same plan in our own directory is trusted.
        ("private-plan", Status.DISABLED),
    ],
)
def test_apply_ignores_what_was_planted_at_the_plan_path(
    patchset: PatchSet, tmp_path: Path, planted: str, status: Status
) -> None:
    patchset.add("fix", "Widget.compute")
    manifest = patchset.write()
    home = tmp_path / "plans"
    home.mkdir(mode=0o700)
    os.environ["BACKPORT_TOOL_CACHE_DIR"] = str(home)  # the autouse fixture restores it
    path = _plan_path(manifest)
    if planted == "fifo":
        os.mkfifo(path)
    elif planted == "dev-zero":
        path.symlink_to("/dev/zero")
    else:
        # A complete plan that says "disabled", in a directory anyone can write.
        file = read_manifest_file(manifest)
        switches = Switches(frozenset(), frozenset())
        entry = plan.PlanEntry("fix", Status.DISABLED, "planted", ())
        path.write_text(
            json.dumps(plan.to_json(plan.Plan(patchset.dist, "1.5.0", (entry,)), file, switches))
        )
        if planted == "world-writable-plan":
            home.chmod(0o777)
    code = (
        "import backport_tool, sys; "
        "r = backport_tool.apply(sys.argv[1], subprocesses=False); "
        "print(r.by_id('fix').status.value)"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, str(manifest)],
            env=patchset.env(BACKPORT_TOOL_CACHE_DIR=str(home)),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        home.chmod(0o700)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == status.value
    assert "Traceback" not in done.stderr


def test_a_new_plan_reads_the_installed_metadata_once(
    patchset: PatchSet, monkeypatch: pytest.MonkeyPatch, home: Path
) -> None:
    patchset.add("fix", "Widget.compute")
    manifest = patchset.write()
    monkeypatch.setenv("BACKPORT_TOOL_CACHE_DIR", str(home))  # no plan there yet
    reads: list[str] = []
    real = installed.version_text

    def counted(package: str) -> str | None:
        reads.append(package)
        return real(package)

    monkeypatch.setattr(api, "version_text", counted)
    assert list(home.glob("plan-*")) == []
    report = backport_tool.apply(manifest, subprocesses=False)
    assert report.version == "1.5.0"
    assert report.by_id("fix").status is Status.PENDING
    # The startup read decides the new plan too: one read, not one per use.
    assert reads == [patchset.dist]
    assert len(list(home.glob("plan-*"))) == 1


@pytest.mark.parametrize("spelling", [str, str.upper], ids=["as-installed", "upper-case"])
def test_the_next_start_uses_the_plan_however_the_package_is_spelled(
    patchset: PatchSet, monkeypatch: pytest.MonkeyPatch, home: Path, spelling: Callable[[str], str]
) -> None:
    from backport_tool import state

    patchset.add("fix", "Widget.compute")
    data = {"version": 1, "package": spelling(patchset.dist), "backports": patchset.backports}
    manifest = patchset.write(data)
    monkeypatch.setenv("BACKPORT_TOOL_CACHE_DIR", str(home))
    assert backport_tool.apply(manifest, subprocesses=False).by_id("fix").status is Status.PENDING
    backport_tool.revert()
    state.reset()

    def decided_again(file: object) -> None:
        raise AssertionError("the startup plan was not used")

    # A fresh process state: the plan of the first start decides this one.
    monkeypatch.setattr(api, "_parsed", decided_again)
    report = backport_tool.apply(manifest, subprocesses=False)
    assert report.package == patchset.dist
    assert report.by_id("fix").status is Status.PENDING
    backport_tool.revert()
    state.reset()


def test_a_validated_manifest_is_read_again_without_yaml(
    patchset: PatchSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    patchset.add("fix", "Widget.compute")
    manifest = patchset.write()
    first = parse_manifest_file(read_manifest_file(manifest))

    def no_yaml(*args: object, **kwargs: object) -> None:
        raise AssertionError("yaml was used")

    monkeypatch.setattr(yaml, "SafeLoader", no_yaml)
    assert parse_manifest_file(read_manifest_file(manifest)) == first


def test_a_cached_manifest_that_no_longer_validates_is_read_with_yaml(patchset: PatchSet) -> None:
    patchset.add("fix", "Widget.compute")
    manifest = patchset.write()
    first = parse_manifest_file(read_manifest_file(manifest))
    entries = list(Path(os.environ["BACKPORT_TOOL_CACHE_DIR"]).glob("manifest-*.json"))
    assert entries
    for entry in entries:
        data = json.loads(entry.read_text())
        data["data"] = {"version": 1, "package": "x", "backports": "not a list"}
        entry.write_text(json.dumps(data))
    assert parse_manifest_file(read_manifest_file(manifest)) == first


def test_a_manifest_edit_is_never_served_from_the_cache(patchset: PatchSet) -> None:
    patchset.add("fix", "Widget.compute")
    manifest = patchset.write()
    parse_manifest_file(read_manifest_file(manifest))
    manifest.write_text(manifest.read_text().replace("applies_to:", "applies_to: [", 1))
    with pytest.raises(ManifestError, match=r"manifest.yaml:\d+:\d+: invalid YAML"):
        parse_manifest_file(read_manifest_file(manifest))


def _no_compile(*args: object, **kwargs: object) -> None:
    raise AssertionError("the backport module was compiled again")


def test_a_backport_module_is_compiled_once_for_its_bytes(
    patchset: PatchSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backport_tool import loading, state

    patchset.add("fix", "Widget.compute")
    manifest = patchset.write()
    widget = patchset.target().Widget
    assert backport_tool.apply(manifest, eager=True).by_id("fix").status is Status.APPLIED
    backport_tool.revert()
    state.reset()
    home = Path(os.environ["BACKPORT_TOOL_CACHE_DIR"])
    assert list(home.glob("code-*.bin"))

    # A fresh process state runs the cached code of the very same bytes.
    monkeypatch.setattr(loading, "compile", _no_compile, raising=False)
    assert backport_tool.apply(manifest, eager=True).by_id("fix").status is Status.APPLIED
    assert widget().compute(1) == 1001
    backport_tool.revert()
    state.reset()

    # Other bytes are compiled, and they are what runs.
    monkeypatch.undo()
    patchset.write_backport("fix.py", BACKPORT_SOURCE.replace("x + 1000", "x + 5000"))
    assert backport_tool.apply(manifest, eager=True).by_id("fix").status is Status.APPLIED
    assert widget().compute(1) == 5001


def test_a_damaged_compiled_entry_is_compiled_again(patchset: PatchSet) -> None:
    from backport_tool import state

    patchset.add("fix", "Widget.compute")
    manifest = patchset.write()
    widget = patchset.target().Widget
    backport_tool.apply(manifest, eager=True)
    backport_tool.revert()
    state.reset()
    home = Path(os.environ["BACKPORT_TOOL_CACHE_DIR"])
    for entry in home.glob("code-*.bin"):
        entry.write_bytes(b"\x00not marshal data")
    assert backport_tool.apply(manifest, eager=True).by_id("fix").status is Status.APPLIED
    assert widget().compute(1) == 1001


def test_function_facts_come_from_the_cache_until_the_source_changes(
    patchset: PatchSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backport_tool import source

    module = patchset.target()
    fresh = source.live_function_facts(module.Widget.compute)
    assert fresh is not None

    def no_read(obj: object) -> None:
        raise AssertionError("the source was read again")

    with monkeypatch.context() as patched:
        patched.setattr(source, "_read_function_facts", no_read)
        assert source.live_function_facts(module.Widget.compute) == fresh

    # An edit of the same size: the entry is for the lines before it.
    path = Path(module.__file__)
    before = path.stat()
    path.write_text(TARGET_SOURCE.replace("return x + 1\n", "return x + 7\n"))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 2_000_000_000))
    changed = source.live_function_facts(module.Widget.compute)
    assert changed is not None
    assert changed.fingerprint != fresh.fingerprint
    assert "x + 7" in changed.source


def test_a_damaged_facts_entry_is_read_again(patchset: PatchSet) -> None:
    from backport_tool import source

    module = patchset.target()
    fresh = source.live_function_facts(module.Widget.compute)
    home = Path(os.environ["BACKPORT_TOOL_CACHE_DIR"])
    for entry in home.glob("facts-*.json"):
        data = json.loads(entry.read_text())
        data["facts"] = ["(self)", 3, None]
        entry.write_text(json.dumps(data))
    assert source.live_function_facts(module.Widget.compute) == fresh


def test_a_validated_manifest_is_read_back_whole_and_checked_against_the_files(
    patchset: PatchSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backport_tool import manifest as manifest_module

    patchset.add("fix", "Widget.compute")
    patchset.add("value", "Widget.other", module="backports/fix.py")
    path = patchset.write()
    first = parse_manifest_file(read_manifest_file(path))
    home = Path(os.environ["BACKPORT_TOOL_CACHE_DIR"])
    assert list(home.glob("manifest-*.pickle"))

    with monkeypatch.context() as patched:
        # Read back without validating again: the sentinel of a target with no
        # value is still the very object the code compares with.
        patched.setattr(manifest_module, "_cached_manifest", _no_compile)
        again = parse_manifest_file(read_manifest_file(path))
    assert again == first
    assert all(t.value is manifest_module.NO_VALUE for b in again.backports for t in b.targets)

    # The module file is outside the text: without it the manifest is invalid
    # whatever was cached.
    (patchset.patches / "backports" / "fix.py").unlink()
    with pytest.raises(ManifestError, match=r"file not found: backports/fix\.py"):
        parse_manifest_file(read_manifest_file(path))


def test_a_pickled_manifest_follows_a_re_pointed_symlink_to_its_modules(
    patchset: PatchSet,
) -> None:
    # The pickled manifest holds the modules' real paths: once the directory
    # link points elsewhere they are found there, as validating afresh would.
    patchset.add("fix", "Widget.compute")
    path = patchset.write()
    real = patchset.patches / "backports"
    first_home = real.rename(patchset.patches / "first")
    second_home = patchset.patches / "second"
    shutil.copytree(first_home, second_home)
    real.symlink_to(first_home)
    first = parse_manifest_file(read_manifest_file(path))
    assert first.get("fix").module == first_home.resolve() / "fix.py"
    real.unlink()
    real.symlink_to(second_home)
    again = parse_manifest_file(read_manifest_file(path))
    assert again.get("fix").module == second_home.resolve() / "fix.py"


def test_a_damaged_pickled_manifest_is_a_miss(patchset: PatchSet) -> None:
    patchset.add("fix", "Widget.compute")
    path = patchset.write()
    first = parse_manifest_file(read_manifest_file(path))
    home = Path(os.environ["BACKPORT_TOOL_CACHE_DIR"])
    for entry in home.glob("manifest-*.pickle"):
        entry.write_bytes(b"\x80\x05not a pickle")
    assert parse_manifest_file(read_manifest_file(path)) == first
