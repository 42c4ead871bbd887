"""Reading another version of a package without installing or importing it:
a wheel, an unpacked tree, or a git revision (through gitpython, work tree
untouched). Symbols are looked up by parsing the sources with ``ast``."""

from __future__ import annotations

import ast
import email.parser
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .errors import UsageError
from .manifest import SymbolRef

_VERSION_PY = re.compile(r"""^__version__\s*(?::\s*str\s*)?=\s*['"]([^'"]+)['"]""", re.MULTILINE)


class SourceTree(Protocol):
    """Files of one version of a package, by path relative to site-packages."""

    label: str

    def read(self, relpath: str) -> str | None:
        """Return the text of ``relpath``, or None if the tree has no such file."""
        ...

    def version(self, package: str) -> Version | None:
        """Return the version of ``package`` that the tree holds, if it says."""
        ...


def _parse_version(text: str, where: str) -> Version:
    try:
        return Version(text.strip())
    except InvalidVersion:
        raise UsageError(f"{where} gives version {text.strip()!r}, which is not PEP 440") from None


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


def _metadata_version(text: str, where: str) -> Version | None:
    value = email.parser.Parser().parsestr(text).get("Version")
    return _parse_version(value, where) if value else None


class WheelTree:
    """A ``.whl`` file, read in place."""

    def __init__(self, path: Path) -> None:
        self.label = path.name
        try:
            self._zip = zipfile.ZipFile(path)
        except (OSError, zipfile.BadZipFile) as exc:
            raise UsageError(f"cannot read wheel {path}: {exc}") from None
        self._names = set(self._zip.namelist())

    def read(self, relpath: str) -> str | None:
        if relpath not in self._names:
            return None
        return self._zip.read(relpath).decode("utf-8", errors="replace")

    def version(self, package: str) -> Version | None:
        wanted = canonicalize_name(package)
        for name in self._names:
            parts = name.split("/")
            if len(parts) == 2 and parts[1] == "METADATA" and parts[0].endswith(".dist-info"):
                dist = parts[0][: -len(".dist-info")].rsplit("-", 1)[0]
                if canonicalize_name(dist) == wanted:
                    return _metadata_version(self._zip.read(name).decode(), f"{self.label}: {name}")
        return _version_from_files(self, package)


class DirTree:
    """An unpacked wheel, a site-packages directory or a source checkout."""

    def __init__(self, path: Path) -> None:
        self.label = str(path)
        self._root = path

    def read(self, relpath: str) -> str | None:
        path = self._root / relpath
        try:
            return path.read_text(encoding="utf-8", errors="replace")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def version(self, package: str) -> Version | None:
        wanted = canonicalize_name(package)
        for info in sorted(self._root.glob("*.dist-info")):
            dist = info.name[: -len(".dist-info")].rsplit("-", 1)[0]
            metadata = info / "METADATA"
            if canonicalize_name(dist) == wanted and metadata.is_file():
                return _metadata_version(metadata.read_text(), str(metadata))
        return _version_from_files(self, package)


class GitTree:
    """A revision of a git repository, read from its objects; the work tree and
    HEAD are never touched."""

    def __init__(self, path: Path, rev: str) -> None:
        import git  # noqa: PLC0415 - only git reads need gitpython; apply never pays for it

        self.label = f"{path}@{rev}"
        try:
            self._commit = git.Repo(path).commit(rev)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise UsageError(f"{path} is not a git repository") from None
        except (git.BadName, ValueError):
            raise UsageError(f"{path} has no revision {rev!r}") from None

    def read(self, relpath: str) -> str | None:
        try:
            blob = self._commit.tree / relpath
        except KeyError:
            return None
        if blob.type != "blob":
            return None
        data: bytes = blob.data_stream.read()
        return data.decode("utf-8", errors="replace")

    def version(self, package: str) -> Version | None:
        return _version_from_files(self, package)


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


@dataclass(frozen=True)
class Found:
    """A static lookup that found a definition (``node``) in ``defined_on``."""

    node: ast.AST
    defined_on: str


@dataclass(frozen=True)
class Missing:
    message: str


@dataclass(frozen=True)
class Unknown:
    """The sources cannot say: the name comes from compiled code or is dynamic."""

    message: str


Lookup = Found | Missing | Unknown

_MAX_DEPTH = 25


class StaticIndex:
    """Looks up ``module:qualname`` symbols in a :class:`SourceTree` by parsing it."""

    def __init__(self, tree: SourceTree) -> None:
        self.tree = tree
        self._modules: dict[str, tuple[ast.Module, bool] | None] = {}

    def module(self, name: str) -> tuple[ast.Module, bool] | None:
        """Return the module's AST and whether it is a package, or None if absent."""
        if name not in self._modules:
            base = name.replace(".", "/")
            found: tuple[ast.Module, bool] | None = None
            # A .pyi stub stands in for a compiled module (torch._C).
            for relpath, is_package in (
                (f"{base}.py", False),
                (f"{base}/__init__.py", True),
                (f"{base}.pyi", False),
                (f"{base}/__init__.pyi", True),
            ):
                text = self.tree.read(relpath)
                if text is not None:
                    try:
                        found = (ast.parse(text), is_package)
                    except SyntaxError:
                        found = None
                    break
            self._modules[name] = found
        return self._modules[name]

    def lookup(self, ref: SymbolRef) -> Lookup:
        """Find where ``ref`` is defined, following imports and base classes."""
        if self.module(ref.module) is None:
            return Missing(f"module {ref.module!r} not found in {self.tree.label}")
        return self._in_module(ref.module, ref.qualname.split("."), 0)

    def _in_module(self, module: str, parts: list[str], depth: int) -> Lookup:
        loaded = self.module(module)
        if loaded is None:
            return Unknown(f"module {module!r} has no Python source in {self.tree.label}")
        if depth > _MAX_DEPTH:
            return Unknown(f"import chain too deep at {module}")
        tree, is_package = loaded
        name, rest = parts[0], parts[1:]
        binding = _find_binding(tree.body, name)
        if binding is None:
            if self.module(f"{module}.{name}") is not None:
                return (
                    self._in_module(f"{module}.{name}", rest, depth + 1)
                    if rest
                    else Found(tree, f"{module}.{name}")
                )
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
            return Found(binding, f"{module}:{cls.name}")
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
        return Missing(f"class {module}:{cls.name} has no attribute {name!r} (own or inherited)")

    def _base_class(
        self, module: str, is_package: bool, base: ast.expr, depth: int
    ) -> tuple[str, bool, ast.ClassDef] | str | None:
        if isinstance(base, ast.Subscript):  # Generic[T], Protocol[T]
            base = base.value
        dotted = _dotted(base)
        if dotted is None or dotted in ("object", "Generic", "Protocol", "typing.Generic"):
            return None
        ref = SymbolRef(module, dotted)
        result = self._in_module(module, dotted.split("."), depth + 1)
        if isinstance(result, Found) and isinstance(result.node, ast.ClassDef):
            owner = result.defined_on.split(":")[0]
            loaded = self.module(owner)
            return owner, bool(loaded and loaded[1]), result.node
        return f"base class {ref.qualname} of {module} is not readable from source"


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else None
    return None


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    # In a package's __init__, level 1 is the package itself.
    keep = len(parts) - node.level + (1 if is_package else 0)
    base = ".".join(parts[:keep])
    return f"{base}.{node.module}" if node.module else base


def _statements(body: list[ast.stmt]) -> list[ast.stmt]:
    # Top-level bindings may sit under if/try (TYPE_CHECKING, fallbacks).
    out: list[ast.stmt] = []
    for stmt in body:
        out.append(stmt)
        if isinstance(stmt, ast.If):
            out += _statements(stmt.body) + _statements(stmt.orelse)
        elif isinstance(stmt, ast.Try):
            out += _statements(stmt.body) + _statements(stmt.orelse)
            for handler in stmt.handlers:
                out += _statements(handler.body)
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
    return found


def _defines(body: list[ast.stmt], name: str) -> bool:
    return _find_binding(body, name) is not None


def _star_imports(body: list[ast.stmt]) -> list[ast.ImportFrom]:
    return [
        s
        for s in _statements(body)
        if isinstance(s, ast.ImportFrom) and any(a.name == "*" for a in s.names)
    ]
