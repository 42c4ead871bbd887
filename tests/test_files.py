"""The one safe rewrite that `lock` and `new` share: atomic, in the file's own
style, through symlinks, and never half done.

Also home of `run_read_only`, the real read-only filesystem the CLI tests of
`lock` and `new` run on."""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from backport_tool.errors import UsageError
from backport_tool.files import (
    Newline,
    TextStyle,
    installed_place,
    read_text,
    refuse_installed,
    write_text_preserving,
)

EROFS_MESSAGE = (
    "cannot write {path}: Read-only file system; nothing was changed. Make {path} and its "
    "directory writable, then run the command again"
)

# Bind-mount the first path onto itself read-only, bind each SOURCE onto its
# TARGET after it, then exec the command: all inside a new user and mount
# namespace, so that nothing outside the test sees the mounts.
_MOUNT_SCRIPT = """
set -e
ro=$1; shift
mount --bind "$ro" "$ro"
mount -o remount,bind,ro "$ro"
while [ "$1" != -- ]; do mount --bind "$1" "$2"; shift 2; done
shift
exec "$@"
"""


def _read_only_command(read_only: Path, binds: list[str], command: list[str]) -> list[str]:
    return [
        "unshare",
        "-rm",
        "sh",
        "-c",
        _MOUNT_SCRIPT,
        "sh",
        str(read_only),
        *binds,
        "--",
        *command,
    ]


@functools.cache
def _read_only_unavailable() -> str | None:
    if shutil.which("unshare") is None:
        return "unshare(1) is not installed"
    probe = Path(os.environ.get("TMPDIR", "/tmp")) / f"backport-tool-ro-probe-{os.getpid()}"
    probe.mkdir(exist_ok=True)
    try:
        proc = subprocess.run(
            _read_only_command(probe, [], ["touch", str(probe / "x")]),
            capture_output=True,
            text=True,
        )
        if proc.returncode == 0:
            return "the bind mount stayed writable"
        if "Read-only file system" not in proc.stderr:
            return f"the sandbox forbids user and mount namespaces: {proc.stderr.strip()}"
        return None
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def run_read_only(
    read_only: Path,
    args: Sequence[str],
    *,
    cwd: Path,
    env: dict[str, str],
    writable: Sequence[tuple[Path, Path]] = (),
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m backport_tool ARGS`` with ``read_only`` on a real read-only
    bind mount, and each (source, target) of ``writable`` bind-mounted on top.

    Root ignores file modes, so chmod cannot make a write fail; a read-only
    mount does. Skips the test when the sandbox allows no such mount.
    """
    why = _read_only_unavailable()
    if why is not None:
        pytest.skip(f"no real read-only filesystem can be made here ({why})")
    binds = [str(p) for pair in writable for p in pair]
    command = [sys.executable, "-m", "backport_tool", *args]
    return subprocess.run(
        _read_only_command(read_only, binds, command),
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
    )


def listing(directory: Path) -> dict[str, bytes | None]:
    """Every path under ``directory`` with its bytes (None for a directory or link)."""
    return {
        str(p.relative_to(directory)): p.read_bytes() if p.is_file() else None
        for p in sorted(directory.rglob("*"))
    }


@contextlib.contextmanager
def unchanged(directory: Path) -> Iterator[None]:
    """The block leaves every path under ``directory`` as it found it."""
    before = listing(directory)
    yield
    assert listing(directory) == before


@pytest.fixture
def restore_umask() -> Iterator[None]:
    old = os.umask(0o022)
    os.umask(old)
    yield
    os.umask(old)


def test_a_rewrite_keeps_the_files_mode(tmp_path: Path) -> None:
    path = tmp_path / "manifest.yaml"
    path.write_text("old\n")
    path.chmod(0o664)
    write_text_preserving(path, "new\n")
    assert (path.read_text(), stat.S_IMODE(path.stat().st_mode)) == ("new\n", 0o664)


@pytest.mark.usefixtures("restore_umask")
def test_a_new_file_gets_the_umasks_mode_not_0600(tmp_path: Path) -> None:
    os.umask(0o027)
    path = tmp_path / "new.py"
    write_text_preserving(path, "x = 1\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_a_symlink_stays_a_link_and_its_target_gets_the_text(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "manifest.yaml"
    target.write_text("old\n")
    link = tmp_path / "manifest.yaml"
    link.symlink_to(Path("real") / "manifest.yaml")
    assert write_text_preserving(link, "new\n") == target
    assert (link.is_symlink(), os.readlink(link)) == (True, str(Path("real") / "manifest.yaml"))
    assert target.read_text() == "new\n"
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["manifest.yaml"]


def test_a_dangling_symlink_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "manifest.yaml"
    link.symlink_to("gone.yaml")
    with pytest.raises(UsageError) as caught:
        write_text_preserving(link, "new\n")
    assert str(caught.value) == (
        f"{link} is a symlink to gone.yaml, which does not exist; nothing was written. "
        "Fix or remove the link and run the command again"
    )
    assert listing(tmp_path) == {"manifest.yaml": None}
    assert link.is_symlink()


def test_a_dangling_directory_link_on_the_way_is_refused(tmp_path: Path) -> None:
    (tmp_path / "backports").symlink_to("missing")
    with pytest.raises(UsageError, match=r"backports is a symlink to missing, which does not"):
        write_text_preserving(tmp_path / "backports" / "fix.py", "x = 1\n", within=tmp_path)
    assert listing(tmp_path) == {"backports": None}


def test_a_link_leading_outside_within_is_refused(tmp_path: Path) -> None:
    inside, outside = tmp_path / "patches", tmp_path / "elsewhere"
    inside.mkdir()
    outside.mkdir()
    (inside / "backports").symlink_to(outside)
    path = inside / "backports" / "fix.py"
    with pytest.raises(UsageError) as caught:
        write_text_preserving(path, "x = 1\n", within=inside)
    assert str(caught.value) == (
        f"{path} leads to {outside / 'fix.py'}, outside {inside}; nothing was written. A "
        "patch set's files must stay inside the manifest's directory: replace the symlink "
        "with a real directory there"
    )
    assert list(outside.iterdir()) == []


def _spelled(text: str, style: TextStyle) -> bytes:
    return ("\ufeff" * style.bom + text.replace("\n", style.newline.value)).encode()


@pytest.mark.parametrize(
    "style",
    [
        TextStyle(),
        TextStyle(newline=Newline.CRLF),
        TextStyle(bom=True),
        TextStyle(bom=True, newline=Newline.CRLF),
    ],
)
def test_bom_and_line_endings_are_read_and_written_back(tmp_path: Path, style: TextStyle) -> None:
    path = tmp_path / "manifest.yaml"
    path.write_bytes(_spelled("a: 1\nb: 2\n", style))
    assert read_text(path) == ("a: 1\nb: 2\n", style)
    write_text_preserving(path, "a: 1\nb: 2\nc: 3\n")
    assert path.read_bytes() == _spelled("a: 1\nb: 2\nc: 3\n", style)


def fail_for(directory: Path, real: Callable[..., object], error: int) -> Callable[..., object]:
    """``real`` (an os function taking a path or fd first), failing with OSError(error)
    for writes to files under ``directory``; reads, and pytest's own I/O, pass."""

    opens = real is os.open

    def fake(first: int | str | os.PathLike[str], *rest: Any) -> object:
        named = (
            os.readlink(f"/proc/self/fd/{first}") if isinstance(first, int) else os.fspath(first)
        )
        reading = opens and not rest[0] & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
        if named.startswith(str(directory)) and not reading:
            raise OSError(error, os.strerror(error))
        return real(first, *rest)

    return fake


@pytest.mark.parametrize("call", ["open", "write", "fsync", "replace"])
def test_a_failing_write_changes_nothing_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, call: str
) -> None:
    """Injects OSError(EROFS) at each os-level call of the write, including
    after the temporary file exists; test_lock and test_new run the same on a
    real read-only mount where the sandbox allows one."""
    path = tmp_path / "manifest.yaml"
    path.write_text("old\n")
    monkeypatch.setattr(os, call, fail_for(tmp_path, getattr(os, call), errno.EROFS))
    with pytest.raises(UsageError) as caught:
        write_text_preserving(path, "new\n")
    monkeypatch.undo()
    assert str(caught.value) == EROFS_MESSAGE.format(path=path)
    assert listing(tmp_path) == {"manifest.yaml": b"old\n"}


def test_a_real_read_only_filesystem_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "ro").mkdir()
    path = tmp_path / "ro" / "manifest.yaml"
    path.write_text("old\n")
    program = (
        "import sys\nfrom pathlib import Path\nfrom backport_tool.errors import UsageError\n"
        "from backport_tool.files import write_text_preserving\n"
        "try:\n    write_text_preserving(Path(sys.argv[1]), 'new')\n"
        "except UsageError as exc:\n    print(exc)\n"
    )
    why = _read_only_unavailable()
    if why is not None:
        pytest.skip(f"no real read-only filesystem can be made here ({why})")
    proc = subprocess.run(
        _read_only_command(tmp_path / "ro", [], [sys.executable, "-c", program, str(path)]),
        capture_output=True,
        text=True,
    )
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout == EROFS_MESSAGE.format(path=path) + "\n"
    assert listing(tmp_path / "ro") == {"manifest.yaml": b"old\n"}


READ_ONLY_MESSAGE = (
    "cannot write {path}: it is read-only; nothing was changed. If it is meant to change, "
    "make it writable (chmod u+w), then run the command again"
)


def test_a_read_only_file_is_refused_even_for_root(tmp_path: Path) -> None:
    # os.replace needs only the directory's permission: the file's own mode
    # must be checked, and root, who may write anything, respects it too.
    path = tmp_path / "manifest.yaml"
    path.write_text("old\n")
    path.chmod(0o444)
    with pytest.raises(UsageError) as caught:
        write_text_preserving(path, "new\n")
    assert str(caught.value) == READ_ONLY_MESSAGE.format(path=path)
    assert listing(tmp_path) == {"manifest.yaml": b"old\n"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o444


def test_a_file_this_user_may_not_write_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone else's 0644 file in a directory this user may write: what the
    kernel says for a user who is not root, simulated."""
    path = tmp_path / "manifest.yaml"
    path.write_text("old\n")
    real_access = os.access

    def access(target: str | os.PathLike[str], mode: int, **kwargs: Any) -> bool:
        return Path(target) != path and real_access(target, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)
    with pytest.raises(UsageError) as caught:
        write_text_preserving(path, "new\n")
    assert str(caught.value) == READ_ONLY_MESSAGE.format(path=path)
    assert listing(tmp_path) == {"manifest.yaml": b"old\n"}


def test_the_standard_library_is_an_installed_place() -> None:
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    inside = Path(json.__file__).resolve().parent / "manifest.yaml"
    assert installed_place(inside) == stdlib
    with pytest.raises(UsageError, match=r"is inside an installed package \("):
        refuse_installed(inside)
    # site-packages is named, not the standard library around it.
    purelib = Path(sysconfig.get_paths()["purelib"]).resolve()
    assert installed_place(purelib / "somepkg" / "manifest.yaml") == purelib
