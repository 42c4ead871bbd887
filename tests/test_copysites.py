"""Copy sites found statically: every shape of binding that torch's own code uses
to copy a function, read from a synthetic package in a temp dir (and from the
real torch 2.11), never imported."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import PatchSet
from test_static_limits import tree_of

from backport_tool import SymbolRef
from backport_tool.copysites import (
    Copies,
    CopiesUnknown,
    StarImport,
    find_copies,
    installed_tree,
)
from backport_tool.static import DirTree, StaticIndex

CORE = """\
def target(x):
    return x


def other(x):
    return x


class Widget:
    def compute(self):
        return 1

    # The same function under a second name of the class.
    again = compute


class Sub(Widget):
    pass
"""

FILES = {
    "pkg/__init__.py": "from .core import target\n",
    "pkg/core.py": CORE,
    "pkg/absolute.py": "from pkg.core import target\n",
    "pkg/renamed.py": "from pkg.core import other, target as renamed\n",
    "pkg/aliased.py": "import pkg.core as core_mod\n\ng = core_mod.target\nh = core_mod.other\n",
    "pkg/transitive.py": "from pkg.renamed import renamed as again\n",
    "pkg/sub/__init__.py": "",
    "pkg/sub/deep.py": "from ..absolute import target\n",
    "pkg/classbody.py": (
        "from .core import Widget, target\n"
        "\n"
        "class Holder:\n"
        "    run = target\n"
        "    compute = Widget.compute\n"
        "\n"
        "    class Inner:\n"
        "        fn = target\n"
    ),
    # No __all__: every public name travels, the copy among them.
    "pkg/starred.py": "from .absolute import *\n",
    # __all__ leaves the copy out.
    "pkg/listed.py": "from .core import target\n\n__all__ = ['something_else']\n",
    "pkg/star_listed.py": "from .listed import *\n",
    # __all__ is computed: cannot be read.
    "pkg/computed.py": "from .core import target\n\n__all__ = [n for n in ('target',)]\n",
    "pkg/star_computed.py": "from .computed import *\n",
    "pkg/guarded.py": (
        "import sys\n"
        "try:\n"
        "    from .core import target\n"
        "except ImportError:\n"
        "    pass\n"
        "if sys.version_info >= (3, 8):\n"
        "    from .core import target as also\n"
    ),
    "pkg/typing_only.py": (
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from .core import target\n"
    ),
    "pkg/in_function.py": (
        "def use():\n    from .core import target\n    copy = target\n    return copy\n"
    ),
    "pkg/same_name.py": "def target(x):\n    return x\n",
    "pkg/from_same.py": "from .same_name import target\n\nalias = target\n",
    # The last binding wins, as at run time.
    "pkg/rebound.py": "from .core import target\n\n\ndef target(x):\n    return -x\n",
    # Deleted once imported: the module ends without it.
    "pkg/deleted.py": "from .core import target\n\nuse = 1\ndel target\n",
    # Deleted on some interpreters only: the copy stands (conditionally).
    "pkg/maybe_deleted.py": (
        "import sys\nfrom .core import target\n\nif sys.version_info < (3, 0):\n    del target\n"
    ),
    # An import fallback: the copy only where the first import fails.
    "pkg/fallback.py": (
        "try:\n    from .fast import target\nexcept ImportError:\n    from .core import target\n"
    ),
    "pkg/via_fallback.py": "from .fallback import target as chained\n",
    "pkg/dotted_fallback.py": "import pkg.fallback\n\ndotted = pkg.fallback.target\n",
    # The original is the first choice; the fallback's binding is the last.
    "pkg/first_choice.py": (
        "try:\n    from .core import target\nexcept ImportError:\n"
        "    from .other_impl import target\n"
    ),
    "pkg/other_impl.py": "def target(x):\n    return -x\n",
    # A package whose attribute shadows its submodule of the same name:
    # `from pkg.hop import target` takes the attribute, as Python does.
    "pkg/hop/__init__.py": "from .target import target\n",
    "pkg/hop/target.py": "from pkg.core import target\n",
    "pkg/hop_user.py": "from pkg.hop import target as via_hop\n",
}

TARGET_COPIES = (
    "pkg.absolute:target",
    "pkg.aliased:g",
    "pkg.classbody:Holder.Inner.fn",
    "pkg.classbody:Holder.run",
    "pkg.classbody:target",
    "pkg.computed:target",
    "pkg.dotted_fallback:dotted",
    "pkg.fallback:target",
    "pkg.first_choice:target",
    "pkg.guarded:also",
    "pkg.guarded:target",
    "pkg.hop.target:target",
    "pkg.hop:target",
    "pkg.hop_user:via_hop",
    "pkg.listed:target",
    "pkg.maybe_deleted:target",
    "pkg.renamed:renamed",
    "pkg.starred:target",
    "pkg.sub.deep:target",
    "pkg.transitive:again",
    "pkg.via_fallback:chained",
    "pkg:target",
)
# Bound under if/try/except, or taken from such a binding: copies in some
# environments only.
CONDITIONAL = (
    "pkg.dotted_fallback:dotted",
    "pkg.fallback:target",
    "pkg.first_choice:target",
    "pkg.guarded:also",
    "pkg.guarded:target",
    "pkg.maybe_deleted:target",
    "pkg.via_fallback:chained",
)


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def refs(*symbols: str) -> tuple[SymbolRef, ...]:
    return tuple(SymbolRef.parse(s) for s in symbols)


@pytest.fixture
def index(tmp_path: Path) -> StaticIndex:
    return StaticIndex(DirTree(write_tree(tmp_path, FILES)))


def test_every_shape_of_copy_and_nothing_else(index: StaticIndex) -> None:
    found = find_copies(index, SymbolRef.parse("pkg.core:target"))
    assert found == Copies(
        refs(*TARGET_COPIES),
        (StarImport("pkg.star_computed", "pkg.computed", "target"),),
        refs(*CONDITIONAL),
    )


def test_a_re_exported_target_has_its_definition_as_a_copy(index: StaticIndex) -> None:
    sites, _, _ = find_copies(index, SymbolRef.parse("pkg:target"))
    expected = sorted([*(s for s in TARGET_COPIES if s != "pkg:target"), "pkg.core:target"])
    assert sites == refs(*expected)


def test_copies_of_a_method_are_class_attributes_bound_to_it(index: StaticIndex) -> None:
    assert find_copies(index, SymbolRef.parse("pkg.core:Widget.compute")) == Copies(
        refs("pkg.classbody:Holder.compute", "pkg.core:Widget.again"), ()
    )


def test_an_inherited_target_has_no_copies(index: StaticIndex) -> None:
    # Sub.compute is Widget's function, and Widget.again holds it too: but a
    # patch of Sub sets Sub's own attribute, and Widget keeps both of its names.
    assert find_copies(index, SymbolRef.parse("pkg.core:Sub.compute")) == Copies((), ())


def test_a_function_with_the_same_name_has_its_own_copies(index: StaticIndex) -> None:
    assert find_copies(index, SymbolRef.parse("pkg.same_name:target")) == Copies(
        refs("pkg.from_same:alias", "pkg.from_same:target"), ()
    )
    assert find_copies(index, SymbolRef.parse("pkg.core:other")) == Copies(
        refs("pkg.aliased:h", "pkg.renamed:other"), ()
    )


def test_an_original_not_in_the_sources_is_unknown(index: StaticIndex) -> None:
    with pytest.raises(CopiesUnknown) as caught:
        find_copies(index, SymbolRef.parse("pkg.core:gone"))
    assert str(caught.value) == (
        "cannot search the copies of pkg.core:gone: pkg.core has no attribute 'gone'"
    )


class CountingTree(DirTree):
    """A real directory tree that counts the reads of each file."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.reads: dict[str, int] = {}

    def read(self, relpath: str) -> str | None:
        self.reads[relpath] = self.reads.get(relpath, 0) + 1
        return super().read(relpath)


def test_each_file_is_read_once_and_parsed_only_if_it_may_bind_a_copy(tmp_path: Path) -> None:
    files = {**FILES, "pkg/caller.py": "from pkg import core\n\nresult = core.target(1)\n"}
    tree = CountingTree(write_tree(tmp_path, files))
    index = StaticIndex(tree)
    for symbol in ("pkg.core:target", "pkg.core:Widget.compute", "pkg.core:target"):
        find_copies(index, SymbolRef.parse(symbol))
    # Read once to be searched, and once more by the index if it is parsed.
    assert set(tree.reads.values()) <= {1, 2}
    assert tree.reads["pkg/caller.py"] == 1
    assert index.module("pkg.in_function") is not None  # parsed: it imports the name
    assert tree.reads["pkg/in_function.py"] == 2


@pytest.mark.parametrize("kind", ["wheel", "git"])
def test_wheels_and_git_revisions_are_searched_alike(tmp_path: Path, kind: str) -> None:
    files = {**FILES, "pkg-1.5.0.dist-info/METADATA": "Name: pkg\nVersion: 1.5.0\n"}
    index = StaticIndex(tree_of(kind, tmp_path / "tree", files))
    assert find_copies(index, SymbolRef.parse("pkg.core:target")).sites == refs(*TARGET_COPIES)


def test_the_installed_tree_is_found_without_importing(patchset: PatchSet) -> None:
    tree = installed_tree(f"{patchset.module}")
    assert tree.label == str(patchset.site)
    assert patchset.module not in sys.modules
    with pytest.raises(CopiesUnknown) as caught:
        installed_tree("no_such_package_anywhere.sub")
    assert str(caught.value) == (
        "no_such_package_anywhere is not installed; its copies cannot be searched"
    )


# Found by find_copies on torch 2.11.0, then checked one by one in a fresh
# interpreter (test below): each `is` torch._inductor.codecache.code_hash.
CODE_HASH_COPIES = (
    "torch._inductor.async_compile:code_hash",
    "torch._inductor.codegen.cutedsl.cutedsl_scheduling:code_hash",
    "torch._inductor.codegen.cutlass.scheduling:code_hash",
    "torch._inductor.codegen.multi_kernel:code_hash",
    "torch._inductor.codegen.nv_universal_gemm.nv_universal_gemm_scheduling:code_hash",
    "torch._inductor.codegen.rocm.rocm_cpp_scheduling:code_hash",
    "torch._inductor.codegen.simd:code_hash",
    "torch._inductor.codegen.triton:code_hash",
    "torch._inductor.compile_fx:code_hash",
    "torch._inductor.select_algorithm:code_hash",
)


@pytest.mark.torch211
def test_the_copies_of_code_hash_in_torch_211() -> None:
    index = StaticIndex(installed_tree("torch"))
    found = find_copies(index, SymbolRef.parse("torch._inductor.codecache:code_hash"))
    assert found == Copies(refs(*CODE_HASH_COPIES), ())
    method = SymbolRef.parse("torch._inductor.ir:StorageBox.should_realize_on_reuse")
    assert find_copies(index, method) == Copies((), ())
    # Statically: in a fresh interpreter (other tests import torch._inductor
    # into this one), finding the copies imports nothing of torch.
    program = (
        "import sys\n"
        "from backport_tool.copysites import find_copies, installed_tree\n"
        "from backport_tool.manifest import SymbolRef\n"
        "from backport_tool.static import StaticIndex\n"
        "index = StaticIndex(installed_tree('torch'))\n"
        "find_copies(index, SymbolRef.parse('torch._inductor.codecache:code_hash'))\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=False
    )
    assert (proc.returncode, proc.stdout.strip()) == (0, "[]"), proc.stderr


@pytest.mark.torch211
def test_each_copy_of_code_hash_is_the_original_at_run_time() -> None:
    program = textwrap.dedent(
        """
        import importlib, sys
        from torch._inductor.codecache import code_hash
        for site in sys.argv[1:]:
            module, _, name = site.partition(":")
            assert getattr(importlib.import_module(module), name) is code_hash, site
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", program, *CODE_HASH_COPIES],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
