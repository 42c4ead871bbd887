"""Where a manifest really is, and its bytes, read safely.

One rule for every mode (``check``, ``apply``, lazy ``apply()``, ``apply --
CMD``): a manifest given through a symlink is the file the link points to, and
its ``module:`` paths are relative to that file's real directory. A patch set
is a manifest plus the backport modules beside it; a link to the manifest
brings the whole set along, it does not make the link's directory the set.

Stdlib only: ``apply()`` at server startup reads the manifest through this.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath
from typing import NamedTuple

from .cache import read_limited
from .errors import ManifestError, describe

# A patch set is a few KB; anything near this is a mistake or an attack.
MAX_MANIFEST_BYTES = 1024 * 1024


class ManifestFile(NamedTuple):  # not a dataclass: cheaper to define at startup
    path: Path  # as the user gave it, for messages
    location: Path  # the real file, symlinks resolved
    raw: bytes


def _error(path: Path, message: str) -> ManifestError:
    return ManifestError(str(path), [f"{path}: {message}"])


# A patch set shipped inside a Python package is named by the package and the
# manifest's path in it, so that it travels with the package (a wheel, Ray's
# py_modules) wherever the package is importable: pkg:PACKAGE/path/manifest.yaml,
# or pkg:PACKAGE for its manifest.yaml.
PACKAGE_SCHEME = "pkg:"
PACKAGE_MANIFEST = "manifest.yaml"
# The entry point group through which installed distributions announce their
# patch sets; an entry's value is PACKAGE or PACKAGE:FILE.
ENTRY_POINT_GROUP = "backport_tool.patch_sets"


def is_package_spec(spec: str | os.PathLike[str]) -> bool:
    """Whether ``spec`` names a manifest inside a package (``pkg:...``)."""
    return os.fspath(spec).startswith(PACKAGE_SCHEME)


def resolved_spec(spec: str | os.PathLike[str]) -> Path:
    """The file ``spec`` names: a ``pkg:`` spec resolved in its package, any
    other spec as the path it is."""
    return package_resource(os.fspath(spec)) if is_package_spec(spec) else Path(spec)


def package_resource(spec: str) -> Path:
    """The file a ``pkg:PACKAGE[/path]`` spec names, found with
    ``importlib.resources``; raise :class:`ManifestError` if it cannot be."""
    package, _, relative = spec[len(PACKAGE_SCHEME) :].partition("/")
    parts = PurePosixPath(relative or PACKAGE_MANIFEST).parts
    if not package or not all(part.isidentifier() for part in package.split(".")):
        raise _error(
            Path(spec),
            f"{PACKAGE_SCHEME} must be followed by an importable package name, as in "
            f"{PACKAGE_SCHEME}mypatches/manifest.yaml",
        )
    if ".." in parts or relative.startswith("/"):
        raise _error(Path(spec), "the path must stay inside the package")
    # Imported here: a manifest named by its path, the common case at server
    # startup, does not pay for importlib.resources.
    import importlib.resources  # noqa: PLC0415

    try:
        root = importlib.resources.files(package)
    except ModuleNotFoundError as exc:
        missing = exc.name or package
        raise _error(
            Path(spec),
            f"no package {missing!r} can be imported here; install the patch set, or put it "
            "on PYTHONPATH",
        ) from None
    except TypeError:
        raise _error(Path(spec), f"{package!r} is a module, not a package") from None
    except Exception as exc:
        # Importing the package ran its code, and that failed.
        raise _error(Path(spec), f"importing {package!r} raised {describe(exc)}") from None
    if not isinstance(root, Path):
        # Inside a zip, or spread over several directories (a namespace
        # package): the backport modules beside the manifest must be files.
        raise _error(
            Path(spec),
            f"package {package!r} is not installed as one directory of files (a zip or a "
            "namespace package); install it unpacked",
        )
    return root.joinpath(*parts)


class InstalledPatchSet(NamedTuple):
    """A patch set that an installed distribution announces."""

    name: str
    spec: str  # pkg:PACKAGE/FILE
    distribution: str | None


def installed_patch_sets() -> list[InstalledPatchSet]:
    """The patch sets of the ``backport_tool.patch_sets`` entry point group,
    by name; nothing is imported."""
    import importlib.metadata  # noqa: PLC0415 - see package_resource

    found = []
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        module, _, attr = entry.value.partition(":")
        spec = f"{PACKAGE_SCHEME}{module.strip()}/{attr.strip() or PACKAGE_MANIFEST}"
        dist = entry.dist.name if entry.dist is not None else None
        found.append(InstalledPatchSet(entry.name, spec, dist))
    return sorted(found)


def real_location(path: Path) -> Path:
    """The manifest's real path; raise :class:`ManifestError` if it does not exist."""
    try:
        return path.resolve(strict=True)
    except FileNotFoundError:
        what = "a symlink to a missing file" if path.is_symlink() else "file not found"
        raise _error(path, what) from None
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise _error(path, f"cannot resolve the path: {exc}") from None


def read_manifest_file(path: Path) -> ManifestFile:
    """Read at most :data:`MAX_MANIFEST_BYTES` of a regular file; ``path`` may
    be a ``pkg:`` spec."""
    if not is_package_spec(path):
        location = real_location(path)
    else:
        found = package_resource(os.fspath(path))
        try:
            location = real_location(found)
        except ManifestError:
            raise _error(path, f"file not found: {found}") from None
    # O_NONBLOCK: opening a FIFO for reading must not wait for a writer; the
    # fstat below then refuses it.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(location, flags)
    except OSError as exc:
        raise _error(path, f"cannot read: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise _error(path, "is a directory, not a manifest file")
        if not stat.S_ISREG(info.st_mode):
            raise _error(
                path, "is not a regular file (a device, FIFO or socket); give a manifest file"
            )
        # Bounded even when the size above was wrong (a file still growing).
        raw = read_limited(fd, info.st_size, MAX_MANIFEST_BYTES)
    except OSError as exc:
        raise _error(path, f"cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(raw) > MAX_MANIFEST_BYTES:
        size = max(info.st_size, len(raw))
        raise _error(
            path,
            f"{size} bytes, over the {MAX_MANIFEST_BYTES} byte limit for a manifest; split "
            "the patch set or remove what is not a manifest",
        )
    return ManifestFile(path, location, raw)
