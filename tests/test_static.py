from __future__ import annotations

import zipfile
from pathlib import Path

import git
import pytest
from packaging.version import Version

from backport_tool import SymbolRef, UsageError
from backport_tool.static import DirTree, Found, Missing, StaticIndex, Unknown, open_tree

FILES = {
    "pkg/__init__.py": "from ._impl import *\nfrom .core import Widget as PublicWidget\n",
    "pkg/_impl.py": "def helper():\n    pass\n",
    "pkg/base.py": "class Base:\n    def inherited(self, x: int) -> int:\n        return x\n",
    "pkg/core.py": (
        "from __future__ import annotations\n"
        "from typing import Generic, TypeVar\n"
        "from .base import Base\n"
        "from . import base as base_mod\n"
        "import pkg._C as C\n"
        "T = TypeVar('T')\n"
        "THRESHOLD = 4\n"
        "class Widget(Base, Generic[T]):\n"
        "    size: int\n"
        "    def compute(self, users: int) -> bool:\n"
        "        return users > THRESHOLD\n"
        "class FromCompiled(C.Native):\n"
        "    pass\n"
        "class Plain(base_mod.Base):\n"
        "    pass\n"
        "try:\n"
        "    from .optional import fast\n"
        "except ImportError:\n"
        "    def fast():\n"
        "        pass\n"
    ),
    "pkg/_C/__init__.pyi": "class Native:\n    itemsize: int\n",
    "pkg/version.py": "__version__ = '1.2.0+cpu'\n",
}


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture
def index(tmp_path: Path) -> StaticIndex:
    return StaticIndex(DirTree(write_tree(tmp_path, FILES)))


@pytest.mark.parametrize(
    ("symbol", "kind", "where"),
    [
        ("pkg.core:Widget.compute", Found, "pkg.core:Widget"),
        ("pkg.core:Widget.inherited", Found, "pkg.base:Base"),
        ("pkg.core:Plain.inherited", Found, "pkg.base:Base"),
        ("pkg.core:Widget.size", Found, "pkg.core:Widget"),
        ("pkg.core:THRESHOLD", Found, "pkg.core"),
        ("pkg.core:fast", Found, "pkg.core"),
        ("pkg:helper", Found, "pkg._impl"),
        ("pkg:PublicWidget.compute", Found, "pkg.core:Widget"),
        ("pkg.core:FromCompiled.itemsize", Found, "pkg._C:Native"),
        ("pkg.core:Widget.gone", Missing, None),
        ("pkg.core:Nothing", Missing, None),
        ("pkg.nomod:X", Missing, None),
        ("pkg:anything_else", Unknown, None),
    ],
)
def test_lookup(index: StaticIndex, symbol: str, kind: type, where: str | None) -> None:
    result = index.lookup(SymbolRef.parse(symbol))
    assert isinstance(result, kind), result
    if where is not None:
        assert isinstance(result, Found)
        assert result.defined_on == where


def test_missing_messages(index: StaticIndex, tmp_path: Path) -> None:
    assert index.lookup(SymbolRef.parse("pkg.core:Widget.gone")) == Missing(
        "class pkg.core:Widget has no attribute 'gone' (own or inherited)"
    )
    assert index.lookup(SymbolRef.parse("pkg.nomod:X")) == Missing(
        f"module 'pkg.nomod' not found in {tmp_path}"
    )


def test_versions_of_trees(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "tree", FILES)
    assert DirTree(root).version("pkg") == Version("1.2.0+cpu")
    (root / "version.txt").write_text("1.3.0a0\n")
    assert DirTree(root).version("pkg") == Version("1.3.0a0")
    info = root / "pkg-1.4.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pkg\nVersion: 1.4.0\n")
    assert DirTree(root).version("pkg") == Version("1.4.0")


def test_wheel_tree(tmp_path: Path) -> None:
    wheel = tmp_path / "pkg-1.5.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, text in FILES.items():
            zf.writestr(name, text)
        zf.writestr("pkg-1.5.0.dist-info/METADATA", "Name: pkg\nVersion: 1.5.0\n")
    tree = open_tree(str(wheel))
    assert tree.version("pkg") == Version("1.5.0")
    index = StaticIndex(tree)
    assert isinstance(index.lookup(SymbolRef.parse("pkg.core:Widget.inherited")), Found)


def test_git_tree_reads_a_revision_without_touching_the_work_tree(tmp_path: Path) -> None:
    repo = git.Repo.init(tmp_path / "repo")
    with repo.config_writer() as config:
        config.set_value("user", "name", "T")
        config.set_value("user", "email", "t@example.invalid")
    root = write_tree(tmp_path / "repo", {**FILES, "version.txt": "1.6.0a0\n"})
    repo.index.add([*FILES, "version.txt"])
    first = repo.index.commit("one")
    (root / "pkg/core.py").write_text("class Widget:\n    pass\n")
    repo.index.add(["pkg/core.py"])
    repo.index.commit("two")
    (root / "pkg/core.py").write_text("uncommitted = 1\n")

    old = open_tree(f"{root}@{first.hexsha[:8]}")
    assert old.version("pkg") == Version("1.6.0a0")
    assert isinstance(StaticIndex(old).lookup(SymbolRef.parse("pkg.core:Widget.compute")), Found)
    new = StaticIndex(open_tree(f"{root}@HEAD"))
    assert isinstance(new.lookup(SymbolRef.parse("pkg.core:Widget.compute")), Missing)
    assert (root / "pkg/core.py").read_text() == "uncommitted = 1\n"
    assert repo.head.commit.message == "two"


@pytest.mark.parametrize("spec", ["nowhere/at/all", "nowhere@v1"])
def test_unreadable_specs(spec: str) -> None:
    with pytest.raises(UsageError) as info:
        open_tree(spec)
    assert str(info.value) == (
        f"cannot read {spec!r}: expected a .whl file, a directory, or REPO@REV for a git revision"
    )


def test_bad_git_revision(tmp_path: Path) -> None:
    git.Repo.init(tmp_path)
    with pytest.raises(UsageError) as info:
        open_tree(f"{tmp_path}@v9")
    assert str(info.value) == f"{tmp_path} has no revision 'v9'"
