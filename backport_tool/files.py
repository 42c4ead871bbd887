"""Reading and safely rewriting the text files that ``lock`` and ``new`` change.

A rewrite goes to a temporary file in the target's own directory and is moved
over the target with ``os.replace``, so that readers see the old file or the new
one, never half of it. Around that, a rewrite keeps what a human chose for the
file: its mode, its owner where allowed, a UTF-8 byte order mark and CRLF line
endings; and a symlinked file stays a link, with the new text in its target.
"""

from __future__ import annotations

import enum
import logging
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError
from .manifest_file import read_manifest_file

logger = logging.getLogger("backport_tool")

_BOM = "\ufeff"
# A file created new gets 0666 less the umask, like any file an editor creates;
# mkstemp's 0600 would hide the manifest from the rest of a team.
_NEW_FILE_MODE = 0o666
_TEMP_ATTEMPTS = 100


class Newline(str, enum.Enum):
    """The line ending a text file uses."""

    LF = "\n"
    CRLF = "\r\n"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class TextStyle:
    """How a text file spells what parsers do not see: its BOM and line endings."""

    bom: bool = False
    newline: Newline = Newline.LF

    def apply(self, text: str) -> str:
        """``text`` (any line endings) spelled in this style."""
        text = text.removeprefix(_BOM).replace("\r\n", "\n")
        if self.newline is Newline.CRLF:
            text = text.replace("\n", "\r\n")
        return _BOM + text if self.bom else text


def read_text(path: Path) -> tuple[str, TextStyle]:
    """Read UTF-8 ``path``; return its text without BOM and with ``\\n`` line
    endings (what ruamel.yaml round-trips), and the style to write it back in."""
    # The manifest's own reader: a regular file, bounded, whatever it is now.
    data = read_manifest_file(path).raw
    try:
        # Decoding bytes keeps the line endings as they are in the file.
        raw = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(
            f"cannot read {path}: not UTF-8 text; save it as UTF-8 and run the command again"
        ) from None
    return _normalize(raw), _style_of(raw)


def _style_of(raw: str) -> TextStyle:
    # The first line ending decides: a file with mixed endings is rewritten
    # with the one it starts with.
    first = raw.find("\n")
    crlf = first > 0 and raw[first - 1] == "\r"
    return TextStyle(bom=raw.startswith(_BOM), newline=Newline.CRLF if crlf else Newline.LF)


def _normalize(raw: str) -> str:
    return raw.removeprefix(_BOM).replace("\r\n", "\n")


def write_target(path: Path, *, within: Path | None = None) -> Path:
    """The file that writing ``path`` really changes: ``path`` with symlinks resolved.

    Raises :class:`UsageError` if ``path`` or a directory above it is a
    symlink that leads nowhere, or if the resolved file is outside ``within``
    (itself resolved).
    """
    for link in _links_to_check(path):
        if link.is_symlink() and not link.exists():
            raise UsageError(
                f"{link} is a symlink to {os.readlink(link)}, which does not exist; "
                "nothing was written. Fix or remove the link and run the command again"
            )
    target = path.resolve()
    refuse_installed(path, target)
    if within is not None:
        root = within.resolve()
        if not target.is_relative_to(root):
            raise UsageError(
                f"{path} leads to {target}, outside {root}; nothing was written. A patch "
                "set's files must stay inside the manifest's directory: replace the "
                "symlink with a real directory there"
            )
    return target


def installed_place(target: Path) -> Path | None:
    """The installed package directory (site-packages, the interpreter's
    standard library, or backport-tool's own package, which holds the bundled
    patch set) that ``target`` lies in."""
    # Imported here: only the commands that write need them.
    import site  # noqa: PLC0415
    import sysconfig  # noqa: PLC0415

    from .config import PACKAGE_DIR  # noqa: PLC0415

    paths = sysconfig.get_paths()
    roots = [paths.get("purelib"), paths.get("platlib"), *site.getsitepackages()]
    roots.append(site.getusersitepackages())
    # Last: site-packages often lies inside the standard library's directory,
    # and the message names the closer of the two.
    roots += [paths.get("stdlib"), paths.get("platstdlib")]
    for root in [PACKAGE_DIR, *(Path(r).resolve() for r in roots if r)]:
        if target.is_relative_to(root):
            return root
    return next(
        (
            Path(*target.parts[: i + 1])
            for i, part in enumerate(target.parts)
            if part in ("site-packages", "dist-packages")
        ),
        None,
    )


def refuse_installed(path: Path, target: Path | None = None) -> None:
    """Raise :class:`UsageError` if writing ``path`` would change an installed
    package: the next install or upgrade would silently undo the change, and
    every project using that environment would get it."""
    place = installed_place(target if target is not None else path.resolve())
    if place is not None:
        raise UsageError(
            f"{path} is inside an installed package ({place}); nothing was written. "
            f"Run the command in your project, whose {path.name} it then finds in the "
            "current directory or above, or name one with --manifest PATH (`backport-tool "
            "new` starts one)"
        )


def _links_to_check(path: Path) -> list[Path]:
    # The file and every directory above it: a dangling link anywhere on the
    # way would be followed (or replaced) by the write.
    return [path, *Path(os.path.abspath(path)).parents]


def write_text_preserving(
    path: Path, text: str, *, style: TextStyle | None = None, within: Path | None = None
) -> Path:
    """Replace the content of ``path`` with ``text`` atomically; return the file written.

    ``style`` defaults to the style of the existing file (a new file gets
    ``\\n`` line endings and no BOM). A symlink is written through to its
    target and stays a link; the target's mode (and owner, where allowed) is
    kept. See :func:`write_target` for the links and places that are refused,
    and :func:`refuse_read_only` for the files. An ``OSError`` becomes a
    :class:`UsageError` naming the file, and leaves neither a temporary file
    nor a changed ``path`` behind.
    """
    target = write_target(path, within=within)
    try:
        current: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        current = None
    except OSError as exc:
        raise cannot_write(path, exc) from None
    if current is not None:
        refuse_read_only(path, target, current)
    if style is None:
        style = read_text(target)[1] if current is not None else TextStyle()
    data = style.apply(text).encode("utf-8")
    try:
        _replace(target, data, current)
    except OSError as exc:
        raise cannot_write(path, exc) from None
    logger.debug("backport-tool: wrote %s", target)
    return target


def cannot_write(path: Path, exc: OSError) -> UsageError:
    """The error for an ``OSError`` while writing ``path``; nothing was changed."""
    return UsageError(
        f"cannot write {path}: {_reason(exc)}; nothing was changed. Make {path} and its "
        "directory writable, then run the command again"
    )


def refuse_read_only(path: Path, target: Path, current: os.stat_result | None = None) -> None:
    """Raise :class:`UsageError` if the existing file ``target`` (``path``
    resolved) is read-only: it has no write permission at all, or none for
    this user."""
    if current is None:
        try:
            current = os.stat(target)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise cannot_write(path, exc) from None
    # The rewrite replaces the file through its directory, and the kernel
    # checks only the directory: without this, a file the user made
    # read-only would be silently replaced. As in vim, a file without any
    # write bit is read-only for root too, who may write anything. A
    # directory that cannot be written either (a read-only filesystem) is
    # left to the write, whose error says why.
    if not current.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) or (
        not os.access(target, os.W_OK) and os.access(target.parent, os.W_OK)
    ):
        raise UsageError(
            f"cannot write {path}: it is read-only; nothing was changed. If it is meant to "
            "change, make it writable (chmod u+w), then run the command again"
        )


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _replace(target: Path, data: bytes, current: os.stat_result | None) -> None:
    fd, temp = _create_temp(target)
    try:
        try:
            if current is not None:
                # chown first: it may clear setuid bits that chmod then restores.
                _keep_owner(fd, current)
                os.fchmod(fd, stat.S_IMODE(current.st_mode))
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            # Durable before it is visible: after a crash the name holds the
            # old text or the new, never an empty file.
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, target)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            # On a filesystem that turned read-only the temp file cannot go
            # either; the error about the write is the one to report.
            logger.debug("backport-tool: could not remove %s", temp, exc_info=True)
        raise


def _create_temp(target: Path) -> tuple[int, Path]:
    # Not tempfile.mkstemp: its files are 0600, and a new file must get the
    # umask's mode, which only the kernel applies without changing the umask.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(_TEMP_ATTEMPTS):
        temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(temp, flags, _NEW_FILE_MODE), temp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name next to {target}")


def _keep_owner(fd: int, current: os.stat_result) -> None:
    mine = os.fstat(fd)
    if (mine.st_uid, mine.st_gid) == (current.st_uid, current.st_gid):
        return
    try:
        os.fchown(fd, current.st_uid, current.st_gid)
    except PermissionError:
        # Only root may give a file away; anyone else's rewrite is theirs.
        logger.debug("backport-tool: cannot keep the owner of the rewritten file")
