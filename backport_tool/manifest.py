from __future__ import annotations

import difflib
import functools
import hashlib
import json
import keyword
import logging
import os
import pickle
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from . import __version__
from .cache import entry, read_bytes, read_json, write_bytes, write_json
from .errors import ManifestError, describe
from .manifest_file import ManifestFile, read_manifest_file
from .source import normalize_signature

if TYPE_CHECKING:
    import yaml

SCHEMA_VERSION = 1
MAX_ID_LENGTH = 64

_ID_RE = re.compile(r"[a-z0-9][a-z0-9-]*\Z")
logger = logging.getLogger("backport_tool")

_SHA256_RE = re.compile(r"[0-9a-f]{64}\Z")
_SHA_RE = re.compile(r"[0-9a-f]{7,40}\Z")
_FINGERPRINT_RE = re.compile(r"sha256:[0-9a-f]{16}\Z")
# A backport module's hooks (loading.py): never a name for an original.
_MODULE_HOOKS = ("upstream_probe", "selftest", "after_apply", "before_revert")

T = TypeVar("T")


class _NoValue:
    # Pickled by name, so that a manifest read back from the cache still
    # holds this very object.
    def __reduce__(self) -> str:
        return "NO_VALUE"

    def __repr__(self) -> str:
        return "NO_VALUE"


# A target without ``value:`` (it has a ``replacement:``).
NO_VALUE: Any = _NoValue()


@dataclass(frozen=True)
class SymbolRef:
    """A ``dotted.module:Dotted.qualname`` reference to a module attribute."""

    module: str
    qualname: str

    @classmethod
    def parse(cls, text: str) -> SymbolRef:
        """Parse ``text``; raise ``ValueError`` saying why it is not a symbol."""
        module, sep, qualname = text.partition(":")
        if not sep:
            raise ValueError("no ':' between the module and the qualified name")
        for label, dotted in (("module", module), ("qualified name", qualname)):
            parts = dotted.split(".")
            for part in parts:
                # isidentifier() alone accepts keywords and non-ASCII names that
                # could never have been written in torch's sources.
                if not (part.isascii() and part.isidentifier()) or keyword.iskeyword(part):
                    raise ValueError(f"{label} part {part!r} is not a Python identifier")
        return cls(module, qualname)

    def __str__(self) -> str:
        return f"{self.module}:{self.qualname}"


# An object a registry target adds or removes: ``module:qualname``, or the
# name of an attribute of the backport module.
EntryRef: TypeAlias = "SymbolRef | str"


@dataclass(frozen=True)
class RegistryEntry:
    """One entry a registry target adds: an element of a set or list
    (``value`` None), or a key of a dict and the value it maps to."""

    key: EntryRef
    value: EntryRef | None = None

    def __str__(self) -> str:
        return str(self.key) if self.value is None else f"{self.key} -> {self.value}"


@dataclass(frozen=True)
class Target:
    """One attribute that a backport replaces (or, for a registry target, the
    set, dict or list whose entries it adds and removes in place)."""

    symbol: SymbolRef
    replacement: str
    signature: str | None = None
    fingerprints: tuple[str, ...] = ()
    recorded_from: tuple[str, ...] = ()
    # References to the original that a reviewer accepts as stale (paths as
    # reported in ``stale_references``); they do not make the backport partial.
    acknowledged: tuple[str, ...] = ()
    # The attribute is new: it must not exist yet, and revert deletes it.
    create: bool = False
    # Other module globals or class attributes that torch's own code binds to
    # the same original (``from m import f``, a re-export). apply puts the fix
    # in force at exactly the target and these, and nowhere else.
    copies: tuple[SymbolRef, ...] = ()
    # A global of the backport module that apply binds to the original before
    # the target is replaced: a wrapper calls it as a plain name, which
    # torch.compile can trace (a look-up by string through original() it
    # cannot, under fullgraph=True).
    original: str | None = None
    # What ``value:`` sets a config option to (torch's ConfigModule), instead
    # of a replacement from the backport module; NO_VALUE when not given.
    value: object = field(default=NO_VALUE, hash=False)
    # A registry target: the entries added to, and removed from, the set,
    # dict or list at ``symbol``, which itself is never replaced. ``remove``
    # names elements (set, list) or keys (dict).
    add: tuple[RegistryEntry, ...] = ()
    remove: tuple[EntryRef, ...] = ()
    # The copies (among ``copies``) that torch's code binds only in some
    # environments (``try: from a import f`` / ``except ImportError: from b
    # import f``, ``if cond: from a import f``): apply binds each where it
    # holds the original and leaves it alone where it does not.
    conditional: frozenset[SymbolRef] = frozenset()

    @property
    def edits_registry(self) -> bool:
        """True for a registry target: entries added and removed in place."""
        return bool(self.add or self.remove)

    @property
    def adds_mapping(self) -> bool:
        """True when ``add:`` was a mapping (key -> value): a dict registry."""
        return any(entry.value is not None for entry in self.add)

    @property
    def sets_value(self) -> bool:
        """True for a ``value:`` target: a config option set to a value."""
        return self.value is not NO_VALUE

    @property
    def sites(self) -> tuple[SymbolRef, ...]:
        """The target and its declared copies: every binding apply changes."""
        return (self.symbol, *self.copies)


@dataclass(frozen=True)
class Upstream:
    """References to the upstream change a backport carries."""

    pr: str | None = None
    issue: str | None = None
    commit: str | None = None
    notes: str | None = None


@dataclass(frozen=True)
class Backport:
    """One entry of ``backports:`` in a manifest, validated."""

    id: str
    summary: str
    applies_to: SpecifierSet
    module: Path
    module_text: str
    targets: tuple[Target, ...]
    fixed_in: Version | None = None
    upstream: Upstream = field(default_factory=Upstream)
    requires: tuple[SymbolRef, ...] = ()
    retired_reason: str | None = None
    sha256: str | None = None  # pin of the module file, checked before it runs
    # Applied only when enabled (BACKPORT_TOOL_ENABLE, apply(enable=), --enable).
    opt_in: bool = False
    line: int | None = None
    # As written: str(SpecifierSet) sorts the clauses, which reads backwards.
    applies_to_text: str = ""

    @property
    def retired(self) -> bool:
        """True for an entry kept for the record with ``status: retired``."""
        return self.retired_reason is not None

    def module_sha256(self) -> str:
        """The sha256 of the module file as it is now, in the form ``sha256`` pins."""
        return hashlib.sha256(self.module.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Manifest:
    """A validated manifest file."""

    path: Path
    version: int
    package: str
    backports: tuple[Backport, ...]
    # The real file (symlinks resolved): it identifies the patch set, and
    # module paths are relative to its directory.
    location: Path

    def get(self, backport_id: str) -> Backport:
        """Return the backport with ``backport_id``; raise ``KeyError`` if absent."""
        for backport in self.backports:
            if backport.id == backport_id:
                return backport
        raise KeyError(backport_id)


def load_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read and validate the manifest at ``path``.

    Nothing is imported or patched. Every problem found is collected and raised
    together as one :class:`ManifestError`.
    """
    return parse_manifest_file(read_manifest_file(Path(path)))


def parse_manifest_file(file: ManifestFile, *, digest: str | None = None) -> Manifest:
    """Validate the manifest bytes already read from ``file`` (``digest``: their
    sha256, when the caller has it)."""
    try:
        text = file.raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(
            str(file.path), [f"{file.path}: not UTF-8 text (invalid byte at offset {exc.start})"]
        ) from None
    return parse_manifest(text, file.path, location=file.location, digest=digest)


def parse_manifest(
    text: str, path: Path, *, location: Path | None = None, digest: str | None = None
) -> Manifest:
    """Validate manifest ``text`` as if read from ``path``.

    ``location`` is the real file (default: ``path`` with symlinks resolved);
    module paths are relative to its directory.
    """
    real = location if location is not None else path.resolve()
    if digest is None:
        digest = hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()
    cache_path, key = _cache_entry(digest, real)
    cached = _pickled_manifest(cache_path, key, path, real)
    if cached is None:
        cached = _cached_manifest(cache_path, key, path, real)
        if cached is not None:
            _store_pickled(cache_path, key, cached)
    if cached is not None:
        return cached
    # yaml (10 ms to import) only for a manifest the cache does not hold: an
    # eager apply of a validated one never loads it.
    import yaml  # noqa: PLC0415

    try:
        # One parse: the node tree finds duplicate keys (which safe_load keeps
        # silently) and gives line numbers; the data is constructed from it.
        loader = _loader_class()(text)
        try:
            root = loader.get_single_node()
            # Before construction, which merges `<<: *anchor` keys into the
            # nodes: an entry's own key after a merge is no duplicate.
            positions = _positions(root)
            data = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise ManifestError(str(path), [f"{path}{where}: invalid YAML: {problem}"]) from None
    except yaml.YAMLError as exc:
        raise ManifestError(str(path), [f"{path}: invalid YAML: {exc}"]) from None
    except (RecursionError, MemoryError):
        # pyyaml composes recursively: deep nesting fits in the size limit.
        raise ManifestError(
            str(path), [f"{path}: nested too deeply to read; a manifest is a few levels deep"]
        ) from None
    checker = _Checker(path, real.parent, positions)
    manifest = checker.manifest(data, real)
    if checker.problems or manifest is None:
        raise ManifestError(str(path), checker.problems)
    if _json_exact(data):
        lines = {keypath: pos.line for keypath, pos in positions.items()}
        write_json(cache_path, {"key": key, "data": data, "lines": lines})
        _store_pickled(cache_path, key, manifest)
    return manifest


# pyyaml is pure Python here: composing the bundled manifest costs about 3 ms,
# ten times the validation. The data of a manifest that validated is kept as
# JSON, keyed by its text and real path and by this version of the validator,
# so that the next process (a lazy hook, an eager apply) validates it again
# without yaml, with the line of each key (for messages and annotations). A
# cached manifest that no longer validates is read again with yaml.
# Bumped when a manifest that validated before may not any more (2: lone
# surrogates, an empty applies_to and unreadable module paths are refused).
_CACHE_FORMAT = "2"


def _cache_entry(digest: str, real: Path) -> tuple[Path, str]:
    # The text by its sha256: the one the caller hashed already.
    return entry("manifest", ".json", __version__, _CACHE_FORMAT, str(real), digest)


def _cached_manifest(cache_path: Path, key: str, path: Path, real: Path) -> Manifest | None:
    entry = read_json(cache_path)
    if not isinstance(entry, dict) or entry.get("key") != key or "data" not in entry:
        return None
    lines = entry.get("lines")
    if not isinstance(lines, dict) or not all(type(v) is int for v in lines.values()):
        return None
    checker = _Checker(path, real.parent, {str(k): _Pos(v) for k, v in lines.items()})
    manifest = checker.manifest(entry["data"], real)
    return None if checker.problems else manifest


# Building the manifest again from the JSON data is still most of a warm
# eager apply, so the validated Manifest itself is kept too, pickled under
# the same key and the code of this module (its classes are what is pickled).
# Of what validation read, only the module files are outside the text: each
# is resolved and found again before a pickled manifest is used.
def _pickle_stamp() -> str:
    try:
        info = os.stat(__file__)
    except OSError:
        return ""
    return f"{info.st_mtime_ns}:{info.st_size}"


def _pickled_manifest(cache_path: Path, key: str, path: Path, real: Path) -> Manifest | None:
    raw = read_bytes(cache_path.with_suffix(".pickle"))
    if raw is None:
        return None
    try:
        entry = pickle.loads(raw)
    except Exception:
        # A damaged or foreign entry is a miss, whatever unpickling raised.
        return None
    if not (
        isinstance(entry, tuple)
        and len(entry) == 3
        and entry[0] == key
        and entry[1] == _pickle_stamp()
        and isinstance(entry[2], Manifest)
    ):
        return None
    manifest: Manifest = entry[2]
    if manifest.path != path or manifest.location != real:
        return None
    # ``real`` has no symlinks left, so neither has its directory.
    root = os.fspath(real.parent)
    for backport in manifest.backports:
        if _real_file(root, backport.module_text) != os.fspath(backport.module):
            return None
    return manifest


def _real_file(root: str, relative: str) -> str | None:
    # What resolving root/relative finds if it is a regular file, else None.
    # A path the OS refuses (a NUL byte, a lone surrogate, a name too long)
    # is a miss too: validating the manifest again reports it.
    try:
        return _real_file_below(root, relative)
    except (OSError, ValueError):
        return None


def _real_file_below(root: str, relative: str) -> str | None:
    # root is a real path, so only the components below it need an lstat;
    # anything unusual (a symlink, a path out of root) takes realpath.
    path = os.path.normpath(os.path.join(root, relative))
    below = os.path.relpath(path, root)
    if below.startswith(os.pardir):
        path = os.path.realpath(path)
        return path if os.path.isfile(path) else None
    step = root
    for part in below.split(os.sep):
        step = os.path.join(step, part)
        try:
            mode = os.lstat(step).st_mode
        except OSError:
            return None
        if stat.S_ISLNK(mode):
            path = os.path.realpath(path)
            return path if os.path.isfile(path) else None
    return path if stat.S_ISREG(mode) else None


def _store_pickled(cache_path: Path, key: str, manifest: Manifest) -> None:
    try:
        data = pickle.dumps((key, _pickle_stamp(), manifest), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        # A value target's constant that does not pickle: the JSON entry serves.
        logger.debug("backport-tool: cannot pickle %s", manifest.path, exc_info=True)
        return
    write_bytes(cache_path.with_suffix(".pickle"), data)


def _json_exact(data: object) -> bool:
    # Dates, non-string keys and NaN do not survive JSON unchanged; such a
    # manifest is simply read with yaml every time.
    try:
        return bool(json.loads(json.dumps(data)) == data)
    except (TypeError, ValueError, RecursionError):
        return False


@functools.cache
def _loader_class() -> type[yaml.SafeLoader]:
    import yaml  # noqa: PLC0415 - only for a manifest the cache does not hold

    class Loader(yaml.SafeLoader):
        # pyyaml's constructors raise plain errors for a scalar their tag
        # cannot take (`2001-13-45` as a date, `!!int abc`, an integer of
        # 5000 digits): made YAML errors with the scalar's line and column.
        def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
            try:
                return super().construct_object(node, deep)
            except (ValueError, KeyError, TypeError, OverflowError) as exc:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"cannot read {_show(str(node.value))} as {node.tag.rpartition(':')[2]}: "
                    f"{describe(exc)}; write it as a quoted string",
                    node.start_mark,
                ) from None

    return Loader


def _positions(root: yaml.Node | None) -> dict[str, _Pos]:
    import yaml  # noqa: PLC0415 - loaded by the parse that made root

    positions: dict[str, _Pos] = {}
    seen: set[int] = set()

    def source(node: yaml.Node) -> str | None:
        # A scalar as written: YAML 1.1 reads 0123456 as the integer 42798.
        return node.value if isinstance(node, yaml.ScalarNode) else None

    def walk(node: yaml.Node, keypath: str) -> None:
        # An alias is the same node object; walking it again could be
        # exponential (billion laughs) and would add no new position.
        if id(node) in seen:
            return
        seen.add(id(node))
        positions.setdefault(keypath, _Pos(node.start_mark.line + 1, source(node)))
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                child = _join(keypath, key)
                # A key's position is the key's line, where a reader looks.
                # Under a key that is not a string (1, and "1" spelled alike)
                # the path may stand for the key as well as the value, so it
                # keeps no text; nor does a duplicate key (pyyaml keeps the
                # last value, the position the first key's line).
                text = source(value_node) if key_node.tag == _STR_TAG else None
                if key in keys:
                    positions.setdefault(f"{child}#dup", _Pos(key_node.start_mark.line + 1))
                    positions[child] = _Pos(positions[child].line)
                keys.add(key)
                positions.setdefault(child, _Pos(key_node.start_mark.line + 1, text))
                walk(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, f"{keypath}[{index}]")

    if root is not None:
        walk(root, "")
    return positions


_STR_TAG = "tag:yaml.org,2002:str"


@dataclass(frozen=True)
class _Pos:
    line: int
    # The scalar at this key path as written in the file; None when not
    # known (not a scalar, or read back from the cache).
    text: str | None = None


def _join(keypath: str, key: str) -> str:
    # Keys that are not plain names are quoted, so that the path stays readable
    # for keys such as " " or "a.b".
    if not (key.isascii() and key.isidentifier()):
        return f"{keypath}[{key!r}]"
    return f"{keypath}.{key}" if keypath else key


def _type_name(value: object) -> str:
    names: dict[type, str] = {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a float",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


def _surrogate_problem(value: str, start: int) -> str:
    high = ord(value[start])
    low = ord(value[start + 1]) if start + 1 < len(value) else 0
    if 0xD800 <= high < 0xDC00 and 0xDC00 <= low < 0xE000:
        code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
        return (
            f"{_show(value)} spells U+{code:04X} as two UTF-16 surrogate escapes, as JSON "
            "writes it, which YAML reads as two characters that cannot be written as UTF-8; "
            f'write the character itself, or "\\U{code:08X}" in a double-quoted string'
        )
    return (
        f"{_show(value)} holds the lone surrogate U+{high:04X}, which is not a character "
        "and cannot be written as UTF-8; write the character meant itself, or a \\U escape "
        'of its whole code point in a double-quoted string (such as "\\U0001F680")'
    )


def _show(value: object) -> str:
    if isinstance(value, (dict, list)):
        return _type_name(value)
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    if value is None or isinstance(value, str):
        return "null" if value is None else text
    return f"{_type_name(value)} {text}"


class _Checker:
    def __init__(self, path: Path, base: Path, positions: Mapping[str, _Pos]) -> None:
        self.path = path
        self.positions = positions
        self.problems: list[str] = []
        # The manifest's real directory (see manifest_file.py for the rule),
        # named in messages as the user spelled it when that is the same place.
        self.base = base
        self.shown_base = path.parent if path.parent.resolve() == base else base

    def error(self, keypath: str, message: str) -> None:
        pos = self.positions.get(keypath)
        where = f"{self.path}:{pos.line}" if pos else str(self.path)
        self.problems.append(f"{where}: {keypath or '<document>'}: {message}")

    def expect(self, keypath: str, expected: str, found: object, hint: str = "") -> None:
        self.error(keypath, f"expected {expected}, got {_show(found)}{hint}")

    def duplicates(self, keypath: str, data: Mapping[str, Any]) -> None:
        # 1 and "1" are two keys of one spelling: one problem, not one per key.
        for key in dict.fromkeys(str(k) for k in data):
            pos = self.positions.get(f"{_join(keypath, key)}#dup")
            if pos is not None:
                self.problems.append(
                    f"{self.path}:{pos.line}: {_join(keypath, key)}: "
                    f"duplicate key {key!r}; keep one"
                )

    def mapping(
        self,
        keypath: str,
        data: object,
        required: tuple[str, ...],
        optional: tuple[str, ...],
    ) -> Mapping[str, Any] | None:
        if not isinstance(data, dict):
            self.expect(keypath, "a mapping", data)
            return None
        self.duplicates(keypath, data)
        known = required + optional
        for key in data:
            if not isinstance(key, str):
                self.error(keypath, f"expected string keys, got {_show(key)}")
                continue
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.error(
                    _join(keypath, key),
                    f"unknown key {key!r}{hint}; expected one of: {', '.join(known)}",
                )
        for key in required:
            if key not in data:
                self.error(keypath, f"missing required key {key!r}")
        return data

    def string(self, keypath: str, value: object, *, nonempty: bool = True) -> str | None:
        if isinstance(value, str) and (value.strip() or not nonempty):
            return value if value.isascii() or self.encodable(keypath, value) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            # YAML reads an unquoted 2.12 as a float; say how to keep it a
            # string, as written: 2.10 reads as 2.1, and 0123 as the octal 83.
            pos = self.positions.get(keypath)
            written = pos.text if pos is not None and pos.text is not None else value
            self.expect(keypath, "a string", value, f' (quote it: "{written}")')
        elif isinstance(value, str):
            self.expect(keypath, "a non-empty string", value)
        else:
            self.expect(keypath, "a string", value)
        return None

    def encodable(self, keypath: str, value: str) -> bool:
        # YAML's "\ud83d" escapes one UTF-16 surrogate, as JSON writes an
        # emoji, and pyyaml keeps it: a string that no output can print.
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            self.error(keypath, _surrogate_problem(value, exc.start))
            return False
        return True

    def all_encodable(self, keypath: str, value: object) -> bool:
        # A config option's value is any YAML: each string in it, keys too.
        seen: set[int] = set()

        def check(keypath: str, value: object) -> bool:
            if isinstance(value, str):
                return value.isascii() or self.encodable(keypath, value)
            if not isinstance(value, (dict, list, set)) or id(value) in seen:
                return True
            # An alias is the same object: each is walked once (billion laughs).
            seen.add(id(value))
            if isinstance(value, dict):
                return all(
                    check(_join(keypath, str(k)), k) and check(_join(keypath, str(k)), v)
                    for k, v in value.items()
                )
            return all(check(f"{keypath}[{i}]", item) for i, item in enumerate(value))

        return check(keypath, value)

    def each(
        self,
        keypath: str,
        value: object,
        check: Callable[[str, object], T | None],
        *,
        nonempty: bool,
    ) -> tuple[T, ...] | None:
        if not isinstance(value, list):
            self.expect(keypath, "a list", value)
            return None
        if nonempty and not value:
            self.expect(keypath, "a non-empty list", value)
            return None
        results = [check(f"{keypath}[{i}]", item) for i, item in enumerate(value)]
        if any(r is None for r in results):
            return None
        return tuple(r for r in results if r is not None)

    def manifest(self, data: object, location: Path) -> Manifest | None:
        top = self.mapping("", data, ("version", "package", "backports"), ())
        if top is None:
            return None
        version = self.schema_version(top["version"]) if "version" in top else None
        package = self.package(top["package"]) if "package" in top else None
        backports = (
            self.each("backports", top["backports"], self.backport, nonempty=False)
            if "backports" in top
            else None
        )
        if backports is not None:
            self.unique_ids(backports)
        if self.problems or version is None or package is None or backports is None:
            return None
        return Manifest(self.path, version, package, backports, location)

    def schema_version(self, value: object) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.expect("version", f"the integer {SCHEMA_VERSION}", value)
            return None
        if value != SCHEMA_VERSION:
            self.error(
                "version",
                f"expected schema version {SCHEMA_VERSION}, got {value}; "
                "this backport-tool reads schema 1 only. Hint: upgrade backport-tool",
            )
            return None
        return value

    def package(self, value: object) -> str | None:
        name = self.string("package", value)
        if name is None:
            return None
        # Only validation needs it, never a manifest read back from the cache.
        from packaging.utils import InvalidName, canonicalize_name  # noqa: PLC0415

        try:
            return canonicalize_name(name, validate=True)
        except InvalidName:
            self.expect("package", "a distribution name such as 'torch'", name)
            return None

    def unique_ids(self, backports: tuple[Backport, ...]) -> None:
        first: dict[str, int] = {}
        for index, backport in enumerate(backports):
            if backport.id in first:
                self.error(
                    f"backports[{index}].id",
                    f"duplicate id {backport.id!r}; backports[{first[backport.id]}] "
                    "already uses it",
                )
            else:
                first[backport.id] = index

    def backport(self, keypath: str, data: object) -> Backport | None:
        required = ("id", "summary", "applies_to", "module", "targets")
        optional = (
            "fixed_in",
            "upstream",
            "requires",
            "status",
            "retired_reason",
            "sha256",
            "opt_in",
        )
        entry = self.mapping(keypath, data, required, optional)
        if entry is None:
            return None
        before = len(self.problems)
        backport_id = self.backport_id(f"{keypath}.id", entry["id"]) if "id" in entry else None
        summary = (
            self.string(f"{keypath}.summary", entry["summary"]) if "summary" in entry else None
        )
        applies_to = (
            self.specifier(f"{keypath}.applies_to", entry["applies_to"])
            if "applies_to" in entry
            else None
        )
        fixed_in = (
            self.version(f"{keypath}.fixed_in", entry["fixed_in"]) if "fixed_in" in entry else None
        )
        if (
            applies_to is not None
            and fixed_in is not None
            and applies_to.contains(fixed_in, prereleases=True)
        ):
            self.error(
                f"{keypath}.fixed_in",
                f"fixed_in {fixed_in} is inside applies_to {entry['applies_to']!r}: a version "
                "cannot both need the backport and already have the fix; "
                f"end applies_to below {fixed_in}",
            )
        upstream = self.upstream(f"{keypath}.upstream", entry.get("upstream", {}))
        module = self.module(f"{keypath}.module", entry["module"]) if "module" in entry else None
        targets = (
            self.each(f"{keypath}.targets", entry["targets"], self.target, nonempty=True)
            if "targets" in entry
            else None
        )
        requires = self.each(
            f"{keypath}.requires", entry.get("requires", []), self.symbol, nonempty=False
        )
        if targets is not None:
            self.original_names(f"{keypath}.targets", targets)
        retired_reason = self.retirement(keypath, entry)
        sha256 = self.sha256(f"{keypath}.sha256", entry["sha256"]) if "sha256" in entry else None
        opt_in = entry.get("opt_in", False)
        if not isinstance(opt_in, bool):
            self.expect(f"{keypath}.opt_in", "true or false", opt_in)
        if (
            len(self.problems) > before
            or backport_id is None
            or summary is None
            or applies_to is None
            or module is None
            or targets is None
            or upstream is None
            or requires is None
        ):
            return None
        pos = self.positions.get(keypath)
        return Backport(
            id=backport_id,
            summary=summary,
            applies_to=applies_to,
            applies_to_text=str(entry["applies_to"]).strip(),
            fixed_in=fixed_in,
            upstream=upstream,
            module=module,
            module_text=entry["module"],
            targets=targets,
            requires=requires,
            retired_reason=retired_reason,
            sha256=sha256,
            opt_in=opt_in,
            line=pos.line if pos else None,
        )

    def matching(
        self, keypath: str, value: object, pattern: re.Pattern[str], expected: str
    ) -> str | None:
        text = self.string(keypath, value)
        if text is not None and not pattern.match(text):
            self.expect(keypath, expected, text)
            return None
        return text

    def backport_id(self, keypath: str, value: object) -> str | None:
        text = self.matching(keypath, value, _ID_RE, "an id matching [a-z0-9][a-z0-9-]*")
        if text is None:
            return None
        if len(text) > MAX_ID_LENGTH:
            self.expect(keypath, f"an id of at most {MAX_ID_LENGTH} characters", text)
            return None
        return text

    def specifier(self, keypath: str, value: object) -> SpecifierSet | None:
        text = self.string(keypath, value)
        if text is None:
            return None
        try:
            specifiers = SpecifierSet(text)
        except InvalidSpecifier:
            self.expect(keypath, 'a PEP 440 specifier set such as ">=2.11.0,<2.12"', text)
            return None
        if not len(specifiers):
            # packaging reads "," as a set of no clauses, which every version
            # is in: a backport that would apply everywhere.
            self.expect(
                keypath,
                'a PEP 440 specifier set with at least one clause, such as ">=2.11.0,<2.12" '
                "(one with none matches every version)",
                text,
            )
            return None
        return specifiers

    def version(self, keypath: str, value: object) -> Version | None:
        text = self.string(keypath, value)
        if text is None:
            return None
        try:
            return Version(text)
        except InvalidVersion:
            self.expect(keypath, 'a PEP 440 version such as "2.12.0"', text)
            return None

    def upstream(self, keypath: str, data: object) -> Upstream | None:
        entry = self.mapping(keypath, data, (), ("pr", "issue", "commit", "notes"))
        if entry is None:
            return None
        values: dict[str, str | None] = {}
        for key in ("pr", "issue", "notes"):
            if key in entry:
                values[key] = self.string(_join(keypath, key), entry[key])
        if "commit" in entry:
            expected = "a git commit sha (7 to 40 hex digits)"
            values["commit"] = self.matching(
                _join(keypath, "commit"), entry["commit"], _SHA_RE, expected
            )
        return Upstream(**values)

    def module(self, keypath: str, value: object) -> Path | None:
        text = self.string(keypath, value)
        if text is None:
            return None
        relative = Path(text)
        if relative.is_absolute():
            self.expect(keypath, "a path relative to the manifest's directory", text)
            return None
        if relative.suffix != ".py":
            self.expect(keypath, "a path to a .py file", text)
            return None
        if "\0" in text:
            # The OS cannot take it: pathlib would raise ValueError.
            self.error(
                keypath, f"{_show(text)} cannot be a file path: it contains a NUL byte; remove it"
            )
            return None
        root = self.base.resolve()
        try:
            # Resolve symlinks before the containment check, so that a link
            # inside the root cannot point the loader at code outside it.
            resolved = (root / relative).resolve()
            inside = resolved.is_relative_to(root)
            found = inside and resolved.is_file()
        except (OSError, RuntimeError, ValueError) as exc:
            # is_file() is False for only some errnos, not for a name too
            # long or a directory we may not search; before Python 3.13 a
            # symlink loop makes resolve() raise RuntimeError.
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self.error(
                keypath,
                f"{_show(text)} cannot be read: {reason} (looked in {self.shown_base}); "
                "give the path of a readable .py file",
            )
            return None
        if not inside:
            self.expect(keypath, f"a path inside the manifest's directory {self.shown_base}", text)
            return None
        if not found:
            what = "a directory, not a file" if resolved.is_dir() else "file not found"
            self.error(keypath, f"{what}: {text} (looked in {self.shown_base})")
            return None
        return resolved

    def retirement(self, keypath: str, entry: Mapping[str, Any]) -> str | None:
        status = entry.get("status", "active")
        reason = entry.get("retired_reason")
        if status not in ("active", "retired"):
            self.expect(f"{keypath}.status", "'active' or 'retired'", status)
            return None
        if status == "retired":
            if "retired_reason" not in entry:
                self.error(keypath, "missing required key 'retired_reason' (status is 'retired')")
                return None
            return self.string(f"{keypath}.retired_reason", reason)
        if "retired_reason" in entry:
            self.error(
                f"{keypath}.retired_reason",
                "retired_reason given but status is not 'retired'; set status: retired",
            )
        return None

    def sha256(self, keypath: str, value: object) -> str | None:
        expected = "the module file's sha256 as 64 lowercase hex digits"
        return self.matching(keypath, value, _SHA256_RE, expected)

    def fingerprints(self, keypath: str, value: object) -> tuple[str, ...] | None:
        items = value if isinstance(value, list) else [value]
        found: list[str] = []
        for index, item in enumerate(items):
            where = f"{keypath}[{index}]" if isinstance(value, list) else keypath
            if not (isinstance(item, str) and _FINGERPRINT_RE.match(item)):
                self.expect(where, "a fingerprint 'sha256:<16 hex digits>'", item)
                return None
            found.append(item)
        if not found:
            self.expect(keypath, "a fingerprint or a non-empty list of them", value)
            return None
        return tuple(found)

    def versions(self, keypath: str, value: object) -> tuple[str, ...] | None:
        result = self.each(keypath, value, self.version, nonempty=False)
        return None if result is None else tuple(str(v) for v in result)

    def target(self, keypath: str, data: object) -> Target | None:
        entry = self.mapping(
            keypath,
            data,
            ("symbol",),
            (
                "replacement",
                "signature",
                "fingerprint",
                "recorded_from",
                "acknowledged",
                "create",
                "copies",
                "conditional_copies",
                "original",
                "value",
                "add",
                "remove",
            ),
        )
        if entry is None:
            return None
        before = len(self.problems)
        if "add" in entry or "remove" in entry:
            return self.registry_target(keypath, entry)
        if not self.value_or_replacement(keypath, entry):
            return None
        if "value" in entry and not self.all_encodable(_join(keypath, "value"), entry["value"]):
            return None
        symbol = self.symbol(f"{keypath}.symbol", entry["symbol"]) if "symbol" in entry else None
        replacement = (
            self.identifier(f"{keypath}.replacement", entry["replacement"])
            if "replacement" in entry
            else ""
        )
        signature = (
            self.signature(f"{keypath}.signature", entry["signature"])
            if "signature" in entry
            else None
        )
        fingerprints, recorded_from = self.provenance(keypath, entry)
        if (
            len(self.problems) > before
            or symbol is None
            or replacement is None
            or fingerprints is None
            or recorded_from is None
        ):
            return None
        acknowledged = self.each(
            f"{keypath}.acknowledged",
            entry.get("acknowledged", []),
            self.string,
            nonempty=False,
        )
        if acknowledged is None:
            return None
        for index, path in enumerate(acknowledged):
            if ":" not in path:
                # Before copies were declared, reference paths had no ':'
                # between the module and the attribute (``pkg.mod.TABLE['k']``).
                self.error(
                    f"{keypath}.acknowledged[{index}]",
                    f"{path!r} is a reference path in the old form (no ':' between the module "
                    "and the name). Delete the acknowledged: list, run `backport-tool check` to "
                    "see the references as they are named now, and record the reviewed ones "
                    "with `backport-tool lock --acknowledge`",
                )
                return None
        create = entry.get("create", False)
        if not isinstance(create, bool):
            self.expect(f"{keypath}.create", "true or false", create)
            return None
        copies = self.each(
            f"{keypath}.copies", entry.get("copies", []), self.symbol, nonempty=False
        )
        if copies is None:
            return None
        conditional = self.each(
            f"{keypath}.conditional_copies",
            entry.get("conditional_copies", []),
            self.symbol,
            nonempty=False,
        )
        if conditional is None:
            return None
        for key, sites in (("copies", copies), ("conditional_copies", conditional)):
            if symbol in sites:
                self.expect(
                    f"{keypath}.{key}", "other bindings than the target itself", str(symbol)
                )
                return None
            if create and sites:
                self.expect(f"{keypath}.{key}", "no copies for a created attribute", sites[0])
                return None
        both = [str(site) for site in conditional if site in copies]
        if both:
            self.expect(
                f"{keypath}.conditional_copies",
                "sites that copies: does not list too (a copy is either bound always or "
                "only in some environments)",
                both[0],
            )
            return None
        original = None
        if "original" in entry:
            original = self.original_name(f"{keypath}.original", entry["original"], replacement)
            if original is None:
                return None
            if create:
                self.error(
                    f"{keypath}.original",
                    "a created attribute has no original to bind; remove original: or create: true",
                )
                return None
        return Target(
            symbol,
            replacement,
            signature,
            fingerprints,
            recorded_from,
            acknowledged,
            create,
            (*copies, *conditional),
            original,
            entry.get("value", NO_VALUE),
            conditional=frozenset(conditional),
        )

    def registry_target(self, keypath: str, entry: Mapping[str, Any]) -> Target | None:
        # The container at symbol is edited in place, never replaced: nothing
        # installs a replacement, binds an original or rebinds copies.
        for key in (
            "replacement",
            "value",
            "signature",
            "create",
            "copies",
            "conditional_copies",
            "original",
            "acknowledged",
        ):
            if key in entry:
                self.error(
                    _join(keypath, key),
                    f"{key}: does not go with add: or remove: (a registry target edits the "
                    "set, dict or list at symbol in place); remove it",
                )
                return None
        before = len(self.problems)
        symbol = self.symbol(f"{keypath}.symbol", entry["symbol"]) if "symbol" in entry else None
        add = self.registry_add(f"{keypath}.add", entry["add"]) if "add" in entry else ()
        remove: tuple[EntryRef, ...] | None = (
            self.each(f"{keypath}.remove", entry["remove"], self.entry_ref, nonempty=True)
            if "remove" in entry
            else ()
        )
        fingerprints, recorded_from = self.provenance(keypath, entry)
        if (
            len(self.problems) > before
            or symbol is None
            or add is None
            or remove is None
            or fingerprints is None
            or recorded_from is None
        ):
            return None
        added = {str(e.key): index for index, e in enumerate(add)}
        for index, ref in enumerate(remove):
            if str(ref) in added:
                self.error(
                    f"{keypath}.remove[{index}]",
                    f"{str(ref)!r} is added by this target too (add: entry "
                    f"{added[str(ref)]}); keep it in one of add: or remove:",
                )
                return None
        if not self.unique_refs(f"{keypath}.remove", [str(r) for r in remove]):
            return None
        return Target(
            symbol,
            "",
            fingerprints=fingerprints,
            recorded_from=recorded_from,
            add=add,
            remove=remove,
        )

    def registry_add(self, keypath: str, value: object) -> tuple[RegistryEntry, ...] | None:
        # A list adds elements (a set or list registry); a mapping adds keys
        # with their values (a dict registry).
        if isinstance(value, dict):
            if not value:
                self.expect(keypath, "a non-empty mapping of entries (key -> value)", value)
                return None
            self.duplicates(keypath, value)
            entries: list[RegistryEntry] = []
            for key, item in value.items():
                where = _join(keypath, str(key))
                found_key = self.entry_ref(where, key)
                found_value = self.entry_ref(where, item)
                if found_key is None or found_value is None:
                    return None
                entries.append(RegistryEntry(found_key, found_value))
            return tuple(entries)
        if not isinstance(value, list):
            self.expect(
                keypath,
                "a list of entries (a set or list registry) or a mapping of key -> value "
                "(a dict registry)",
                value,
            )
            return None
        refs: tuple[EntryRef, ...] | None = self.each(keypath, value, self.entry_ref, nonempty=True)
        if refs is None or not self.unique_refs(keypath, [str(r) for r in refs]):
            return None
        return tuple(RegistryEntry(ref) for ref in refs)

    def unique_refs(self, keypath: str, refs: list[str]) -> bool:
        first: dict[str, int] = {}
        for index, ref in enumerate(refs):
            if ref in first:
                self.error(
                    f"{keypath}[{index}]",
                    f"{ref!r} is listed already at {keypath}[{first[ref]}]; keep one",
                )
                return False
            first[ref] = index
        return True

    def entry_ref(self, keypath: str, value: object) -> EntryRef | None:
        text = self.string(keypath, value)
        if text is None:
            return None
        expected = (
            "an entry 'dotted.module:Dotted.qualname' (an object of that module) or the name "
            "of an attribute of the backport module"
        )
        if ":" in text:
            try:
                return SymbolRef.parse(text)
            except ValueError as exc:
                self.expect(keypath, f"{expected} ({exc})", text)
                return None
        if not (text.isascii() and text.isidentifier()) or keyword.iskeyword(text):
            self.expect(keypath, expected, text)
            return None
        if text.startswith("__") or text in _MODULE_HOOKS:
            self.expect(keypath, f"{expected} (not a dunder or a hook name)", text)
            return None
        return text

    def value_or_replacement(self, keypath: str, entry: Mapping[str, Any]) -> bool:
        # A target installs either an attribute of the backport module
        # (replacement:) or a config option's value (value:).
        if "value" not in entry:
            if "replacement" not in entry:
                self.error(
                    keypath,
                    "missing required key 'replacement' (or 'value', to set a config option, "
                    "or 'add' or 'remove', to edit a registry's entries)",
                )
                return False
            return True
        if "replacement" in entry:
            self.error(
                _join(keypath, "value"),
                "give replacement: or value:, not both (value: sets a config option to it; "
                "replacement: names an attribute of the backport module)",
            )
            return False
        for key in ("signature", "create", "copies", "conditional_copies", "original"):
            if key in entry:
                self.error(
                    _join(keypath, key),
                    f"{key}: does not go with value: (a config option set to a value); remove it",
                )
                return False
        return True

    def original_name(self, keypath: str, value: object, replacement: str) -> str | None:
        text = self.string(keypath, value)
        if text is None:
            return None
        expected = "a Python identifier, the global of the backport module that holds the original"
        if not (text.isascii() and text.isidentifier()) or keyword.iskeyword(text):
            self.expect(keypath, expected, text)
            return None
        # The module's own dunders and hooks are not ours to rebind.
        if text.startswith("__") or text in _MODULE_HOOKS:
            self.expect(keypath, f"{expected} (not a dunder or a hook name)", text)
            return None
        if text == replacement:
            self.expect(keypath, "another name than the replacement's", text)
            return None
        return text

    def original_names(self, keypath: str, targets: tuple[Target, ...]) -> None:
        # One module global holds one original; a replacement is never overwritten.
        replacements = {t.replacement for t in targets}
        first: dict[str, int] = {}
        for index, target in enumerate(targets):
            name = target.original
            if name is None:
                continue
            where = f"{keypath}[{index}].original"
            if name in first:
                self.error(
                    where,
                    f"{name!r} is already the original of {keypath}[{first[name]}]; "
                    "give each target its own name",
                )
            elif name in replacements:
                self.error(
                    where,
                    f"{name!r} is the replacement of another target; binding the original "
                    "there would overwrite it: choose another name",
                )
            first.setdefault(name, index)

    def symbol(self, keypath: str, value: object) -> SymbolRef | None:
        text = self.string(keypath, value)
        if text is None:
            return None
        try:
            return SymbolRef.parse(text)
        except ValueError as exc:
            self.expect(keypath, f"a symbol 'dotted.module:Dotted.qualname' ({exc})", text)
            return None

    def identifier(self, keypath: str, value: object) -> str | None:
        text = self.string(keypath, value)
        if text is None:
            return None
        if not (text.isascii() and text.isidentifier()) or keyword.iskeyword(text):
            self.expect(keypath, "the name of an attribute of the backport module", text)
            return None
        return text

    def provenance(
        self, keypath: str, entry: Mapping[str, Any]
    ) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
        # A target's recorded fingerprints and the versions they come from;
        # None where the key is invalid.
        fingerprints = (
            self.fingerprints(f"{keypath}.fingerprint", entry["fingerprint"])
            if "fingerprint" in entry
            else ()
        )
        recorded_from = (
            self.versions(f"{keypath}.recorded_from", entry["recorded_from"])
            if "recorded_from" in entry
            else ()
        )
        return fingerprints, recorded_from

    def signature(self, keypath: str, value: object) -> str | None:
        text = self.string(keypath, value)
        if text is None:
            return None
        try:
            normalize_signature(text)
        except ValueError:
            self.expect(keypath, 'a signature such as "(self, users: int) -> bool"', text)
            return None
        return text
