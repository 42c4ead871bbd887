"""Copy sites: the other module globals and class attributes that a package's
own code binds to the same original as a target (``from m import f``, a
re-export, ``g = m.f``, ``class C: attr = f``), found by reading the sources,
never by importing them."""

from __future__ import annotations

import ast
import importlib.util
import re
import weakref
from pathlib import Path
from typing import NamedTuple

from .errors import UsageError
from .manifest import SymbolRef
from .static import (
    DirTree,
    Found,
    Lookup,
    StaticIndex,
    UnreadableFile,
    _absolute,
    _find_binding,
    _statements,
    dotted_name,
)

# Longer chains of imports and assignments are taken as a cycle (`f = f`).
_MAX_HOPS = 25

# A star import anywhere in a file; the AST then says whether it runs when the
# module is imported. Reading every file's text is cheap, parsing it is not.
_STAR = re.compile(r"^[ \t]*from[ \t]+(\.*)([\w.]*)[ \t]+import[ \t]*\*", re.MULTILINE)


class StarImport(NamedTuple):
    """``from SOURCE import *`` in ``module``, where ``source`` binds the
    original as ``name`` but computes its ``__all__``: whether ``module`` gets
    a copy ``module:name`` too cannot be read from the sources."""

    module: str
    source: str
    name: str


class Copies(NamedTuple):
    """What :func:`find_copies` found: the copy sites, sorted, the star
    imports that may make more, and the sites among them that are bound to the
    original only in some environments (under ``if``, ``try`` or ``except``)."""

    sites: tuple[SymbolRef, ...]
    star_imports: tuple[StarImport, ...]
    conditional: tuple[SymbolRef, ...] = ()


class CopiesUnknown(UsageError):
    """The original cannot be found in the sources, so neither can its copies."""


def find_copies(index: StaticIndex, ref: SymbolRef) -> Copies:
    """Find every other binding of ``ref``'s original in ``ref``'s top-level
    package: imports of it (absolute, relative, renamed, of a copy), module-level
    ``g = m.f`` and class-body ``attr = C.f`` assignments, star imports whose
    ``__all__`` can be read, and the definition itself when ``ref`` is a
    re-export. Only statements that run when a module is imported count (top
    level, under ``if``/``try``, in class bodies; not under ``TYPE_CHECKING``).

    Each file is read once and parsed only if it may bind a copy; both are kept
    for later calls with the same ``index``. Raises :class:`CopiesUnknown` when
    the original cannot be found in the sources.
    """
    cache = _CACHES.get(index)
    if cache is None:
        cache = _CACHES[index] = _Cache()
    return _Search(index, cache).run(ref)


def installed_tree(module: str) -> DirTree:
    """The directory (site-packages or a checkout) that holds the installed
    top-level package of ``module``, found without importing it."""
    top = module.partition(".")[0]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise CopiesUnknown(f"{top} is not installed; its copies cannot be searched")
    if spec.origin and spec.has_location:
        origin = Path(spec.origin)
        package = spec.submodule_search_locations is not None
        return DirTree(origin.parent.parent if package else origin.parent)
    for location in spec.submodule_search_locations or ():
        return DirTree(Path(location).parent)  # a namespace package
    raise CopiesUnknown(f"{top} has no Python source to search for copies")


class _Module(NamedTuple):
    text: str
    is_package: bool


class _Binding(NamedTuple):
    site: str  # qualname in its module
    takes: str  # the name it reads: the imported name, or the value's last attribute


class _Cache:
    def __init__(self) -> None:
        self.packages: dict[str, dict[str, _Module]] = {}
        # Per package: source module -> modules whose text star-imports it.
        self.stars: dict[str, dict[str, list[str]]] = {}
        self.bindings: dict[str, list[_Binding]] = {}
        self.patterns: dict[str, re.Pattern[str]] = {}


# Keyed weakly: the cache lives as long as the index it read, and no longer.
_CACHES: weakref.WeakKeyDictionary[StaticIndex, _Cache] = weakref.WeakKeyDictionary()


class _End(NamedTuple):
    node: ast.AST  # the statement that binds the object itself
    module: str
    name: str


class _Search:
    def __init__(self, index: StaticIndex, cache: _Cache) -> None:
        self.index = index
        self.cache = cache

    def run(self, ref: SymbolRef) -> Copies:
        end = self._follow(ref)
        if isinstance(end, str):
            raise CopiesUnknown(f"cannot search the copies of {ref}: {end}")
        if self._inherited(ref):
            # Patching ref sets an attribute on its own class; the base class
            # keeps its function, and so does every other name bound to it
            # (another class's alias, FX's saved Module.__call__): none of
            # them is a copy of ref.
            return Copies((), ())
        original = end.node
        holders = {ref}
        origin = self._origin_site(ref, end)
        if origin is not None:
            holders.add(origin)
        top = ref.module.partition(".")[0]
        modules = self._package(top)
        stars = self._stars(top)
        checked = set(holders)
        pending = set(holders)
        searched: set[str] = set()
        undecided: set[StarImport] = set()
        # A copy of a copy is a copy: each round looks for bindings of the
        # names and modules the previous round found.
        while pending:
            names = {holder.qualname.rpartition(".")[2] for holder in pending} - searched
            searched |= names
            candidates = self._by_name(modules, names)
            for holder in sorted(pending, key=str):
                # Only module globals travel through `import *`.
                if "." not in holder.qualname:
                    candidates += self._by_star(holder, stars.get(holder.module, []), undecided)
            pending = set()
            for site in candidates:
                if site in checked:
                    continue
                checked.add(site)
                ends = [self._follow(site), *self._alternatives(site)]
                if any(not isinstance(end, str) and end.node is original for end in ends):
                    holders.add(site)
                    pending.add(site)
        holders.discard(ref)
        return Copies(
            tuple(sorted(holders, key=str)),
            tuple(sorted(undecided)),
            tuple(sorted(self._conditional(holders, ref), key=str)),
        )

    def _conditional(self, holders: set[SymbolRef], ref: SymbolRef) -> set[SymbolRef]:
        # A site whose last binding of its name sits under if/try/except, or
        # that takes the object from such a site (a copy of a conditional
        # copy), holds the original only in some environments.
        conditional = {site for site in holders if _binds_conditionally(self.index, site)}
        changed = True
        while changed:
            changed = False
            for site in holders - conditional:
                source = self._first_hop(site)
                if source in conditional:
                    conditional.add(site)
                    changed = True
        conditional.discard(ref)
        return conditional

    def _first_hop(self, site: SymbolRef) -> SymbolRef | None:
        # The binding the site's own statement reads: `from m import f` -> m:f,
        # `g = m.f` -> m:f (a module's name resolved), `g = f` -> its module's f.
        scope = _scope(self.index, site)
        if scope is None:
            return None
        module, is_package, body, name = scope
        binding = _find_binding(body, name)
        if isinstance(binding, ast.ImportFrom):
            alias = next(a for a in binding.names if (a.asname or a.name) == name)
            return SymbolRef(_absolute(module, is_package, binding), alias.name)
        value = _value(binding) if binding is not None else None
        if value is None:
            return None
        head, _, attribute = value.rpartition(".")
        if not head:
            return SymbolRef(site.module, value)
        # The head names a module: through an import (`import a.b as c`), or
        # a package's submodule reached by attributes (`import pkg.a`, then
        # `pkg.a.f`), which the lookup answers with the module itself.
        found = self.index.lookup(SymbolRef(site.module, head))
        if isinstance(found, Found) and isinstance(
            found.node, (ast.Import, ast.ImportFrom, ast.Module)
        ):
            return SymbolRef(found.defined_on, attribute)
        return None

    def _by_name(self, modules: dict[str, _Module], names: set[str]) -> list[SymbolRef]:
        found: list[SymbolRef] = []
        if not names:
            return found
        for module, source in modules.items():
            hits = {
                name
                for name in names
                if name in source.text and self._pattern(name).search(source.text)
            }
            if hits:
                found += [
                    SymbolRef(module, binding.site)
                    for binding in self._bindings(module)
                    if binding.takes in hits
                ]
        return found

    def _by_star(
        self, holder: SymbolRef, importers: list[str], undecided: set[StarImport]
    ) -> list[SymbolRef]:
        found: list[SymbolRef] = []
        for importer in importers:
            if not self._star_imports(importer, holder.module):
                continue
            exported = self._exported(holder.module, holder.qualname)
            if exported is None:
                undecided.add(StarImport(importer, holder.module, holder.qualname))
            elif exported:
                found.append(SymbolRef(importer, holder.qualname))
        return found

    def _alternatives(self, site: SymbolRef) -> list[_End | str]:
        # A module global bound more than once under if/try (`try: from a
        # import f` / `except ImportError: from b import f`): the last binding
        # is what _follow reads, each earlier one may be what runs.
        if "." in site.qualname:
            return []
        loaded = self.index.module(site.module)
        if loaded is None:
            return []
        name = site.qualname
        events = _name_events(loaded[0].body, name)
        # An earlier binding may be the one that stands only if everything
        # after it that binds or deletes the name may not run.
        return [
            self._hops(self.index.follow_binding(site.module, stmt, name), name)
            for at, (stmt, _) in enumerate(events)
            if at < len(events) - 1
            and not isinstance(stmt, ast.Delete)
            and all(conditional for _, conditional in events[at + 1 :])
        ]

    def _follow(self, ref: SymbolRef) -> _End | str:
        return self._hops(self.index.lookup(ref), ref.qualname.rpartition(".")[2])

    def _hops(self, result: Lookup, name: str) -> _End | str:
        # StaticIndex.lookup follows imports and base classes; assignments of
        # a dotted name (`g = m.f`) and imports in a class body are followed here.
        for _ in range(_MAX_HOPS):
            if not isinstance(result, Found):
                return result.message
            node = result.node
            module, _, owner = result.defined_on.partition(":")
            if isinstance(node, ast.ImportFrom) and owner:
                alias = next(a for a in node.names if (a.asname or a.name) == name)
                loaded = self.index.module(module)
                source = _absolute(module, bool(loaded and loaded[1]), node)
                result = self.index.lookup(SymbolRef(source, alias.name))
                name = alias.name
                continue
            value = _value(node)
            if value is None:
                return _End(node, module, name)
            result = self._in_scope(module, owner, value, node)
            name = value.rpartition(".")[2]
        return f"{name}: more than {_MAX_HOPS} imports and assignments to follow"

    def _in_scope(self, module: str, owner: str, value: str, node: ast.AST) -> Lookup:
        # In a class body a name is first the class's own attribute (`g = f`
        # after `def f`), then the module's.
        if owner:
            cls = self.index.lookup(SymbolRef(module, owner))
            if isinstance(cls, Found) and isinstance(cls.node, ast.ClassDef):
                own = _find_binding(cls.node.body, value.partition(".")[0])
                if own is not None and own is not node:
                    return self.index.lookup(SymbolRef(module, f"{owner}.{value}"))
        return self.index.lookup(SymbolRef(module, value))

    def _inherited(self, ref: SymbolRef) -> bool:
        parent, _, name = ref.qualname.rpartition(".")
        if not parent:
            return False
        cls = self.index.lookup(SymbolRef(ref.module, parent))
        return (
            isinstance(cls, Found)
            and isinstance(cls.node, ast.ClassDef)
            and _find_binding(cls.node.body, name) is None
        )

    def _origin_site(self, ref: SymbolRef, end: _End) -> SymbolRef | None:
        # Where the original is defined, when that is another binding than ref.
        parent, _, name = ref.qualname.rpartition(".")
        if parent:
            cls = self.index.lookup(SymbolRef(ref.module, parent))
            own = (
                _find_binding(cls.node.body, name)
                if isinstance(cls, Found) and isinstance(cls.node, ast.ClassDef)
                else None
            )
            # Inherited (no binding of its own): patching ref shadows the base's
            # attribute, and the base's stays as it is. Or the class is
            # re-exported, and its attribute is the very one ref names.
            if own is None or own is end.node:
                return None
        loaded = self.index.module(end.module)
        # A compiled module (read from its stub) is never changed: its
        # binding is not a copy that apply could rebind.
        if loaded is None or self.index.is_stub(end.module):
            return None
        qualname = _qualname_of(loaded[0], end.node, end.name)
        return None if qualname is None else SymbolRef(end.module, qualname)

    def _package(self, top: str) -> dict[str, _Module]:
        if top in self.cache.packages:
            return self.cache.packages[top]
        modules: dict[str, _Module] = {}
        for relpath in self.index.tree.python_files(top):
            stem = relpath.removesuffix(".py")
            name = stem.removesuffix("/__init__").replace("/", ".")
            # Sorted, `m.py` comes before `m/__init__.py` and wins, as on import.
            if name in modules or not all(p.isidentifier() for p in name.split(".")):
                continue
            try:
                text = self.index.tree.read(relpath)
            except UnreadableFile:
                # Its lookups say why; a copy in it cannot be named.
                continue
            if text is not None:
                modules[name] = _Module(text, stem.endswith("/__init__"))
        self.cache.packages[top] = modules
        return modules

    def _stars(self, top: str) -> dict[str, list[str]]:
        if top not in self.cache.stars:
            stars: dict[str, list[str]] = {}
            for name, module in self._package(top).items():
                for match in _STAR.finditer(module.text):
                    statement = ast.ImportFrom(
                        module=match[2] or None, names=[], level=len(match[1])
                    )
                    stars.setdefault(_absolute(name, module.is_package, statement), []).append(name)
            self.cache.stars[top] = stars
        return self.cache.stars[top]

    def _pattern(self, name: str) -> re.Pattern[str]:
        # Parsing is what costs: a file is parsed only if it imports the name
        # or assigns a dotted value ending in it, not when it merely calls it.
        if name not in self.cache.patterns:
            n = re.escape(name)
            self.cache.patterns[name] = re.compile(
                rf"\bimport\b(?:[^\n]|\\\n)*?\b{n}\b"
                rf"|\bimport[ \t]*\([^)]*?\b{n}\b"
                rf"|=[ \t]*(?:[A-Za-z_][\w.]*\.)?{n}[ \t]*(?:#[^\n]*)?$",
                re.MULTILINE,
            )
        return self.cache.patterns[name]

    def _bindings(self, module: str) -> list[_Binding]:
        if module not in self.cache.bindings:
            loaded = self.index.module(module)
            self.cache.bindings[module] = [] if loaded is None else _bindings(loaded[0])
        return self.cache.bindings[module]

    def _star_imports(self, importer: str, source: str) -> bool:
        loaded = self.index.module(importer)
        if loaded is None:
            return False
        tree, is_package = loaded
        return any(
            isinstance(stmt, ast.ImportFrom)
            and any(alias.name == "*" for alias in stmt.names)
            and _absolute(importer, is_package, stmt) == source
            for stmt in _runtime_statements(tree.body)
        )

    def _exported(self, module: str, name: str) -> bool | None:
        # Whether `from module import *` binds name; None if __all__ is computed.
        loaded = self.index.module(module)
        if loaded is None:
            return None
        exported: set[str] | None = None
        for stmt in _runtime_statements(loaded[0].body):
            if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and _binds_all(stmt):
                exported = _strings(stmt.value)
                if exported is None:
                    return None
            elif isinstance(stmt, ast.AugAssign) and _is_all(stmt.target):
                more = _strings(stmt.value)
                if exported is None or more is None or not isinstance(stmt.op, ast.Add):
                    return None
                exported |= more
            elif isinstance(stmt, ast.Expr) and _calls_on_all(stmt.value):
                more = _added(stmt.value)
                if exported is None or more is None:
                    return None
                exported |= more
        if exported is None:
            return not name.startswith("_")
        return name in exported


def _value(node: ast.AST) -> str | None:
    if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
        return dotted_name(node.value)
    return None


def _runtime_statements(body: list[ast.stmt]) -> list[ast.stmt]:
    # static._statements, less what only a type checker reads: a copy made
    # under `if TYPE_CHECKING:` does not exist at run time.
    out: list[ast.stmt] = []
    pending: list[tuple[list[ast.stmt], int]] = [(body, 0)]
    while pending:
        block, at = pending.pop()
        if at >= len(block):
            continue
        stmt = block[at]
        out.append(stmt)
        nested: list[list[ast.stmt]] = []
        if isinstance(stmt, ast.If):
            checking = dotted_name(stmt.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
            nested = [stmt.orelse] if checking else [stmt.body, stmt.orelse]
        elif isinstance(stmt, ast.Try):
            handlers = [handler.body for handler in stmt.handlers]
            nested = [stmt.body, stmt.orelse, *handlers, stmt.finalbody]
        pending += [(block, at + 1), *((inner, 0) for inner in reversed(nested))]
    return out


def _scope(index: StaticIndex, site: SymbolRef) -> tuple[str, bool, list[ast.stmt], str] | None:
    # The module and the body (the module's, or a class's) that bind the
    # site's last name.
    loaded = index.module(site.module)
    if loaded is None:
        return None
    tree, is_package = loaded
    *classes, name = site.qualname.split(".")
    body: list[ast.stmt] = tree.body
    for cls in classes:
        found = _find_binding(body, cls)
        if not isinstance(found, ast.ClassDef):
            return None
        body = found.body
    return site.module, is_package, body, name


def _name_events(body: list[ast.stmt], name: str) -> list[tuple[ast.stmt, bool]]:
    # Every statement that binds or deletes ``name`` when the module runs, in
    # source order, and whether it sits under if/try (may not run).
    out: list[tuple[ast.stmt, bool]] = []
    pending: list[tuple[list[ast.stmt], int, bool]] = [(body, 0, False)]
    while pending:
        block, at, conditional = pending.pop()
        if at >= len(block):
            continue
        stmt = block[at]
        deletes = isinstance(stmt, ast.Delete) and any(
            isinstance(t, ast.Name) and t.id == name for t in stmt.targets
        )
        if deletes or _find_binding([stmt], name) is stmt:
            out.append((stmt, conditional))
        nested: list[tuple[list[ast.stmt], bool]] = []
        if isinstance(stmt, ast.If):
            checking = dotted_name(stmt.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
            nested = [(stmt.orelse, True)] if checking else [(stmt.body, True), (stmt.orelse, True)]
        elif isinstance(stmt, ast.Try):
            nested = [(stmt.body, True), *((h.body, True) for h in stmt.handlers)]
            nested += [(stmt.orelse, True), (stmt.finalbody, conditional)]
        pending.append((block, at + 1, conditional))
        pending += [(inner, 0, cond) for inner, cond in reversed(nested)]
    return out


def _binds_conditionally(index: StaticIndex, site: SymbolRef) -> bool:
    # The last statement that binds the name (as static._find_binding takes
    # it) runs only in some environments: it sits under an `if` that is not
    # TYPE_CHECKING, or in a `try`, `except` or `else` block.
    scope = _scope(index, site)
    if scope is None:
        return False
    _, _, body, name = scope
    binding = _find_binding(body, name)
    if binding is None:
        return False
    # A `del` of the name that may run (under if/try) makes it conditional
    # too. A binding the events leave out sits under TYPE_CHECKING, where it
    # never runs: conditional as well.
    events = _name_events(body, name)
    under = {id(stmt): conditional for stmt, conditional in events}
    return under.get(id(binding), True) or any(
        conditional and isinstance(stmt, ast.Delete) for stmt, conditional in events
    )


def _bindings(tree: ast.Module) -> list[_Binding]:
    out: list[_Binding] = []
    scopes: list[tuple[str, list[ast.stmt]]] = [("", tree.body)]
    while scopes:
        prefix, body = scopes.pop()
        for stmt in _runtime_statements(body):
            if isinstance(stmt, ast.ClassDef):
                scopes.append((f"{prefix}{stmt.name}.", stmt.body))
            elif isinstance(stmt, ast.ImportFrom):
                out += [
                    _Binding(prefix + (alias.asname or alias.name), alias.name)
                    for alias in stmt.names
                    if alias.name != "*"
                ]
            elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                value = _value(stmt)
                if value is None:
                    continue
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                out += [
                    _Binding(prefix + target.id, value.rpartition(".")[2])
                    for target in targets
                    if isinstance(target, ast.Name)
                ]
    return out


def _qualname_of(tree: ast.Module, node: ast.AST, name: str) -> str | None:
    scopes: list[tuple[str, list[ast.stmt]]] = [("", tree.body)]
    while scopes:
        prefix, body = scopes.pop()
        for stmt in _statements(body):
            if stmt is node:
                return prefix + name
            if isinstance(stmt, ast.ClassDef):
                scopes.append((f"{prefix}{stmt.name}.", stmt.body))
    return None


def _is_all(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id == "__all__"


def _binds_all(stmt: ast.Assign | ast.AnnAssign) -> bool:
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
    return any(_is_all(target) for target in targets)


def _calls_on_all(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and _is_all(node.func.value)
    )


def _added(call: ast.expr) -> set[str] | None:
    # __all__.extend([...]) and __all__.append("x") with literals; any other
    # change (remove, a computed list) leaves __all__ unknown.
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)):
        return None
    if len(call.args) != 1 or call.keywords:
        return None
    if call.func.attr == "extend":
        return _strings(call.args[0])
    if call.func.attr == "append":
        return _strings(ast.List(elts=call.args))
    return None


def _strings(node: ast.expr | None) -> set[str] | None:
    if not isinstance(node, (ast.List, ast.Tuple)):
        return None
    values = [item.value for item in node.elts if isinstance(item, ast.Constant)]
    if len(values) != len(node.elts) or not all(isinstance(v, str) for v in values):
        return None
    return {str(v) for v in values}
