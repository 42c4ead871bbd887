"""``backport-tool new``: start a backport from the installed target."""

from __future__ import annotations

import ast
import builtins
import contextlib
import copy
import enum
import functools
import importlib.util
import inspect
import io
import os
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from packaging.utils import canonicalize_name

from .copysites import CopiesUnknown, find_copies, installed_tree
from .errors import WRITING_MANIFEST, MissingDependencyError, UsageError
from .files import (
    TextStyle,
    cannot_write,
    read_text,
    refuse_read_only,
    write_target,
    write_text_preserving,
)
from .findings import Presence
from .inspection import LiveInspector
from .locking import _give_trailing, _readable, _round_trip, _take_trailing
from .manifest import _ID_RE, MAX_ID_LENGTH, SymbolRef, load_manifest, parse_manifest
from .manifest_file import resolved_spec
from .source import parse_signature
from .static import StaticIndex
from .symbols import Resolved, method_kind
from .verification import config_site, unpatchable
from .versions import installed_version

# As in lock, which this imports first.
try:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString
except ImportError as exc:
    raise MissingDependencyError(WRITING_MANIFEST, "ruamel.yaml", "ruamel.yaml", exc) from exc

HEADER = '''\
"""{summary}

Backport of <upstream PR> for {package} {series}. It replaces
{targets}.

Until each replacement is written, ``backport-tool check`` fails ("not
written yet") and ``apply`` never installs it; until the self-test is
written, ``backport-tool check --selftest`` fails.
"""

from __future__ import annotations
{imports}'''

FUNCTION = '''

{decorator}def {name}{signature}:
    """The fixed {qualname}."""
    # Import torch inside functions: backport-tool loads this module (for the
    # probe) next to any torch version, or none.
    raise NotImplementedError("{id}: write the fixed {qualname} here")
'''

# A property is replaced by a property, with each function the original has.
PROPERTY = '''

@{decorator}
def {name}(self):
    """The fixed {qualname}."""
    raise NotImplementedError("{id}: write the fixed {qualname} here")
'''

PROPERTY_PART = """

@{name}.{part}
def {name}(self{parameter}):
    raise NotImplementedError("{id}: write the fixed {qualname} {part} here")
"""

# C code has no source to copy: the skeleton is a wrapper, and apply binds the
# original to a global of this module for it to call.
BUILTIN = '''

# Bound by apply to the original {qualname} (C code) before the replacement
# is installed; None only for linters.
{original} = None


{decorator}def {name}{signature}:
    """The fixed {qualname}, wrapping the original (C code)."""
    # Call the original as {call}{signature_note}.
    # Import torch inside functions: backport-tool loads this module (for the
    # probe) next to any torch version, or none.
    raise NotImplementedError("{id}: write the fixed {qualname} here")
'''

# A registry target is edited in place; the manifest's add: names these
# module globals (or module:qualname references, which the author may write
# instead).
REGISTRY = """

# The entries to add to {qualname}
# ({what}): apply edits it in place, and revert restores it exactly. Name
# objects of other modules in the manifest's add: as module:qualname instead,
# and list entries to take out under remove:.
# The original assignment is:
{original}
{names}
"""

# A class target's replacement subclasses the original, so the original is
# imported when the module runs; a class that defines nothing of its own is
# "not written yet".
CLASS = '''

class {name}({base}):
    """The fixed {qualname}: override what the fix changes, the rest is
    inherited. Until it defines something of its own, ``check`` fails (not
    written yet) and ``apply`` never installs it."""

    # The original, as installed (normalized, docstrings dropped):
{original}
'''

# NotImplemented marks a value not written yet, as NotImplementedError does a
# function body: check fails on it and apply never installs it.
VALUE = """

# The new value of {qualname}; the original is:
{original}
{name} = NotImplemented
"""

FOOTER = '''

def upstream_probe(symbol: str, source: str) -> tuple[bool | None, str]:
    """Does this original already contain the fix? (True, False or None, and why.)"""
    return None, "the probe of {id} is not written yet"


def selftest() -> None:
    """Exercise the patched code for real; raise on failure."""
    raise AssertionError("{id}: the self-test is not written yet")
'''


class _Target(NamedTuple):
    ref: SymbolRef
    name: str  # of the replacement in the backport module
    signature: str | None  # None for a value, a class, or C code without a text signature
    fingerprint: str | None  # None for C code
    source: str | None  # None for C code
    copies: tuple[SymbolRef, ...]  # other bindings of the original in the installed package
    kind: str = "function"  # or "value", "class", "builtin", "registry"
    method: str | None = None  # "classmethod" or "staticmethod", as the original is stored
    container: str | None = None  # a registry's type name, for the skeleton to say
    mapping: bool = False  # a registry that is a dict: its entries are key and value
    size: int = 0  # a registry's entries when it was read
    conditional: tuple[SymbolRef, ...] = ()  # of copies: bound in some environments only
    parts: tuple[str, ...] = ()  # a property's "setter" and "deleter", where it has them
    home: str = ""  # the module that defines a function target (torch:einsum's is torch.functional)
    # The signature the skeleton writes: the recorded one, or the source's
    # spelling where Python cannot read the installed one back; None: neither.
    written: str | None = None

    @property
    def original_name(self) -> str:
        # The global apply binds to a C original: an identifier, never a dunder.
        return "original_" + self.name.strip("_")


class Scaffolded(NamedTuple):
    """The files ``new`` wrote: the manifest (as given) and the new backport module."""

    manifest: Path
    module: Path

    def to_dict(self) -> dict[str, str]:
        """The paths as JSON-ready strings."""
        return {"manifest": str(self.manifest), "module": str(self.module)}


def scaffold(
    manifest_path: str | os.PathLike[str],
    backport_id: str,
    targets: str | Sequence[str],
    package: str | None = None,
) -> Scaffolded:
    """Write a backport module skeleton and its manifest entry for one or more
    targets (functions, methods, classmethods and staticmethods, values and
    config options, classes, and builtins: C code, wrapped); return the paths
    written.

    An existing manifest must be valid; nothing is written otherwise, nor when
    any write fails.
    """
    if not _ID_RE.match(backport_id):
        raise UsageError(f"id {backport_id!r} must match [a-z0-9][a-z0-9-]*")
    if len(backport_id) > MAX_ID_LENGTH:
        # The manifest's limit, checked here: later, the validation would
        # blame the user's manifest for the command line's id, or, longer
        # still, the module's file name would be too long for the filesystem.
        raise UsageError(
            f"id {backport_id!r} is {len(backport_id)} characters long; an id has at most "
            f"{MAX_ID_LENGTH}: choose a shorter one"
        )
    specs = [targets] if isinstance(targets, str) else list(targets)
    refs = [_parse(spec) for spec in specs]
    if len({str(ref) for ref in refs}) != len(refs):
        raise UsageError("each --target may be given once")
    path = resolved_spec(manifest_path)
    # A dangling link is refused here, not mistaken for "no manifest yet".
    manifest_file = write_target(path)
    exists = manifest_file.exists()
    if exists:
        # The project's validator, before anything is changed: `new` must not
        # build on a manifest that every other command would refuse.
        load_manifest(path)
        # Before the module is written, which a refusal then would undo.
        refuse_read_only(path, manifest_file)
    read = _read_targets(refs)
    yaml = _round_trip()
    style = TextStyle()
    if exists:
        text, style = read_text(manifest_file)
        document = yaml.load(text)
        package = _gated_package(path, str(document.get("package")), package)
    else:
        # The distribution that gates the patch set; torch's module and
        # distribution names agree, other packages may pass --package.
        package = package or refs[0].module.split(".")[0]
        document = CommentedMap([("version", 1), ("package", package), ("backports", [])])
    version = installed_version(package)
    if version is None:
        raise UsageError(f"{package} is not installed; `new` reads the target from it")
    major, minor = (*version.release, 0)[:2]
    series = f"{major}.{minor}"
    if any(entry.get("id") == backport_id for entry in document.get("backports") or []):
        raise UsageError(f"{path} already has a backport {backport_id!r}")
    module_rel = f"backports/{backport_id.replace('-', '_')}.py"
    # Module paths are relative to the manifest's REAL location (symlinks
    # resolved), the rule the loader uses to find them; through a symlinked
    # manifest the module lands next to the file the link points to.
    base = manifest_file.parent
    module_path = base / module_rel
    # Said as the user spelled the manifest when that is the same directory.
    shown = path.parent / module_rel if path.parent.resolve() == base else module_path
    if write_target(shown, within=base).exists():
        raise UsageError(f"{shown} already exists; choose another id")
    summary = f"TODO: one line on what {backport_id} fixes"
    if document.get("backports") is None:
        document["backports"] = []
    _append(
        document["backports"],
        _entry(
            backport_id,
            summary,
            read,
            version.public,
            f">={series}.0,<{major}.{minor + 1}",
            module_rel,
        ),
    )
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    skeleton = _skeleton(backport_id, summary, package, series, read)
    result = Scaffolded(path, shown)
    _write_both(result, module_path.parent, skeleton, manifest_file, buffer.getvalue(), style)
    return result


def _skeleton(
    backport_id: str, summary: str, package: str, series: str, read: list[_Target]
) -> str:
    statements: set[str] = set()
    for target in read:
        if target.kind != "function":
            continue
        if target.written is None or _named_defaults(target.written):
            statements.add("from typing import Any")
        else:
            statements |= _annotation_imports(target.written, target.home)
    text = HEADER.format(
        summary=summary.replace("TODO: one line on", "Backport:"),
        package=package,
        series=series,
        targets=", ".join(f"``{t.ref}``" for t in read),
        imports=_render_imports(statements),
    )
    if any(t.kind == "property" and t.method != "property" for t in read):
        text += "\nimport functools\n"
    classes = [t for t in read if t.kind == "class"]
    if classes:
        text += "\n" + "".join(
            f"from {t.ref.module} import {t.ref.qualname.split('.')[0]} as _Original_{t.name}\n"
            for t in classes
        )
    for target in read:
        decorator = f"@{target.method}\n" if target.method else ""
        if target.kind == "value":
            text += VALUE.format(
                name=target.name,
                qualname=target.ref.qualname,
                original=_commented(target.source or ""),
            )
        elif target.kind == "registry":
            text += REGISTRY.format(
                qualname=target.ref.qualname,
                what=f"a {target.container} of {target.size} entries",
                original=_commented(target.source or ""),
                names="".join(f"{name} = NotImplemented\n" for name in _entry_names(target)),
            )
        elif target.kind == "class":
            text += CLASS.format(
                name=target.name,
                base=_class_base(target),
                qualname=target.ref.qualname,
                original=_commented(target.source or "", "    "),
            )
        elif target.kind == "property":
            text += PROPERTY.format(
                decorator=target.method,
                name=target.name,
                qualname=target.ref.qualname,
                id=backport_id,
            )
            for part, parameter in (("setter", ", value"), ("deleter", "")):
                if part in target.parts:
                    text += PROPERTY_PART.format(
                        name=target.name,
                        part=part,
                        parameter=parameter,
                        qualname=target.ref.qualname,
                        id=backport_id,
                    )
        elif target.kind == "builtin":
            signature = target.signature or _generic_signature(target.method)
            text += BUILTIN.format(
                decorator=decorator,
                name=target.name,
                original=target.original_name,
                signature=signature,
                signature_note=(
                    ""
                    if target.signature
                    else ".\n    # It has no text signature: every call passes through"
                ),
                call=f"{target.original_name}({_arguments(signature)})",
                qualname=target.ref.qualname,
                id=backport_id,
            )
        else:
            written = target.written
            named = _named_defaults(written)
            if written is None:
                decorator = (
                    f"# Python cannot read back the signature of {target.ref.qualname}: take "
                    "the arguments\n# whole, and bind them inside "
                    "(inspect.signature(original).bind).\n" + decorator
                )
                written = "(*args: Any, **kwargs: Any)"
            elif named:
                # Defaults are evaluated when the module loads, which must
                # not import torch: take the arguments whole instead.
                decorator = (
                    f"# The original: {target.ref.qualname}{written}\n"
                    f"# Defaults that name its module's objects ({', '.join(named)}) cannot be "
                    "written here:\n# this module must not import torch when it loads. Bind "
                    "the arguments inside\n# (inspect.signature(original).bind).\n" + decorator
                )
                written = "(*args: Any, **kwargs: Any)"
            elif written != target.signature:
                decorator = (
                    f"# Python cannot read back the installed signature of {target.ref.qualname} "
                    "as inspect\n# spells it, so the manifest records none, as `lock` does; "
                    "this is the source's\n# spelling of it.\n" + decorator
                )
            text += FUNCTION.format(
                decorator=decorator,
                name=target.name,
                signature=written,
                qualname=target.ref.qualname,
                id=backport_id,
            )
    return text + FOOTER.format(id=backport_id)


def _home(function: object, named_in: str) -> str:
    # Where a function target is defined: its annotations name what that
    # module has in scope, not what a re-export's module has.
    home = getattr(inspect.unwrap(function), "__module__", None)  # type: ignore[arg-type]
    return home if isinstance(home, str) and home in sys.modules else named_in


def _named_defaults(signature: str | None) -> list[str]:
    # The defaults that are not literals: names and calls of the target's module.
    if signature is None:
        return []
    arguments = parse_signature(signature).args
    named = []
    for default in [*arguments.defaults, *arguments.kw_defaults]:
        if default is None:
            continue
        try:
            ast.literal_eval(default)
        except ValueError:
            named.append(ast.unparse(default))
    return named


def _entry_names(target: _Target) -> list[str]:
    # A dict takes a key and a value; a set or list one entry.
    base = target.name.strip("_") or "registry"
    if target.mapping:
        return [f"{base}_key", f"{base}_value"]
    return [f"{base}_entry"]


def _commented(source: str, indent: str = "") -> str:
    return "\n".join(f"{indent}#     {line}".rstrip() for line in source.splitlines())


def _class_base(target: _Target) -> str:
    # A nested class is reached from its outermost class, imported under this name.
    return ".".join([f"_Original_{target.name}", *target.ref.qualname.split(".")[1:]])


def _arguments(signature: str) -> str:
    # The call that passes a wrapper's parameters on as they came.
    args = parse_signature(signature).args
    parts = [a.arg for a in (*args.posonlyargs, *args.args)]
    if args.vararg is not None:
        parts.append(f"*{args.vararg.arg}")
    parts += [f"{a.arg}={a.arg}" for a in args.kwonlyargs]
    if args.kwarg is not None:
        parts.append(f"**{args.kwarg.arg}")
    return ", ".join(parts)


def _generic_signature(method: str | None) -> str:
    # C code without a text signature: any call the original takes passes through.
    if method == "classmethod":
        return "(cls, *args, **kwargs)"
    return "(*args, **kwargs)"


def _parse(spec: str) -> SymbolRef:
    try:
        return SymbolRef.parse(spec)
    except ValueError as exc:
        raise UsageError(f"--target {spec!r} is not module:qualname ({exc})") from None


def _read_targets(refs: list[SymbolRef]) -> list[_Target]:
    inspector = LiveInspector()
    indexes: dict[str, StaticIndex] = {}
    read: list[_Target] = []
    for ref in refs:
        facts = inspector.inspect(ref)
        resolved = facts.resolved
        if facts.presence is not Presence.FOUND or resolved is None:
            raise UsageError(
                f"cannot read the installed {ref}: {facts.message or 'it was not found'}; "
                "`new` starts a backport from the target as it is installed"
            )
        _refuse_unpatchable(ref, resolved)
        method = method_kind(resolved.raw)
        copies, conditional = _copies(ref, indexes)
        if facts.builtin:
            # No source, no fingerprint: a text signature where it has one
            # (and Python can read back).
            text_signature = _or_none(facts.signature)
            read.append(
                _Target(
                    ref,
                    "",
                    text_signature,
                    None,
                    None,
                    copies,
                    "builtin",
                    method,
                    conditional=conditional,
                )
            )
            continue
        function = facts.function
        if function is None:
            raise UsageError(
                f"cannot read the installed {ref}: it has no Python source and is not C "
                "code backport-tool can check (a function or class made at run time); "
                "write its entry by hand"
            )
        container = resolved.function
        if isinstance(container, (set, dict, list)) and config_site(facts) is None:
            # Torch's registry: edited in place (add:/remove:), never replaced,
            # so every holder of it sees the entries.
            read.append(
                _Target(
                    ref,
                    "",
                    None,
                    function.fingerprint,
                    function.source,
                    (),
                    "registry",
                    container=type(container).__name__,
                    mapping=isinstance(container, dict),
                    size=len(container),
                )
            )
            continue
        raw = resolved.raw
        parts: tuple[str, ...] = ()
        if isinstance(raw, (property, functools.cached_property)):
            # Replaced by one of its kind, with the setter and deleter it has.
            kind = "property"
            if isinstance(raw, property):
                method = "property"
                held = (("setter", raw.fset), ("deleter", raw.fdel))
                parts = tuple(part for part, function_of in held if function_of is not None)
            else:
                method = "functools.cached_property"
        elif isinstance(resolved.function, type):
            kind = "class"
            _refuse_enum(ref, resolved.function)
        elif facts.signature is None and function.signature is None:
            kind = "value"
        else:
            kind = "function"
        # A property records its getter's signature, as lock does, and, as
        # lock does, none that Python cannot read back (an annotation that
        # evaluated to an object without a name, <function NamedTuple at
        # 0x...>): it would make the manifest invalid. The skeleton then
        # takes the source's spelling of it.
        live = None if kind == "class" else facts.signature or function.signature
        signature = _or_none(live)
        read.append(
            _Target(
                ref,
                "",
                signature,
                function.fingerprint,
                function.source,
                copies,
                kind,
                method,
                conditional=conditional,
                parts=parts,
                home=_home(resolved.function, ref.module),
                written=signature or _or_none(function.signature),
            )
        )
    names = _replacement_names([t.ref for t in read])
    return [t._replace(name=name) for t, name in zip(read, names, strict=True)]


def _or_none(signature: str | None) -> str | None:
    return signature if signature is not None and _readable(signature) else None


def _replacement_names(refs: list[SymbolRef]) -> list[str]:
    # Each target's replacement is a def of its own in the one module: the
    # last part of its qualname, made unique where targets share one with
    # the rest of the qualname, then with more and more of the module path
    # (torch._inductor.utils:get_gpu_type is utils_get_gpu_type next to
    # comm_analysis_get_gpu_type).
    choices = []
    for ref in refs:
        qualname = ref.qualname.split(".")
        module = ref.module.split(".")
        choices.append(
            [
                qualname[-1],
                "_".join(qualname),
                *("_".join([*module[-n:], *qualname]) for n in range(1, len(module) + 1)),
            ]
        )
    level = [0] * len(refs)
    while True:
        names = [options[at] for options, at in zip(choices, level, strict=True)]
        clashing = [
            i
            for i, name in enumerate(names)
            if names.count(name) > 1 and level[i] < len(choices[i]) - 1
        ]
        if not clashing:
            break
        for i in clashing:
            level[i] += 1
    # Whole paths can still meet (a.b:c and a:b.c): number what is left.
    return [
        name if names.count(name) == 1 else f"{name}_{names[: i + 1].count(name)}"
        for i, name in enumerate(names)
    ]


def _refuse_unpatchable(ref: SymbolRef, resolved: Resolved) -> None:
    # What check refuses whatever the module holds: no skeleton could ever
    # be installed there.
    why = unpatchable(ref, resolved)
    if why is not None:
        raise UsageError(why)


def _refuse_enum(ref: SymbolRef, cls: type) -> None:
    # A class target's replacement subclasses the original, and Python
    # refuses to extend an Enum that has members: the module could never load.
    if isinstance(cls, enum.EnumMeta) and cls.__members__:
        raise UsageError(
            f"target {ref}: {cls.__module__}.{cls.__qualname__} is an Enum with members, "
            "which Python does not let a subclass extend, and a class target's replacement "
            "subclasses the original; target the functions or methods that use it instead, "
            "or a module value built from it"
        )


def _copies(
    ref: SymbolRef, indexes: dict[str, StaticIndex]
) -> tuple[tuple[SymbolRef, ...], tuple[SymbolRef, ...]]:
    # Read from the installed sources, as `lock` does; one index per tree, so
    # that several targets share the files read and parsed. The copies bound
    # always, and those bound in some environments only.
    try:
        tree = installed_tree(ref.module)
        index = indexes.setdefault(tree.label, StaticIndex(tree))
        found = find_copies(index, ref)
    except CopiesUnknown:
        # Its source was just read live, so this is rare (a module made at
        # run time); `check` then names what is not declared.
        return (), ()
    always = tuple(site for site in found.sites if site not in found.conditional)
    return always, found.conditional


def _entry(
    backport_id: str,
    summary: str,
    read: list[_Target],
    version: str,
    applies_to: str,
    module: str,
) -> CommentedMap:
    targets = CommentedSeq()
    for target in read:
        recorded_from = CommentedSeq([DoubleQuotedScalarString(version)])
        recorded_from.fa.set_flow_style()
        if target.kind == "registry":
            targets.append(_registry_entry(target, recorded_from))
            continue
        fields: list[tuple[str, object]] = [
            ("symbol", DoubleQuotedScalarString(str(target.ref))),
            ("replacement", target.name),
        ]
        if target.signature is not None:
            fields.append(("signature", DoubleQuotedScalarString(target.signature)))
        if target.fingerprint is not None:
            fields.append(("fingerprint", DoubleQuotedScalarString(target.fingerprint)))
        if target.signature is not None or target.fingerprint is not None:
            fields.append(("recorded_from", recorded_from))
        if target.kind == "builtin":
            fields.append(("original", target.original_name))
        for key, sites in (("copies", target.copies), ("conditional_copies", target.conditional)):
            if sites:
                fields.append((key, CommentedSeq(DoubleQuotedScalarString(str(c)) for c in sites)))
        targets.append(CommentedMap(fields))
    return CommentedMap(
        [
            ("id", backport_id),
            ("summary", summary),
            ("applies_to", DoubleQuotedScalarString(applies_to)),
            ("module", module),
            ("targets", targets),
        ]
    )


def _append(backports: list[object], entry: CommentedMap) -> None:
    # ruamel keeps the comment lines below the last backport (the file's last
    # words, the next key's heading) on its innermost last key, or, below a
    # flow list (recorded_from: [...]), at the end of the block list around
    # it (targets:): they move to the new entry, to stay below the list, as
    # in lock.
    last = backports[-1] if backports else None
    token = None
    if isinstance(last, CommentedMap) and last:
        token = _take_trailing(*_last_key(last))
        for inner in _lists_at_end(last):
            for ended in inner.ca.end or []:
                # Lines of their own, as a key's token holds them below its line.
                if token is None:
                    token = copy.copy(ended)
                    token.value = "\n"
                token.value += ended.value
            inner.ca.end = []
    backports.append(entry)
    if token is not None:
        _give_trailing(*_last_key(entry), token)


def _last_key(mapping: CommentedMap) -> tuple[CommentedMap, str]:
    # The key that holds those lines: the last one, inside the last mapping
    # of a list that ends the block (targets:).
    key = list(mapping)[-1]
    value = mapping[key]
    inner = value[-1] if isinstance(value, CommentedSeq) and value else None
    if isinstance(inner, CommentedMap) and inner:
        return _last_key(inner)
    return mapping, key


def _lists_at_end(mapping: CommentedMap) -> list[CommentedSeq]:
    # The block lists that end the mapping, outermost first.
    value = mapping[list(mapping)[-1]]
    if not isinstance(value, CommentedSeq) or value.fa.flow_style():
        return []
    inner = value[-1] if value else None
    deeper = _lists_at_end(inner) if isinstance(inner, CommentedMap) and inner else []
    return [value, *deeper]


def _registry_entry(target: _Target, recorded_from: CommentedSeq) -> CommentedMap:
    names = _entry_names(target)
    add: CommentedSeq | CommentedMap = (
        CommentedMap([(names[0], names[1])]) if target.mapping else CommentedSeq(names)
    )
    add.fa.set_flow_style()
    return CommentedMap(
        [
            ("symbol", DoubleQuotedScalarString(str(target.ref))),
            ("add", add),
            ("fingerprint", DoubleQuotedScalarString(target.fingerprint or "")),
            ("recorded_from", recorded_from),
        ]
    )


def _write_both(
    result: Scaffolded,
    module_directory: Path,
    skeleton: str,
    manifest_file: Path,
    manifest_text: str,
    style: TextStyle,
) -> None:
    # All or nothing: the module first (the validation needs it in place),
    # then the manifest; a failure removes the module and the directories
    # made for it.
    base = manifest_file.parent
    created = _make_directories(module_directory, result.module)
    try:
        module_file = write_text_preserving(result.module, skeleton, style=TextStyle(), within=base)
        try:
            # Validate the result as a whole, with the module now in place.
            parse_manifest(manifest_text, manifest_file)
            write_text_preserving(result.manifest, manifest_text, style=style)
        except BaseException:
            module_file.unlink(missing_ok=True)
            raise
    except BaseException:
        for directory in reversed(created):
            _remove_empty(directory)
        raise


def _make_directories(directory: Path, module: Path) -> list[Path]:
    # Returns the directories created, so that a failed `new` removes them.
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    created: list[Path] = []
    for step in reversed(missing):
        try:
            step.mkdir()
        except OSError as exc:
            for made in reversed(created):
                _remove_empty(made)
            raise cannot_write(module, exc) from None
        created.append(step)
    return created


def _remove_empty(directory: Path) -> None:
    # Something put there meanwhile keeps the directory.
    with contextlib.suppress(OSError):
        directory.rmdir()


def _gated_package(path: Path, gated: str, given: str | None) -> str:
    # --package names the distribution of a new manifest; an existing one
    # already says it, and must not be contradicted silently.
    if given is not None and canonicalize_name(given) != canonicalize_name(gated):
        raise UsageError(
            f"--package {given} disagrees with {path}, which gates on {gated}; "
            "leave --package out, or give another --manifest"
        )
    return gated


def _annotation_imports(signature: str, home: str) -> set[str]:
    # The copied signature names what the target's module had in scope: a
    # TYPE_CHECKING block makes those names resolvable for the user's linters
    # and type checkers, without importing torch when the module is loaded.
    func = parse_signature(signature)
    arguments = func.args
    annotations = [
        a.annotation
        for a in (
            *arguments.posonlyargs,
            *arguments.args,
            arguments.vararg,
            *arguments.kwonlyargs,
            arguments.kwarg,
        )
        if a is not None and a.annotation is not None
    ]
    if func.returns is not None:
        annotations.append(func.returns)
    dotted: set[str] = set()
    bare: set[str] = set()
    for annotation in annotations:
        _names_in(annotation, dotted, bare)
    bound = _import_statements(home)
    statements = set()
    for name in dotted:
        root = name.partition(".")[0]
        module = _module_prefix(name)
        if root in bound:
            # `np.ndarray` after `import numpy as np` takes the home module's import.
            statements.add(bound[root])
        elif module is not None:
            statements.add(f"import {module}")
        elif not hasattr(sys.modules.get(home), root) and _top_level_module(root):
            # A module the home imports only under TYPE_CHECKING.
            statements.add(f"import {root}")
        else:
            # Not a module: an object the root names (`P.args` of a ParamSpec
            # P, `Outer.Inner`), imported as a bare name is.
            bare.add(root)
    for name in bare - set(dir(builtins)):
        # The home module's own import of the name, else the name from it;
        # else what inspect spells without its module (typing.Union as Union,
        # types.NoneType as NoneType).
        if name in bound:
            statements.add(bound[name])
        elif hasattr(sys.modules.get(home), name):
            statements.add(f"from {home} import {name}")
        elif hasattr(typing, name):
            statements.add(f"from typing import {name}")
        elif hasattr(types, name):
            statements.add(f"from types import {name}")
    return statements


def _render_imports(statements: set[str]) -> str:
    if not statements:
        return ""
    # isort's order: plain imports first, then from-imports.
    ordered = sorted(statements, key=lambda line: (line.startswith("from "), line))
    body = "".join(f"    {line}\n" for line in ordered)
    return f"\nfrom typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n{body}"


def _names_in(node: ast.expr, dotted: set[str], bare: set[str]) -> None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:  # a forward reference, such as Optional["Node"]
            node = ast.parse(node.value, mode="eval").body
        except SyntaxError:
            return
    chain = []
    current: ast.expr = node
    while isinstance(current, ast.Attribute):
        chain.append(current.attr)
        current = current.value
    if isinstance(current, ast.Name):
        if chain:
            dotted.add(".".join([current.id, *reversed(chain)]))
        else:
            bare.add(current.id)
        return
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.expr):
            _names_in(child, dotted, bare)


def _module_prefix(dotted: str) -> str | None:
    # inspect spells evaluated annotations module.qualname: the longest loaded
    # prefix is the module to import; None when no prefix is a module.
    parts = dotted.split(".")
    for end in range(len(parts) - 1, 0, -1):
        if ".".join(parts[:end]) in sys.modules:
            return ".".join(parts[:end])
    return None


def _top_level_module(name: str) -> bool:
    # Found without importing it: a top-level module runs no code of its own
    # to be found.
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _import_statements(home: str) -> dict[str, str]:
    # Under PEP 563 the signature keeps the source's spelling, often names the
    # module imports only under TYPE_CHECKING, so read its import statements.
    module = sys.modules.get(home)
    try:
        tree = ast.parse(inspect.getsource(module)) if module is not None else None
    except (OSError, TypeError, SyntaxError):
        tree = None
    if tree is None:
        return {}
    package = getattr(module, "__package__", None) or home.rpartition(".")[0]
    bound: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            try:
                source = importlib.util.resolve_name(
                    "." * node.level + (node.module or ""), package
                )
            except (ImportError, ValueError):
                continue
            for alias in node.names:
                spelled = alias.name + (f" as {alias.asname}" if alias.asname else "")
                bound.setdefault(alias.asname or alias.name, f"from {source} import {spelled}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    bound.setdefault(alias.asname, f"import {alias.name} as {alias.asname}")
    return bound
