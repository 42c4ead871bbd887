"""The package's import graph, read from the source: no cycles, and the startup
path stays stdlib only."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import types
from pathlib import Path

from helpers import PatchSet

import backport_tool

PACKAGE = Path(backport_tool.__file__).resolve().parent
# What `apply()` imports with a cached plan: a server pays for these.
STARTUP = {
    "api",
    "cache",
    "cachekey",
    "config",
    "errors",
    "installed",
    "lazy",
    "manifest_file",
    "patcher",
    "plan",
    "report",
    "source",
    "references",
    "state",
    "symbols",
    "configs",
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, name: str) -> tuple[set[str], set[str]]:
    """(modules imported anywhere at run time, modules imported at module level)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    everywhere: set[str] = set()
    top: set[str] = set()

    def visit(node: ast.AST, at_top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                continue  # never runs
            found: list[str] = []
            if isinstance(child, ast.Import):
                found = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")
                    base = ".".join(
                        parts[: len(parts) - child.level + 1] + ([base] if base else [])
                    )
                found = [base] + [f"{base}.{a.name}" for a in child.names]
            everywhere.update(found)
            if at_top:
                top.update(found)
            nested = at_top and not isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
            )
            visit(child, nested)

    visit(tree, True)
    return everywhere, top


def _graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    top: dict[str, set[str]] = {}
    for name, path in modules.items():
        everywhere, at_top = _imports(path, name)
        graph[name] = {m for m in everywhere if m in modules and m != name}
        top[name] = at_top
    return graph, top


def test_the_import_graph_has_no_cycle() -> None:
    graph, _ = _graph()
    # The package's own __init__ only names its exports (imported on first use).
    graph.pop("backport_tool", None)
    for edges in graph.values():
        edges.discard("backport_tool")
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = [*path[path.index(nxt) :], nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_the_startup_modules_import_only_the_stdlib_and_each_other() -> None:
    _, top = _graph()
    ours = {"backport_tool"} | {f"backport_tool.{m}" for m in STARTUP}

    def allowed(imported: str) -> bool:
        if imported.split(".", maxsplit=1)[0] != "backport_tool":
            return imported.split(".", maxsplit=1)[0] in sys.stdlib_module_names
        # `from .x import name` records both x and x.name.
        return imported in ours or imported.rpartition(".")[0] in ours

    for module in sorted(STARTUP):
        outside = sorted(m for m in top[f"backport_tool.{module}"] if not allowed(m))
        assert outside == [], f"{module} imports {outside} at module level"


def test_no_public_name_is_shadowed_by_a_submodule() -> None:
    # Importing backport_tool.X sets the package attribute X to the module:
    # a public function named like a module of the package would turn into
    # that module once anything imported it (`from backport_tool import lock`).
    modules = {p.stem for p in PACKAGE.glob("*.py")} | {
        p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()
    }
    assert sorted(set(backport_tool.__all__) & modules) == []
    for module in sorted(modules - {"__init__", "__main__", "pytest_plugin"}):
        importlib.import_module(f"backport_tool.{module}")
    for name in backport_tool.__all__:
        assert not isinstance(getattr(backport_tool, name), types.ModuleType), name


def test_apply_cmd_loads_none_of_the_tools(patchset: PatchSet) -> None:
    # `backport-tool apply -- CMD` is how a server starts: it execs CMD after
    # loading only what apply needs, never check's walk, the static reader,
    # the matrix, git tracking or the manifest writer.
    patchset.add("fix", "Widget.compute")
    code = (
        "import os, sys\n"
        "def stop(*args):\n"
        "    print(sorted(m for m in sys.modules if m.startswith('backport_tool')))\n"
        "    sys.exit(0)\n"
        "os.execvpe = stop\n"
        "from backport_tool import cli\n"
        f"cli.main(['apply', '--manifest', {str(patchset.write())!r}, '--', 'true'])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(ast.literal_eval(done.stdout))
    tools = {
        "backport_tool.checking",
        "backport_tool.copysites",
        "backport_tool.engine",
        "backport_tool.locking",
        "backport_tool.matrix",
        "backport_tool.scaffold",
        "backport_tool.static",
        "backport_tool.tracking",
    }
    assert loaded & tools == set()
    assert "backport_tool.commands.apply" in loaded
