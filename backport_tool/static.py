"""Reading another version of a package without installing or importing it:
a wheel, an unpacked tree, or a git revision (through gitpython, work tree
untouched). Symbols are looked up by parsing the sources with ``ast``.

Every file is read with a size limit (:data:`MAX_FILE_BYTES`). A source
module that is over it, damaged, or that Python's parser gives up on (nesting
too deep) makes its lookups :class:`Unknown`, with a message naming the file;
the rest of the tree is still read. A dist-info ``METADATA`` that cannot be
read raises :class:`~backport_tool.errors.UsageError`, since without it the
version is unknown."""

from __future__ import annotations

import ast
import email.parser
import io
import os
import posixpath
import re
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from packaging.utils import (
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from .errors import MissingDependencyError, UsageError
from .manifest import SymbolRef
from .source import as_read_live

_VERSION_PY = re.compile(r"""^__version__\s*(?::\s*str\s*)?=\s*['"]([^'"]+)['"]""", re.MULTILINE)

# The largest source file in torch 2.11 is 1.3 MB. Parsing costs far more than
# reading (8 MiB of short statements took ast.parse 28 s and 5 GB), so the
# limit is 6x that file, not the hundreds of MB a damaged or hostile wheel can
# inflate to.
MAX_FILE_BYTES = 8 * 1024 * 1024

# PEP 508 names, ASCII only: re.IGNORECASE alone would let "K" (KELVIN SIGN)
# match [a-z].
_NAME = re.compile(r"[A-Z0-9](?:[A-Z0-9._-]*[A-Z0-9])?", re.IGNORECASE | re.ASCII)


class UnreadableFile(UsageError):
    """A file the tree holds but that cannot be read: too large, damaged or
    not permitted. Lookups in such a module are :class:`Unknown`."""


class SourceTree(Protocol):
    """Files of one version of a package, by path relative to site-packages."""

    label: str  # what messages call it
    spec: str  # what `--source` takes to read it again, as the user gave it

    def read(self, relpath: str) -> str | None:
        """Return the text of ``relpath``, or None if the tree has no such file;
        raise :class:`UnreadableFile` if it has one that cannot be read."""
        ...

    def version(self, package: str) -> Version | None:
        """Return the version of ``package`` that the tree holds, if it says."""
        ...

    def python_files(self, top: str) -> list[str]:
        """Return the paths of the ``.py`` files of the top-level package or
        module ``top``, sorted."""
        ...


def _size(limit: int) -> str:
    return f"{limit / 2**20:g} MiB" if limit >= 2**20 else f"{limit} bytes"


def _too_large(where: str) -> UnreadableFile:
    return UnreadableFile(
        f"{where} is larger than {_size(MAX_FILE_BYTES)}, the most backport-tool reads of one "
        "file; check that the source is not damaged"
    )


def _text(data: bytes) -> str:
    # Sources and METADATA are UTF-8; a stray byte must not stop the rest of
    # the file (or its Version field, which is ASCII) from being read.
    return data.decode("utf-8", errors="replace")


def _parse_version(text: str, where: str) -> Version:
    text = text.strip()
    try:
        # Versions are ASCII; that is not left to the pattern of whichever
        # packaging release is installed.
        if not text.isascii():
            raise InvalidVersion(text)
        return Version(text)
    except InvalidVersion:
        raise UsageError(f"{where} gives version {text!r}, which is not PEP 440") from None


def _version_from_files(tree: SourceTree, package: str) -> Version | None:
    # version.txt is what a source checkout of torch carries; <pkg>/version.py
    # is what a built tree has.
    text = tree.read("version.txt")
    if text is not None and text.strip():
        return _parse_version(text, f"{tree.label}: version.txt")
    text = tree.read(f"{package}/version.py")
    if text is not None:
        match = _VERSION_PY.search(text)
        if match:
            return _parse_version(match.group(1), f"{tree.label}: {package}/version.py")
    return None


def _metadata_version(text: str, where: str) -> Version:
    value = email.parser.HeaderParser().parsestr(text).get("Version")
    if value is None or not str(value).strip():
        raise UsageError(
            f"{where} has no Version field; a dist-info's METADATA must give the version "
            "it holds (rebuild or reinstall the package)"
        )
    return _parse_version(str(value), where)


def _dist_info_name(folder: str) -> NormalizedName | None:
    """The project of a ``NAME-VERSION.dist-info`` folder, or None for any
    other name: a folder this cannot parse is skipped as if absent."""
    stem = folder.removesuffix(".dist-info")
    name, sep, version = stem.rpartition("-")
    if stem == folder or not sep or not folder.isascii() or not _NAME.fullmatch(name):
        return None
    try:
        Version(version)
    except InvalidVersion:
        return None
    return canonicalize_name(name)


def _check_wheel_name(path: Path) -> None:
    try:
        parse_wheel_filename(path.name)
    except InvalidWheelFilename:
        valid = False
    else:
        # parse_wheel_filename takes "K" (KELVIN SIGN) or "pkg_" in a project name.
        valid = path.name.isascii() and bool(_NAME.fullmatch(path.name.split("-", 1)[0]))
    if not valid:
        raise UsageError(
            f"cannot read wheel {path}: {path.name!r} is not a wheel file name; rename it to "
            "NAME-VERSION[-BUILD]-PYTHON-ABI-PLATFORM.whl (ASCII only), as pip names wheels"
        )


_DATA_LIB = re.compile(r"^[^/]+\.data/(?:purelib|platlib)/(.+)$")


class WheelTree:
    """A ``.whl`` file, read in place."""

    def __init__(self, path: Path) -> None:
        self.label = path.name
        self.spec = str(path)
        _check_wheel_name(path)
        try:
            self._zip = zipfile.ZipFile(path)
        except (OSError, zipfile.BadZipFile) as exc:
            raise UsageError(f"cannot read wheel {path}: {exc}") from None
        self._members = {info.filename: info for info in self._zip.infolist()}
        # A wheel may keep its packages under NAME-VER.data/purelib/ or
        # platlib/, which an installer puts at the top of site-packages.
        for name, info in list(self._members.items()):
            match = _DATA_LIB.match(name)
            if match is not None:
                self._members.setdefault(match.group(1), info)

    def read(self, relpath: str) -> str | None:
        info = self._members.get(relpath)
        return None if info is None else _text(self._read_member(info))

    def python_files(self, top: str) -> list[str]:
        return sorted(name for name in self._members if _in_package(name, top))

    def _read_member(self, info: zipfile.ZipInfo) -> bytes:
        where = f"{self.label}: {info.filename}"
        if info.file_size > MAX_FILE_BYTES:
            raise _too_large(where)
        try:
            with self._zip.open(info) as member:
                # file_size is only what the header claims: read one byte
                # past it, never more, whatever the member holds.
                data = member.read(info.file_size + 1)
        # A damaged member fails in whichever decompressor it names (zlib.error,
        # lzma.LZMAError, EOFError, BadZipFile for a bad CRC, RuntimeError when
        # encrypted...): all of them mean the same to the user.
        except Exception as exc:
            raise UnreadableFile(f"{where} cannot be read: {exc}") from None
        if len(data) > info.file_size:
            raise UnreadableFile(f"{where} cannot be read: it holds more than its header says")
        return data

    def version(self, package: str) -> Version | None:
        wanted = canonicalize_name(package)
        for name, info in sorted(self._members.items()):
            folder, _, leaf = name.partition("/")
            if leaf == "METADATA" and _dist_info_name(folder) == wanted:
                return _metadata_version(_text(self._read_member(info)), f"{self.label}: {name}")
        return _version_from_files(self, package)


class DirTree:
    """An unpacked wheel, a site-packages directory or a source checkout."""

    def __init__(self, path: Path) -> None:
        self.label = self.spec = str(path)
        self._root = path

    def read(self, relpath: str) -> str | None:
        data = self._read(self._root / relpath, f"{self.label}: {relpath}")
        return None if data is None else _text(data)

    def python_files(self, top: str) -> list[str]:
        found = [f"{top}.py"] if (self._root / f"{top}.py").is_file() else []
        # os.walk does not follow links to directories, so a link cycle
        # cannot make this endless.
        for folder, _, files in os.walk(self._root / top):
            relative = Path(folder).relative_to(self._root).as_posix()
            found += [f"{relative}/{name}" for name in files if name.endswith(".py")]
        return sorted(found)

    @staticmethod
    def _read(path: Path, where: str) -> bytes | None:
        # Not a regular file (a directory, or a FIFO that would block): absent.
        if not path.is_file():
            return None
        try:
            with path.open("rb") as file:
                # Bounded, rather than trusting a size taken before the read.
                data = file.read(MAX_FILE_BYTES + 1)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except OSError as exc:
            raise UnreadableFile(f"{where} cannot be read: {exc.strerror or exc}") from None
        if len(data) > MAX_FILE_BYTES:
            raise _too_large(where)
        return data

    def version(self, package: str) -> Version | None:
        wanted = canonicalize_name(package)
        for info in sorted(self._root.glob("*.dist-info")):
            if _dist_info_name(info.name) != wanted:
                continue
            metadata = info / "METADATA"
            data = self._read(metadata, str(metadata))
            if data is not None:
                return _metadata_version(_text(data), str(metadata))
        return _version_from_files(self, package)


_GIT_SYMLINK = 0o120000
_MAX_LINKS = 8


class GitTree:
    """A revision of a git repository, read from its objects; the work tree and
    HEAD are never touched."""

    def __init__(self, path: Path, rev: str) -> None:
        self.label = self.spec = f"{path}@{rev}"
        try:
            import git  # noqa: PLC0415 - only git reads need gitpython; apply never pays for it
        except ImportError as exc:
            raise MissingDependencyError(f"reading {self.label}", "GitPython", "git", exc) from exc

        try:
            self._commit = git.Repo(path).commit(rev)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise UsageError(f"{path} is not a git repository") from None
        except (git.BadName, ValueError):
            raise UsageError(f"{path} has no revision {rev!r}") from None

    def read(self, relpath: str) -> str | None:
        path = relpath
        for _ in range(_MAX_LINKS):
            try:
                blob = self._commit.tree / path
            except KeyError:
                return None
            if blob.type != "blob":
                return None
            # A blob's size comes from git's own object header, which its
            # hash covers; checking it first is enough.
            if blob.size > MAX_FILE_BYTES:
                raise _too_large(f"{self.label}: {path}")
            data: bytes = blob.data_stream.read()
            if blob.mode != _GIT_SYMLINK:
                return _text(data)
            # A symlink's blob is the path it points to, as a checkout would
            # follow it: within the tree only.
            path = posixpath.normpath(posixpath.join(posixpath.dirname(path), _text(data)))
            if path.startswith(("../", "/")) or path == "..":
                raise UnreadableFile(f"{self.label}: {relpath} is a symlink out of the tree")
        raise UnreadableFile(f"{self.label}: {relpath}: too many levels of symlinks")

    def python_files(self, top: str) -> list[str]:
        import git  # noqa: PLC0415 - as in __init__

        found: list[str] = []
        for name in (f"{top}.py", top):
            try:
                item = self._commit.tree / name
            except KeyError:
                continue
            items = list(item.traverse()) if isinstance(item, git.Tree) else [item]
            paths = (str(i.path) for i in items if isinstance(i, git.Blob))
            found += [path for path in paths if _in_package(path, top)]
        return sorted(found)

    def version(self, package: str) -> Version | None:
        return _version_from_files(self, package)


def _in_package(relpath: str, top: str) -> bool:
    return relpath == f"{top}.py" or (relpath.startswith(f"{top}/") and relpath.endswith(".py"))


def open_tree(spec: str) -> SourceTree:
    """Open ``spec``: a ``.whl`` file, a directory, or ``REPO@REV`` for a git revision."""
    path = Path(spec)
    if path.is_file() and path.suffix == ".whl":
        return WheelTree(path)
    if path.is_dir():
        return DirTree(path)
    repo, sep, rev = spec.rpartition("@")
    if sep and rev and Path(repo).is_dir():
        return GitTree(Path(repo), rev)
    raise UsageError(
        f"cannot read {spec!r}: expected a .whl file, a directory, or REPO@REV for a git revision"
    )


_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


@dataclass(frozen=True)
class Found:
    """A static lookup that found a definition (``node``) in ``defined_on``."""

    node: ast.AST
    defined_on: str
    # A property with a setter or deleter: every def that makes it up, in
    # source order (``node`` is the last of them).
    accessors: tuple[ast.FunctionDef | ast.AsyncFunctionDef, ...] = ()


@dataclass(frozen=True)
class Missing:
    message: str


@dataclass(frozen=True)
class Unknown:
    """The sources cannot say: the name comes from compiled code or is dynamic,
    or its module cannot be read or parsed (``unreadable``)."""

    message: str
    unreadable: bool = False


Lookup = Found | Missing | Unknown

_MAX_DEPTH = 25

# Fingerprints copy.deepcopy and ast.unparse a found function: both recurse,
# about 6 frames a level, and ran out of the default 1000 at 170 levels. The
# deepest function in torch 2.11 (VariableBuilder._wrap) nests 95.
MAX_FUNCTION_NESTING = 128


class StaticIndex:
    """Looks up ``module:qualname`` symbols in a :class:`SourceTree` by parsing it."""

    def __init__(self, tree: SourceTree) -> None:
        self.tree = tree
        self._modules: dict[str, tuple[ast.Module, bool] | None] = {}
        self._files: dict[str, str] = {}
        # A module's lines, once a def of it is read as the live read reads
        # it (as_read_live): read again from the tree, for the few that need it.
        self._lines: dict[str, list[str]] = {}
        # Modules the tree has but that cannot be read or parsed, and why.
        self._unreadable: dict[str, str] = {}

    def module(self, name: str) -> tuple[ast.Module, bool] | None:
        """Return the module's AST and whether it is a package, or None if it is
        absent or cannot be read or parsed."""
        if name not in self._modules:
            self._modules[name] = self._load(name)
        return self._modules[name]

    def _load(self, name: str) -> tuple[ast.Module, bool] | None:
        base = name.replace(".", "/")
        # A .pyi stub stands in for a compiled module (torch._C).
        for relpath, is_package in (
            (f"{base}.py", False),
            (f"{base}/__init__.py", True),
            (f"{base}.pyi", False),
            (f"{base}/__init__.pyi", True),
        ):
            try:
                text = self.tree.read(relpath)
            except UnreadableFile as exc:
                self._unreadable[name] = str(exc)
                return None
            if text is None:
                continue
            self._files[name] = relpath
            parsed = _parse(text)
            if isinstance(parsed, str):
                self._unreadable[name] = (
                    f"{self.tree.label}: {relpath} cannot be parsed: {parsed} (newer syntax than "
                    f"Python {_PYTHON} parses needs check --source run by a newer Python)"
                )
                return None
            return parsed, is_package
        return None

    def lookup(self, ref: SymbolRef) -> Lookup:
        """Find where ``ref`` is defined, following imports and base classes."""
        if self.module(ref.module) is None:
            problem = self._unreadable.get(ref.module)
            if problem is not None:
                return Unknown(problem, unreadable=True)
            return Missing(f"module {ref.module!r} not found in {self.tree.label}")
        result = self._in_module(ref.module, ref.qualname.split("."), 0)
        if (
            isinstance(result, Found)
            and isinstance(result.node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and _nests_deeper(result.node, MAX_FUNCTION_NESTING)
        ):
            module = result.defined_on.split(":")[0]
            where = f"{self.tree.label}: {self._files.get(module, module)}"
            return Unknown(
                f"{where}: {result.node.name} nests more than {MAX_FUNCTION_NESTING} "
                "levels deep, too deep to fingerprint"
            )
        return result

    def follow_binding(self, module: str, binding: ast.stmt, name: str) -> Lookup:
        """Where ``binding``, one statement of ``module`` that binds ``name``,
        leads, as if it were the name's last binding."""
        loaded = self.module(module)
        if loaded is None:
            return Missing(f"module {module!r} not found in {self.tree.label}")
        return self._follow(module, loaded[1], binding, name, [], 0)

    def as_read_live(self, node: ast.AST, module: str) -> ast.AST:
        """``node``, a def or class of ``module``, parsed from its source block
        as the live read of the installed module parses it (see
        :func:`~backport_tool.source.as_read_live`), so that the two agree."""
        if module not in self._lines:
            relpath = self._files.get(module)
            try:
                text = self.tree.read(relpath) if relpath is not None else None
            except UnreadableFile:
                text = None
            if text is None:
                return node
            # Universal newlines, line ends kept: the lines linecache (and so
            # the live read) holds.
            self._lines[module] = io.StringIO(text, newline=None).readlines()
        return as_read_live(node, self._lines[module])

    def compiled(self, found: Found) -> str | None:
        """Why ``found`` is C code that the sources cannot show: a function
        of a compiled module, read from its ``.pyi`` stub, or an assignment
        that binds one (``linear = _add_docstr(torch._C._nn.linear, ...)``);
        None when it is Python code."""
        node = found.node
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            bound = _bound_builtin(node.value)
            if bound is None:
                return None
            module = found.defined_on.split(":")[0]
            result = self._in_module(module, bound.split("."), 0)
            why = self._stub_function(result) if isinstance(result, Found) else None
            return None if why is None else f"{found.defined_on} binds {bound}, and {why}"
        return self._stub_function(found)

    def is_stub(self, module: str) -> bool:
        """True when ``module`` was read from a ``.pyi`` stub: it is compiled."""
        return self._files.get(module, "").endswith(".pyi")

    def _stub_function(self, found: Found) -> str | None:
        module = found.defined_on.split(":")[0]
        if not isinstance(found.node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return None
        if not self.is_stub(module):
            return None
        return (
            f"{found.defined_on}.{found.node.name} is compiled code (only its stub "
            f"{self._files[module]} is Python text), which static reads cannot see"
        )

    def _in_module(self, module: str, parts: list[str], depth: int) -> Lookup:
        loaded = self.module(module)
        if loaded is None:
            problem = self._unreadable.get(module)
            if problem is not None:
                return Unknown(problem, unreadable=True)
            return Unknown(f"module {module!r} has no Python source in {self.tree.label}")
        if depth > _MAX_DEPTH:
            return Unknown(f"import chain too deep at {module}")
        tree, is_package = loaded
        name, rest = parts[0], parts[1:]
        binding = _find_binding(tree.body, name)
        if binding is None:
            submodule = f"{module}.{name}"
            if self.module(submodule) is not None:
                return (
                    self._in_module(submodule, rest, depth + 1) if rest else Found(tree, submodule)
                )
            problem = self._unreadable.get(submodule)
            if problem is not None:
                return Unknown(problem, unreadable=True)
            for star in _star_imports(tree.body):
                target = _absolute(module, is_package, star)
                if self.module(target) is not None:
                    result = self._in_module(target, parts, depth + 1)
                    if isinstance(result, Found):
                        return result
            if _defines(tree.body, "__getattr__") or _star_imports(tree.body):
                return Unknown(f"{module} may provide {name!r} dynamically")
            return Missing(f"{module} has no attribute {name!r}")
        return self._follow(module, is_package, binding, name, rest, depth)

    def _follow(
        self,
        module: str,
        is_package: bool,
        binding: ast.stmt,
        name: str,
        rest: list[str],
        depth: int,
    ) -> Lookup:
        if isinstance(binding, ast.ImportFrom):
            source = _absolute(module, is_package, binding)
            original = next(a.name for a in binding.names if (a.asname or a.name) == name)
            # `from pkg import name` takes pkg's attribute first and imports
            # the submodule pkg.name only when there is none: a package that
            # rebinds the name (`from .cond import cond`) gives the function.
            if self._binds_other_than_submodule(source, original):
                return self._in_module(source, [original, *rest], depth + 1)
            if self.module(f"{source}.{original}") is not None:
                if not rest:
                    return Found(binding, f"{source}.{original}")
                return self._in_module(f"{source}.{original}", rest, depth + 1)
            return self._in_module(source, [original, *rest], depth + 1)
        if isinstance(binding, ast.Import):
            alias = next(a for a in binding.names if (a.asname or a.name.split(".")[0]) == name)
            target = alias.name if alias.asname else name
            if not rest:
                return Found(binding, target)
            return self._in_module(target, rest, depth + 1)
        if isinstance(binding, ast.ClassDef) and rest:
            return self._in_class(module, is_package, binding, rest, depth)
        if rest:
            return Unknown(f"{module}:{name} is not a class; cannot look up {'.'.join(rest)}")
        return Found(binding, module)

    def _binds_other_than_submodule(self, package: str, name: str) -> bool:
        loaded = self.module(package)
        if loaded is None or not loaded[1]:
            return False
        binding = _find_binding(loaded[0].body, name)
        if binding is None:
            return False
        # `from . import name` (or `from pkg import name`) in the package
        # binds the submodule itself.
        return not (
            isinstance(binding, ast.ImportFrom)
            and _absolute(package, True, binding) == package
            and any(a.name == name and (a.asname or a.name) == name for a in binding.names)
        )

    def _in_class(
        self, module: str, is_package: bool, cls: ast.ClassDef, parts: list[str], depth: int
    ) -> Lookup:
        if depth > _MAX_DEPTH:
            return Unknown(f"class hierarchy too deep at {module}:{cls.name}")
        name, rest = parts[0], parts[1:]
        binding = _find_binding(cls.body, name)
        if binding is not None:
            if rest:
                if isinstance(binding, ast.ClassDef):
                    return self._in_class(module, is_package, binding, rest, depth + 1)
                return Unknown(f"{module}:{cls.name}.{name} is not a class")
            return Found(binding, f"{module}:{cls.name}", _accessors(cls.body, binding))
        unknown: list[str] = []
        for base in cls.bases:
            located = self._base_class(module, is_package, base, depth)
            if isinstance(located, tuple):
                result = self._in_class(located[0], located[1], located[2], parts, depth + 1)
                if isinstance(result, Found):
                    return result
                if isinstance(result, Unknown):
                    unknown.append(result.message)
            elif located is not None:
                unknown.append(located)
        if unknown:
            return Unknown(f"{module}:{cls.name} has no {name!r} of its own; {unknown[0]}")
        if name in vars(object):
            return Unknown(
                f"{module}:{cls.name} inherits {name!r} from object, which is compiled code "
                "that static reads cannot see"
            )
        return Missing(f"class {module}:{cls.name} has no attribute {name!r} (own or inherited)")

    def _base_class(
        self, module: str, is_package: bool, base: ast.expr, depth: int
    ) -> tuple[str, bool, ast.ClassDef] | str | None:
        if isinstance(base, ast.Subscript):  # Generic[T], Protocol[T]
            base = base.value
        dotted = dotted_name(base)
        if dotted is None or dotted in ("object", "Generic", "Protocol", "typing.Generic"):
            return None
        ref = SymbolRef(module, dotted)
        result = self._in_module(module, dotted.split("."), depth + 1)
        if isinstance(result, Found) and isinstance(result.node, ast.ClassDef):
            owner = result.defined_on.split(":")[0]
            loaded = self.module(owner)
            return owner, bool(loaded and loaded[1]), result.node
        return f"base class {ref.qualname} of {module} is not readable from source"


def _bound_builtin(value: ast.expr | None) -> str | None:
    # The dotted name an assignment binds: ``f = mod.f``, or torch's
    # ``f = _add_docstr(mod.f, "...")``, which returns the builtin it documents.
    if (
        isinstance(value, ast.Call)
        and value.args
        and (dotted_name(value.func) or "").rsplit(".", 1)[-1] in ("_add_docstr", "add_docstr")
    ):
        value = value.args[0]
    return dotted_name(value) if value is not None else None


def dotted_name(node: ast.expr) -> str | None:
    # A loop, not recursion: a base class may be a.b.c... thousands deep.
    attrs: list[str] = []
    while isinstance(node, ast.Attribute):
        attrs.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(attrs)])


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    # In a package's __init__, level 1 is the package itself.
    keep = len(parts) - node.level + (1 if is_package else 0)
    base = ".".join(parts[:keep])
    return f"{base}.{node.module}" if node.module else base


def _statements(body: list[ast.stmt]) -> list[ast.stmt]:
    # Top-level bindings may sit under if/try (TYPE_CHECKING, fallbacks), in
    # source order. A stack, not recursion: an elif chain nests one If per
    # branch, and Python parses thousands.
    out: list[ast.stmt] = []
    pending: list[list[ast.stmt]] = [body]
    while pending:
        block = pending.pop()
        if not block:
            continue
        stmt, after = block[0], block[1:]
        out.append(stmt)
        nested: list[list[ast.stmt]] = []
        if isinstance(stmt, ast.If):
            nested = [stmt.body, stmt.orelse]
        elif isinstance(stmt, ast.Try):
            nested = [stmt.body, stmt.orelse, *(handler.body for handler in stmt.handlers)]
        pending += [after, *reversed(nested)]
    return out


def _find_binding(body: list[ast.stmt], name: str) -> ast.stmt | None:
    found: ast.stmt | None = None
    # The last binding wins, as it would at run time.
    for stmt in _statements(body):
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if stmt.name == name:
                found = stmt
        elif isinstance(stmt, ast.Assign):
            if any(isinstance(t, ast.Name) and t.id == name for t in stmt.targets):
                found = stmt
        elif isinstance(stmt, ast.AnnAssign):
            if isinstance(stmt.target, ast.Name) and stmt.target.id == name:
                found = stmt
        elif isinstance(stmt, ast.ImportFrom):
            if any((a.asname or a.name) == name for a in stmt.names if a.name != "*"):
                found = stmt
        elif isinstance(stmt, ast.Import) and any(
            (a.asname or a.name.split(".")[0]) == name for a in stmt.names
        ):
            found = stmt
        elif (
            isinstance(stmt, ast.Delete)
            and any(stmt is top for top in body)
            and any(isinstance(t, ast.Name) and t.id == name for t in stmt.targets)
        ):
            # `del f` after `from m import f` (torch tidies its namespace so):
            # the module ends without the name. Under an if or a try it may
            # not run: the binding before it stands.
            found = None
    return found


_ACCESSORS = ("getter", "setter", "deleter")


def _accessors(
    body: list[ast.stmt], binding: ast.stmt
) -> tuple[ast.FunctionDef | ast.AsyncFunctionDef, ...]:
    # `@value.setter def value` makes a new property from the `value` bound
    # before it: the property is every def back to the one that is no
    # accessor of it (the `@property` getter). Only the last of them is the
    # binding, so a changed getter would otherwise go unseen.
    if not _is_accessor(binding):
        return ()
    assert isinstance(binding, (ast.FunctionDef, ast.AsyncFunctionDef))
    earlier = _statements(body)
    group = [binding]
    for stmt in reversed(earlier[: earlier.index(binding)]):
        if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if _find_binding([stmt], binding.name) is not None:
                break
            continue
        if stmt.name != binding.name:
            continue
        group.append(stmt)
        if not _is_accessor(stmt):
            break
    return tuple(reversed(group))


def _is_accessor(stmt: ast.stmt) -> bool:
    return isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(
        isinstance(d, ast.Attribute)
        and d.attr in _ACCESSORS
        and isinstance(d.value, ast.Name)
        and d.value.id == stmt.name
        for d in stmt.decorator_list
    )


def _defines(body: list[ast.stmt], name: str) -> bool:
    return _find_binding(body, name) is not None


def _star_imports(body: list[ast.stmt]) -> list[ast.ImportFrom]:
    return [
        s
        for s in _statements(body)
        if isinstance(s, ast.ImportFrom) and any(a.name == "*" for a in s.names)
    ]


def _parse(text: str) -> ast.Module | str:
    """The module's AST, or why Python's parser gave up on it."""
    try:
        return ast.parse(text)
    except SyntaxError as exc:  # "too many nested parentheses" is one
        return f"{exc.msg} (line {exc.lineno})" if exc.lineno else exc.msg
    except ValueError as exc:  # null bytes, before Python 3.12
        return str(exc)
    except RecursionError:
        return "nesting too deep"
    except MemoryError:  # the parser's own stack overflowing, on deep nesting
        return "nesting too deep or too large"


def _nests_deeper(node: ast.AST, limit: int) -> bool:
    stack = [(node, 1)]
    while stack:
        current, depth = stack.pop()
        if depth > limit:
            return True
        stack += [(child, depth + 1) for child in ast.iter_child_nodes(current)]
    return False
