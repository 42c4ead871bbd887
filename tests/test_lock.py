from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import shutil
import stat
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest
from helpers import BACKPORT_SOURCE, PatchSet, assert_copies_written
from test_files import EROFS_MESSAGE, fail_for, listing, run_read_only, unchanged

from backport_tool import (
    ManifestError,
    Status,
    SymbolRef,
    apply,
    check,
    cli,
    load_manifest,
    revert,
)
from backport_tool.errors import UsageError
from backport_tool.locking import LockAction, LockEntry, lock

MANIFEST = """\
# The patch set (comment kept by lock)
version: 1
package: {dist}
backports:
  # first entry
  - id: fix
    summary: s   # trailing comment
    applies_to: ">=1.0,<2.0"
    module: backports/fix.py
    targets:
      - symbol: "{mod}:Widget.compute"
        replacement: compute   # the new one
      - replacement: other
        symbol: "{mod}:Widget.other"
  - id: later
    summary: not for this version
    applies_to: ">=2.0"
    module: backports/fix.py
    targets:
      - symbol: "{mod}:Widget.compute"
        replacement: compute
"""


@pytest.fixture
def manifest(patchset: PatchSet) -> Path:
    path = patchset.patches / "manifest.yaml"
    path.write_text(MANIFEST.format(dist=patchset.dist, mod=patchset.module))
    return path


def test_lock_records_signatures_and_fingerprints_keeping_comments_and_order(
    patchset: PatchSet, manifest: Path
) -> None:
    entries = lock(manifest)
    assert [(e.backport, e.symbol is None, e.action) for e in entries] == [
        ("fix", True, "updated"),  # the module's sha256 pin
        ("fix", False, "updated"),
        ("fix", False, "updated"),
        ("later", True, "skipped"),
    ]
    text = manifest.read_text()
    locked = load_manifest(manifest).get("fix")
    fp = locked.targets[0].fingerprints[0]
    assert locked.sha256 == hashlib.sha256(locked.module.read_bytes()).hexdigest()
    assert text.splitlines()[:17] == [
        "# The patch set (comment kept by lock)",
        "version: 1",
        f"package: {patchset.dist}",
        "backports:",
        "  # first entry",
        "  - id: fix",
        "    summary: s   # trailing comment",
        '    applies_to: ">=1.0,<2.0"',
        "    module: backports/fix.py",
        f"    sha256: {locked.sha256}",
        "    targets:",
        f'      - symbol: "{patchset.module}:Widget.compute"',
        "        replacement: compute   # the new one",
        '        signature: "(self, x: int) -> int"',
        f'        fingerprint: "{fp}"',
        '        recorded_from: ["1.5.0"]',
        "      - replacement: other",
    ]
    assert check(manifest).by_id("fix").reason == (
        "would apply: targets found, signatures match, fingerprints match"
    )


def test_a_comment_below_a_target_stays_below_the_keys_lock_adds(
    patchset: PatchSet, manifest: Path
) -> None:
    # ruamel keeps the comment lines after a mapping on its last key: keys
    # added after that key went below the next entry's heading.
    text = manifest.read_text().replace(
        f'      - replacement: other\n        symbol: "{patchset.module}:Widget.other"\n',
        f'      - symbol: "{patchset.module}:Widget.other"\n'
        "        replacement: other   # on its own line\n"
        "  # the heading of the next backport\n",
    )
    manifest.write_text(text)
    lock(manifest)
    lines = manifest.read_text().splitlines()
    at = lines.index("        replacement: other   # on its own line")
    assert lines[at + 1].startswith("        signature: ")
    assert lines[at + 4 : at + 6] == ["  # the heading of the next backport", "  - id: later"]
    assert load_manifest(manifest).get("fix").targets[1].signature is not None


@pytest.mark.parametrize(
    ("target", "last"),
    [
        ("Widget.other", '        replacement: other\n        copies: ["{mod}:gone"]\n'),
        ("SETTING", "        value:\n          a: 2\n"),
    ],
    ids=["removed-key", "block-mapping"],
)
def test_a_comment_below_a_target_survives_what_lock_removes(
    patchset: PatchSet, manifest: Path, target: str, last: str
) -> None:
    # A key lock removes (a copy that is gone), or a block mapping whose own
    # last key holds the comment: the heading stays above the next entry.
    source = patchset.site / f"{patchset.module}.py"
    source.write_text(source.read_text() + "\nSETTING = {'a': 1}\n")
    manifest.write_text(
        manifest.read_text().replace(
            f'      - replacement: other\n        symbol: "{patchset.module}:Widget.other"\n',
            f'      - symbol: "{patchset.module}:{target}"\n'
            + last.format(mod=patchset.module)
            + "  # the heading of the next backport\n",
        )
    )
    lock(manifest)
    lines = manifest.read_text().splitlines()
    at = lines.index("  # the heading of the next backport")
    assert lines[at + 1] == "  - id: later"
    assert lines[at - 1].startswith('        recorded_from: ["1.5.0"]')


def test_lock_again_is_unchanged_and_a_new_version_is_added(
    patchset: PatchSet, manifest: Path
) -> None:
    lock(manifest)
    before = manifest.read_text()
    assert {e.action for e in lock(manifest) if e.backport == "fix"} == {"unchanged"}
    assert manifest.read_text() == before
    patchset.set_version("1.5.1")
    lock(manifest)
    assert load_manifest(manifest).get("fix").targets[0].recorded_from == ("1.5.0", "1.5.1")


def test_lock_replaces_a_changed_fingerprint(patchset: PatchSet, manifest: Path) -> None:
    lock(manifest)
    old = load_manifest(manifest).get("fix").targets[0].fingerprints
    source = patchset.site / f"{patchset.module}.py"
    source.write_text(source.read_text().replace("return x + 1\n", "return x + 10\n"))
    patchset.set_version("1.6.0")
    result = check(manifest).by_id("fix")
    assert result.status is Status.DRIFT
    entries = lock(manifest)
    assert entries[0].detail.startswith("fingerprint sha256:")
    target = load_manifest(manifest).get("fix").targets[0]
    assert target.fingerprints != old
    assert target.recorded_from == ("1.6.0",)


def test_lock_from_a_source_tree(patchset: PatchSet, manifest: Path) -> None:
    entries = lock(manifest, source=str(patchset.site))
    assert [e.action for e in entries] == ["updated", "updated", "updated", "skipped"]
    assert patchset.module not in __import__("sys").modules


def test_lock_refuses_an_invalid_manifest_and_leaves_it_alone(
    patchset: PatchSet, manifest: Path
) -> None:
    manifest.write_text(manifest.read_text().replace("version: 1", "version: 7"))
    before = manifest.read_text()
    with pytest.raises(ManifestError):
        lock(manifest)
    assert manifest.read_text() == before


def test_lock_reads_the_original_even_while_the_patch_is_applied(
    patchset: PatchSet, manifest: Path
) -> None:
    lock(manifest)
    before = manifest.read_text()
    apply(manifest, eager=True)
    assert patchset.target().Widget().compute(1) == 1001
    assert {e.action for e in lock(manifest) if e.backport == "fix"} == {"unchanged"}
    assert manifest.read_text() == before


def test_a_pinned_module_that_was_modified_is_not_run(patchset: PatchSet, manifest: Path) -> None:
    lock(manifest)
    module = patchset.patches / "backports" / "fix.py"
    marker = patchset.root / "ran"
    module.write_text(module.read_text() + f"\nopen({str(marker)!r}, 'w').close()\n")
    result = apply(manifest, eager=True).by_id("fix")
    assert result.status is Status.FAILED
    assert result.reason.startswith("backports/fix.py has sha256 ")
    assert result.reason.endswith(
        "; it was modified, so it was not run. If the change is yours, run "
        "`backport-tool lock` to pin the new file"
    )
    assert not marker.exists()
    assert patchset.target().Widget().compute(1) == 2


def test_a_module_that_changed_since_this_process_ran_it_says_to_restart(
    patchset: PatchSet, manifest: Path
) -> None:
    # Re-locked after an edit: the file is what the manifest pins, but this
    # process ran the old bytes. "Run lock" would loop; a new process helps.
    lock(manifest)
    assert apply(manifest, eager=True).by_id("fix").status is Status.APPLIED
    revert()
    patchset.write_backport("fix.py", BACKPORT_SOURCE.replace("x + 1000", "x + 5000"))
    lock(manifest)
    result = apply(manifest, eager=True).by_id("fix")
    assert result.status is Status.FAILED
    assert result.reason.startswith("this process already ran backports/fix.py with sha256 ")
    assert result.reason.endswith(
        ": the file changed since it ran. Start a new process to run the file the manifest pins"
    )


def test_lock_actions_are_an_enum_and_entries_render_as_json(
    patchset: PatchSet, manifest: Path
) -> None:
    entries = lock(manifest)
    assert [e.action for e in entries] == [
        LockAction.UPDATED,
        LockAction.UPDATED,
        LockAction.UPDATED,
        LockAction.SKIPPED,
    ]
    assert (str(LockAction.UNCHANGED), f"{LockAction.SKIPPED:<9}|") == (
        "unchanged",
        "skipped  |",
    )
    assert json.loads(json.dumps([e.to_dict() for e in entries]))[3] == {
        "id": "later",
        "symbol": None,
        "action": "skipped",
        "detail": entries[3].detail,
    }
    # A str enum: dataclasses.asdict output is JSON as it is.
    assert json.loads(json.dumps(dataclasses.asdict(entries[0])))["action"] == "updated"


def test_lock_keeps_the_manifests_mode(patchset: PatchSet, manifest: Path) -> None:
    manifest.chmod(0o664)
    lock(manifest)
    assert stat.S_IMODE(manifest.stat().st_mode) == 0o664
    assert "sha256:" in manifest.read_text()


def test_lock_writes_through_a_symlinked_manifest(patchset: PatchSet, manifest: Path) -> None:
    # Link and target share a directory, so that module paths mean the same
    # through either.
    real = manifest.with_name("manifest.real.yaml")
    manifest.rename(real)
    manifest.symlink_to(real.name)
    lock(manifest)
    assert (manifest.is_symlink(), os.readlink(manifest)) == (True, real.name)
    assert load_manifest(real).get("fix").targets[0].fingerprints
    assert sorted(p.name for p in manifest.parent.iterdir()) == [
        "backports",
        "manifest.real.yaml",
        "manifest.yaml",
    ]


@pytest.mark.parametrize(("bom", "newline"), [(True, "\n"), (False, "\r\n"), (True, "\r\n")])
def test_lock_keeps_a_bom_and_crlf_line_endings(
    patchset: PatchSet, manifest: Path, tmp_path: Path, bom: bool, newline: str
) -> None:
    plain = tmp_path / "plain" / "manifest.yaml"
    shutil.copytree(manifest.parent, plain.parent)
    lock(plain)
    text = MANIFEST.format(dist=patchset.dist, mod=patchset.module)
    manifest.write_bytes(("\ufeff" * bom + text.replace("\n", newline)).encode())
    lock(manifest)
    expected = "\ufeff" * bom + plain.read_text().replace("\n", newline)
    assert manifest.read_bytes() == expected.encode()


def _cli_env(patchset: PatchSet, tmp_path: Path) -> dict[str, str]:
    # An internal error's log goes to the test's directory, not ~/.cache.
    return patchset.env(XDG_CACHE_HOME=str(tmp_path / "xdg"))


def test_lock_on_a_read_only_filesystem_exits_2_and_changes_nothing(
    patchset: PatchSet, manifest: Path, tmp_path: Path
) -> None:
    before = listing(patchset.patches)
    proc = run_read_only(
        patchset.patches,
        ["lock", "--manifest", "manifest.yaml"],
        cwd=patchset.patches,
        env=_cli_env(patchset, tmp_path),
    )
    assert (proc.returncode, proc.stderr) == (
        2,
        "backport-tool: error: " + EROFS_MESSAGE.format(path="manifest.yaml") + "\n",
    )
    assert listing(patchset.patches) == before


@pytest.mark.parametrize("call", ["open", "write", "replace"])
def test_lock_write_error_is_a_usage_error_and_leaves_nothing_behind(
    patchset: PatchSet, manifest: Path, monkeypatch: pytest.MonkeyPatch, call: str
) -> None:
    """OSError(EROFS) injected at the os-level call, in-process: the fallback
    for sandboxes without read-only mounts, and the only way to fail after the
    temporary file exists."""
    with unchanged(patchset.patches):
        monkeypatch.setattr(os, call, fail_for(patchset.patches, getattr(os, call), errno.EROFS))
        with pytest.raises(UsageError) as caught:
            lock(manifest)
        monkeypatch.undo()
    assert str(caught.value) == EROFS_MESSAGE.format(path=manifest)


def test_lock_of_an_unreadable_module_exits_2_and_changes_nothing(
    patchset: PatchSet,
    manifest: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A module of mode 000 as a user who is not root; simulated, as root
    reads anything."""
    module = patchset.patches / "backports" / "fix.py"
    real_read_bytes = Path.read_bytes

    def read_bytes(path: Path) -> bytes:
        if path == module:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_read_bytes(path)

    before = listing(patchset.patches)
    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    assert cli.main(["lock", "--manifest", str(manifest)]) == 2
    monkeypatch.undo()
    assert capsys.readouterr() == (
        "",
        f"backport-tool: error: cannot read {module}: Permission denied; nothing was changed. "
        "Make it readable, then run the command again\n",
    )
    assert listing(patchset.patches) == before


READ_ONLY_MESSAGE = (
    "cannot write {path}: it is read-only; nothing was changed. If it is meant to change, "
    "make it writable (chmod u+w), then run the command again"
)


def test_lock_refuses_a_read_only_manifest_and_changes_nothing(
    patchset: PatchSet, manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest.chmod(0o444)
    before = listing(patchset.patches)
    assert cli.main(["lock", "-q", "--manifest", str(manifest)]) == 2
    assert capsys.readouterr() == (
        "",
        f"backport-tool: error: {READ_ONLY_MESSAGE.format(path=manifest)}\n",
    )
    assert listing(patchset.patches) == before
    assert stat.S_IMODE(manifest.stat().st_mode) == 0o444
    # A lock that changes nothing writes nothing, so it needs no permission.
    manifest.chmod(0o644)
    lock(manifest)
    manifest.chmod(0o444)
    locked = listing(patchset.patches)
    assert cli.main(["lock", "-q", "--manifest", str(manifest)]) == 0
    assert capsys.readouterr() == ("", "")
    assert listing(patchset.patches) == locked


def test_lock_refuses_a_manifest_this_user_may_not_write(
    patchset: PatchSet, manifest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone else's 0644 manifest, as the kernel sees it for a user who is
    not root, simulated."""
    real_access = os.access

    def access(target: str | os.PathLike[str], mode: int, **kwargs: Any) -> bool:
        return Path(target) != manifest and real_access(target, mode, **kwargs)

    with unchanged(patchset.patches):
        monkeypatch.setattr(os, "access", access)
        with pytest.raises(UsageError) as caught:
            lock(manifest)
        monkeypatch.undo()
    assert str(caught.value) == READ_ONLY_MESSAGE.format(path=manifest)


def test_lock_refuses_a_manifest_in_the_standard_library(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    assert cli.main(["lock", "--manifest", "pkg:json/manifest.yaml"]) == 2
    assert capsys.readouterr().err.startswith(
        f"backport-tool: error: {stdlib / 'json' / 'manifest.yaml'} is inside an installed "
        f"package ({stdlib}); nothing was written."
    )
    assert not (stdlib / "json" / "manifest.yaml").exists()


def test_lock_records_a_value_targets_fingerprint_without_a_signature(
    patchset: PatchSet,
) -> None:
    (patchset.site / f"{patchset.module}.py").write_text("LIMITS = {'reads': 4}\n")
    patchset.write_backport("fix.py", "LIMITS = {'reads': 8}\n")
    patchset.add("fix", "LIMITS")
    path = patchset.write()
    entries = lock(path)
    assert [(e.symbol, str(e.action)) for e in entries if e.symbol] == [
        (patchset.sym("LIMITS"), "updated")
    ]
    (target,) = load_manifest(path).backports[0].targets
    assert target.signature is None
    (fingerprint,) = target.fingerprints
    assert fingerprint.startswith("sha256:")
    assert check(path).by_id("fix").status is Status.READY
    # A changed value is drift.
    (patchset.site / f"{patchset.module}.py").write_text("LIMITS = {'reads': 5}\n")
    sys.modules.pop(patchset.module, None)
    assert check(path).by_id("fix").status is Status.DRIFT


COPIES_SOURCE = """
alias = free_function


class Holder:
    run = free_function
    compute = Widget.compute
"""

COPIES_MANIFEST = """\
version: 1
package: {dist}
backports:
  - id: fix
    summary: s
    applies_to: ">=1.0,<2.0"
    module: backports/fix.py
    targets:
      - symbol: "{mod}:free_function"   # the target
        replacement: free_function
      - symbol: "{mod}:Widget.other"
        replacement: other
"""


def first(entries: tuple[LockEntry, ...]) -> LockEntry:
    """The entry of the first target (after the module's pin, if any)."""
    return next(e for e in entries if e.symbol)


@pytest.fixture
def copies_manifest(patchset: PatchSet) -> Path:
    source = patchset.site / f"{patchset.module}.py"
    source.write_text(source.read_text() + COPIES_SOURCE)
    path = patchset.patches / "manifest.yaml"
    path.write_text(COPIES_MANIFEST.format(dist=patchset.dist, mod=patchset.module))
    return path


def test_lock_writes_the_copies_it_finds_after_recorded_from(
    patchset: PatchSet, copies_manifest: Path
) -> None:
    mod = patchset.module
    entries = lock(copies_manifest)
    assert first(entries).detail.endswith(f", copies {mod}:Holder.run, {mod}:alias")
    # A target without copies gets no key.
    assert "copies" not in entries[-1].detail
    assert_copies_written(
        copies_manifest.read_text(),
        f'      - symbol: "{mod}:free_function"   # the target',
        [f"{mod}:Holder.run", f"{mod}:alias"],
        f'      - symbol: "{mod}:Widget.other"',
    )
    target = load_manifest(copies_manifest).get("fix").targets[0]
    assert target.copies == (
        SymbolRef(mod, "Holder.run"),
        SymbolRef(mod, "alias"),
    )
    assert {e.action for e in lock(copies_manifest) if e.symbol} == {LockAction.UNCHANGED}


def test_lock_keeps_copies_declared_in_another_order_and_removes_gone_ones(
    patchset: PatchSet, copies_manifest: Path
) -> None:
    mod = patchset.module
    declared = f'        copies: ["{mod}:alias", "{mod}:Holder.run"]\n'
    text = copies_manifest.read_text().replace(
        "        replacement: free_function\n", "        replacement: free_function\n" + declared
    )
    copies_manifest.write_text(text)
    entries = lock(copies_manifest)
    assert "copies" not in first(entries).detail
    assert f'copies: ["{mod}:alias", "{mod}:Holder.run"]' in copies_manifest.read_text()

    # Each lock below runs as a fresh process would, on the module as it now
    # is: lock keeps a declared copy the running process shows holding it.
    source = patchset.site / f"{patchset.module}.py"
    source.write_text(source.read_text().replace("alias = free_function\n", ""))
    sys.modules.pop(mod, None)
    entries = lock(copies_manifest)
    assert (first(entries).action, first(entries).detail) == (
        LockAction.UPDATED,
        f"copies {mod}:Holder.run",
    )
    assert load_manifest(copies_manifest).get("fix").targets[0].copies == (
        SymbolRef(mod, "Holder.run"),
    )
    source.write_text(source.read_text().replace("    run = free_function\n", ""))
    sys.modules.pop(mod, None)
    entries = lock(copies_manifest)
    assert (first(entries).action, first(entries).detail) == (LockAction.UPDATED, "copies none")
    assert "copies" not in copies_manifest.read_text()
    assert "# the target" in copies_manifest.read_text()


def test_lock_finds_copies_of_a_method_and_in_a_source_tree(
    patchset: PatchSet, copies_manifest: Path
) -> None:
    mod = patchset.module
    copies_manifest.write_text(
        copies_manifest.read_text()
        .replace("Widget.other", "Widget.compute")
        .replace("replacement: other", "replacement: compute")
    )
    entries = lock(copies_manifest, source=str(patchset.site))
    details = [e.detail for e in entries if e.symbol]
    assert details[0].endswith(f", copies {mod}:Holder.run, {mod}:alias")
    assert details[1].endswith(f", copies {mod}:Holder.compute")
    assert patchset.module not in sys.modules


def test_lock_says_which_star_imports_it_cannot_decide(patchset: PatchSet) -> None:
    package = f"{patchset.module}_pkg"
    files = {
        "__init__.py": "from .core import fetch\n",
        "core.py": "def fetch(x):\n    return x\n",
        "computed.py": "from .core import fetch\n\n__all__ = [n for n in ('fetch',)]\n",
        "star.py": "from .computed import *\n",
    }
    for name, text in files.items():
        (patchset.site / package / name).parent.mkdir(exist_ok=True)
        (patchset.site / package / name).write_text(text)
    patchset.write_backport("fix.py", "def fetch(x):\n    return -x\n")
    patchset.backports.append(
        {
            "id": "fix",
            "summary": "s",
            "applies_to": ">=1.0,<2.0",
            "module": "backports/fix.py",
            "targets": [{"symbol": f"{package}.core:fetch", "replacement": "fetch"}],
        }
    )
    path = patchset.write()
    (entry,) = (e for e in lock(path) if e.symbol)
    assert entry.detail.split("; ")[1:] == [
        f"`from {package}.computed import *` in {package}.star may bind {package}.star:fetch "
        f"too ({package}.computed computes its __all__): if it does, add it to copies"
    ]
    assert load_manifest(path).get("fix").targets[0].copies == (
        SymbolRef(f"{package}.computed", "fetch"),
        SymbolRef(package, "fetch"),
    )
    sys.modules.pop(package, None)
    sys.modules.pop(f"{package}.core", None)


def test_lock_writes_the_acknowledged_references_it_is_given(
    patchset: PatchSet, copies_manifest: Path
) -> None:
    mod = patchset.module
    lock(copies_manifest)
    symbol = f"{mod}:free_function"
    paths = [f"{mod}:TABLE['b']", f"{mod}:TABLE['a']"]
    entries = lock(copies_manifest, acknowledge={("fix", symbol): paths})
    assert (first(entries).action, first(entries).detail) == (
        LockAction.UPDATED,
        f"acknowledged {mod}:TABLE['a'], {mod}:TABLE['b']",
    )
    lines = copies_manifest.read_text().splitlines()
    start = lines.index(f'          - "{mod}:alias"')
    assert lines[start + 1 : start + 4] == [
        "        acknowledged:",
        f"          - \"{mod}:TABLE['a']\"",
        f"          - \"{mod}:TABLE['b']\"",
    ]
    assert load_manifest(copies_manifest).get("fix").targets[0].acknowledged == (
        f"{mod}:TABLE['a']",
        f"{mod}:TABLE['b']",
    )
    assert first(lock(copies_manifest, acknowledge={("fix", symbol): paths[::-1]})).action == (
        LockAction.UNCHANGED
    )
    entries = lock(copies_manifest, acknowledge={("fix", symbol): []})
    assert first(entries).detail == "acknowledged none"
    assert "acknowledged" not in copies_manifest.read_text()


MARKED = """
from typing import Annotated


class Marker:
    pass


def marked(x: Annotated[int, Marker()]) -> int:
    return x
"""


def test_a_signature_python_cannot_read_back_is_left_out_not_written(
    patchset: PatchSet, manifest: Path
) -> None:
    # inspect shows the annotation as Annotated[int, <...Marker object at
    # 0x...>]: written, it would make the manifest invalid for every backport.
    (patchset.site / "marked_home.py").write_text(MARKED)
    manifest.write_text(
        manifest.read_text()
        + '  - id: marked\n    summary: s\n    applies_to: ">=1.0,<2.0"\n'
        + "    module: backports/fix.py\n    targets:\n"
        + '      - symbol: "marked_home:marked"\n        replacement: compute\n'
    )
    entries = {(e.backport, e.symbol): e for e in lock(manifest)}
    detail = entries["marked", "marked_home:marked"].detail
    assert (
        "no signature recorded: Python cannot read back (x: typing.Annotated[int, "
        "<marked_home.Marker object at 0x" in detail
    )
    locked = load_manifest(manifest)
    assert locked.get("marked").targets[0].signature is None
    assert locked.get("marked").targets[0].fingerprints
    assert locked.get("fix").targets[0].signature == "(self, x: int) -> int"
