"""Hostile or damaged sources read statically (issue #12): oversized and lying
wheel members, nesting Python's parser gives up on, non-UTF-8 METADATA and
malformed wheel and dist-info names. Each ends in a clean result or a
UsageError, never a crash."""

from __future__ import annotations

import struct
import sys
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path

import git
import pytest
from helpers import PatchSet
from packaging.version import Version

import backport_tool
from backport_tool import SymbolRef, UsageError
from backport_tool import static as static_mod
from backport_tool.static import (
    MAX_FUNCTION_NESTING,
    DirTree,
    Found,
    SourceTree,
    StaticIndex,
    Unknown,
    UnreadableFile,
    open_tree,
)

MiB = 2**20
WHEEL = "pkg-1.5.0-py3-none-any.whl"
METADATA = "pkg-1.5.0.dist-info/METADATA"
CORE = "class Widget:\n    def compute(self, users: int) -> bool:\n        return users > 4\n"


def write_wheel(path: Path, files: dict[str, bytes | str]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def write_big_member(path: Path, name: str, size: int) -> None:
    # Written in chunks: the test itself must not hold the member in memory.
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(METADATA, "Name: pkg\nVersion: 1.5.0\n")
        with zf.open(name, "w") as member:
            chunk = b"#" * MiB
            for _ in range(size // MiB):
                member.write(chunk)


def lie_about_size(path: Path, name: str, claimed: int) -> None:
    """Rewrite the uncompressed size of ``name`` in both of its zip headers."""
    data = bytearray(path.read_bytes())
    encoded = name.encode()
    with zipfile.ZipFile(path) as zf:
        local = zf.getinfo(name).header_offset
    # Local file header: the size at offset 22, the name at 30.
    assert data[local + 30 : local + 30 + len(encoded)] == encoded
    struct.pack_into("<I", data, local + 22, claimed)
    # Central directory entry: signature PK\1\2, the size at 24, the name at 46.
    central = data.rindex(b"PK\x01\x02")
    while data[central + 46 : central + 46 + len(encoded)] != encoded:
        central = data.rindex(b"PK\x01\x02", 0, central)
    struct.pack_into("<I", data, central + 24, claimed)
    path.write_bytes(data)


def peak_bytes(work: Callable[[], object]) -> tuple[object, int]:
    tracemalloc.start()
    try:
        result = work()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# --- bounded reads ------------------------------------------------------------


def test_an_oversized_wheel_member_is_refused_unread(tmp_path: Path) -> None:
    # 100 MiB of "#" deflates to about 100 KB: the shape of the 846 MB report.
    wheel = tmp_path / WHEEL
    write_big_member(wheel, "pkg/core.py", 100 * MiB)
    assert wheel.stat().st_size < MiB
    index = StaticIndex(open_tree(str(wheel)))

    result, peak = peak_bytes(lambda: index.lookup(SymbolRef.parse("pkg.core:Widget")))

    assert result == Unknown(
        f"{WHEEL}: pkg/core.py is larger than 8 MiB, the most backport-tool reads of one file; "
        "check that the source is not damaged",
        unreadable=True,
    )
    assert peak < MiB


def test_a_wheel_member_whose_header_understates_its_size(tmp_path: Path) -> None:
    wheel = tmp_path / WHEEL
    write_big_member(wheel, "pkg/core.py", 64 * MiB)
    lie_about_size(wheel, "pkg/core.py", 1000)
    index = StaticIndex(open_tree(str(wheel)))

    result, peak = peak_bytes(lambda: index.lookup(SymbolRef.parse("pkg.core:Widget")))

    assert result == Unknown(
        f"{WHEEL}: pkg/core.py cannot be read: Bad CRC-32 for file 'pkg/core.py'",
        unreadable=True,
    )
    assert peak < MiB


def test_the_limit_holds_for_every_kind_of_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(static_mod, "MAX_FILE_BYTES", 1024)
    files = {"pkg/__init__.py": "", "pkg/core.py": "#" * 1025, "pkg/small.py": "X = 1\n"}
    root = tmp_path / "tree"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    repo = git.Repo.init(root)
    repo.index.add(list(files))
    repo.index.commit("one", author=git.Actor("T", "t@example.invalid"))
    wheel = write_wheel(tmp_path / WHEEL, dict(files))

    for tree in (open_tree(str(wheel)), DirTree(root), open_tree(f"{root}@HEAD")):
        index = StaticIndex(tree)
        assert index.lookup(SymbolRef.parse("pkg.core:X")) == Unknown(
            f"{tree.label}: pkg/core.py is larger than 1024 bytes, the most backport-tool "
            "reads of one file; check that the source is not damaged",
            unreadable=True,
        )
        assert isinstance(index.lookup(SymbolRef.parse("pkg.small:X")), Found)
        # Reached through its package, the module is just as unknown.
        assert isinstance(index.lookup(SymbolRef.parse("pkg:core.X")), Unknown)


def test_an_oversized_metadata_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(static_mod, "MAX_FILE_BYTES", 1024)
    wheel = write_wheel(tmp_path / WHEEL, {METADATA: "Version: 1.5.0\n" + "#" * 2000})
    with pytest.raises(UnreadableFile) as info:
        open_tree(str(wheel)).version("pkg")
    assert isinstance(info.value, UsageError)
    assert str(info.value) == (
        f"{WHEEL}: {METADATA} is larger than 1024 bytes, the most backport-tool reads of one "
        "file; check that the source is not damaged"
    )


# --- nesting Python's parser gives up on ----------------------------------------

DEEP = 100_000
DEEP_SOURCES = [
    pytest.param("x = " + "(" * DEEP + ")" * DEEP, "too many nested parentheses (line 1)", id="("),
    pytest.param("x = " + "[" * DEEP + "]" * DEEP, "too many nested parentheses (line 1)", id="["),
    pytest.param("x = " + "-" * DEEP + "1", "nesting too deep or too large", id="unary"),
    pytest.param(
        "x = " + "a." * DEEP + "b",
        "nesting too deep",
        id="attribute",
        # 3.10 builds the AST without a depth check, and parses this.
        marks=pytest.mark.skipif(sys.version_info < (3, 11), reason="parses on 3.10"),
    ),
    pytest.param("x = 1\0\n", "source code string cannot contain null bytes", id="null"),
]


def tree_of(kind: str, root: Path, files: dict[str, str]) -> SourceTree:
    if kind == "wheel":
        return open_tree(str(write_wheel(root.with_name(WHEEL), dict(files))))
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    if kind == "dir":
        return DirTree(root)
    repo = git.Repo.init(root)
    repo.index.add(list(files))
    repo.index.commit("one", author=git.Actor("T", "t@example.invalid"))
    return open_tree(f"{root}@HEAD")


@pytest.mark.parametrize("kind", ["wheel", "dir", "git"])
@pytest.mark.parametrize(("source", "reason"), DEEP_SOURCES)
def test_a_module_the_parser_gives_up_on_is_unknown(
    tmp_path: Path, kind: str, source: str, reason: str
) -> None:
    if reason.startswith("source code") and sys.version_info >= (3, 12):
        reason = "source code string cannot contain null bytes (line 1)"
    tree = tree_of(kind, tmp_path / "tree", {"pkg/__init__.py": "", "pkg/core.py": source})
    index = StaticIndex(tree)
    newer = f"Python {sys.version_info.major}.{sys.version_info.minor}"
    expected = Unknown(
        f"{tree.label}: pkg/core.py cannot be parsed: {reason} (newer syntax than {newer} "
        "parses needs check --source run by a newer Python)",
        unreadable=True,
    )
    assert index.lookup(SymbolRef.parse("pkg.core:Widget.compute")) == expected
    assert index.lookup(SymbolRef.parse("pkg:core.Widget")) == expected
    assert index.module("pkg.core") is None


def test_long_chains_that_parse_are_read_without_recursion(tmp_path: Path) -> None:
    # Both parse on every supported Python (under 3.11's depth check of ~3000):
    # an elif per branch nests one If deeper, a dotted base one Attribute.
    source = (
        "if a:\n    pass\n"
        + "elif a:\n    pass\n" * 2500
        + "else:\n    def f():\n        pass\n"
        + "class W(" + "a." * 2500 + "B):\n    pass\n"
    )  # fmt: skip
    index = StaticIndex(tree_of("dir", tmp_path, {"pkg/__init__.py": "", "pkg/core.py": source}))
    assert isinstance(index.lookup(SymbolRef.parse("pkg.core:f")), Found)
    assert index.lookup(SymbolRef.parse("pkg.core:W.x")) == Unknown(
        f"pkg.core:W has no 'x' of its own; base class {'a.' * 2500}B of pkg.core "
        "is not readable from source"
    )


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("return " + "-" * 300 + "users", id="expression"),
        pytest.param(
            "if users:\n            pass\n" + "        elif users:\n            pass\n" * 200,
            id="elif",
        ),
    ],
)
def test_a_function_too_deep_to_fingerprint_is_unknown(tmp_path: Path, body: str) -> None:
    source = f"class Widget:\n    def compute(self, users):\n        {body}\n"
    index = StaticIndex(tree_of("dir", tmp_path, {"pkg/__init__.py": "", "pkg/core.py": source}))
    assert index.lookup(SymbolRef.parse("pkg.core:Widget.compute")) == Unknown(
        f"{tmp_path}: pkg/core.py: compute nests more than {MAX_FUNCTION_NESTING} levels deep, "
        "too deep to fingerprint"
    )


@pytest.mark.parametrize(
    "module",
    [
        pytest.param("x = " + "-" * DEEP + "1", id="module"),
        pytest.param(
            "class Widget:\n    def compute(self, x: int) -> int:\n        return "
            + "-" * 300
            + "x\n",
            id="function",
        ),
    ],
)
def test_check_source_ends_in_a_report(patchset: PatchSet, tmp_path: Path, module: str) -> None:
    patchset.add("fix", "Widget.compute")
    manifest = patchset.write()
    wheel = write_wheel(
        tmp_path / f"{patchset.dist}-1.5.0-py3-none-any.whl",
        {
            f"{patchset.module}.py": module,
            f"{patchset.dist}-1.5.0.dist-info/METADATA": "Version: 1.5.0\n",
        },
    )
    proc = patchset.cli("check", "--manifest", str(manifest), "--source", str(wheel))
    # The lookup is Unknown (asserted above), and the check ends in a report:
    # failed for a module that cannot be parsed (nothing of it was verified).
    assert proc.stderr == ""
    assert proc.returncode == (1 if module.startswith("x = ") else 0)
    assert proc.stdout.splitlines()[-1].startswith(f"{patchset.dist} 1.5.0 ({wheel.name}): ")


def test_the_lock_command_check_source_gives_reads_the_wheel_again(
    patchset: PatchSet, tmp_path: Path
) -> None:
    # Messages name a wheel by its file name; the command to run needs the
    # path it was given by.
    entry = patchset.add("fix", "free_function")
    entry["targets"][0]["copies"] = [f"{patchset.module}:gone"]
    manifest = patchset.write()
    wheel = write_wheel(
        tmp_path / f"{patchset.dist}-1.5.0-py3-none-any.whl",
        {
            f"{patchset.module}.py": "def free_function(a, b=2):\n    return a + b\n",
            f"{patchset.dist}-1.5.0.dist-info/METADATA": "Version: 1.5.0\n",
        },
    )
    reason = backport_tool.check(manifest, source=str(wheel)).by_id("fix").reason
    assert (
        f"is not bound to the original in {wheel.name}; run `backport-tool lock --source {wheel}`"
        in reason
    )


# --- METADATA -------------------------------------------------------------------

LATIN1_METADATA = b"Metadata-Version: 2.1\nName: pkg\nAuthor: Jos\xe9\nVersion: 1.4.0\n"


def dir_with_metadata(root: Path, data: bytes, folder: str = "pkg-1.4.0.dist-info") -> Path:
    (root / folder).mkdir(parents=True)
    (root / folder / "METADATA").write_bytes(data)
    return root / folder / "METADATA"


def test_non_utf8_metadata_is_read(tmp_path: Path) -> None:
    wheel = write_wheel(tmp_path / WHEEL, {METADATA: LATIN1_METADATA})
    assert open_tree(str(wheel)).version("pkg") == Version("1.4.0")
    dir_with_metadata(tmp_path / "d", LATIN1_METADATA)
    assert DirTree(tmp_path / "d").version("pkg") == Version("1.4.0")


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (
            b"Name: pkg\n",
            "has no Version field; a dist-info's METADATA must give the version it holds "
            "(rebuild or reinstall the package)",
        ),
        (
            b"Name: pkg\nVersion:   \n",
            "has no Version field; a dist-info's METADATA must give the version it holds "
            "(rebuild or reinstall the package)",
        ),
        (b"Version: 1.4.0\xff\n", "gives version '1.4.0\ufffd', which is not PEP 440"),
        (b"Version: one\n", "gives version 'one', which is not PEP 440"),
    ],
)
def test_metadata_without_a_valid_version(tmp_path: Path, data: bytes, problem: str) -> None:
    wheel = write_wheel(tmp_path / WHEEL, {METADATA: data})
    with pytest.raises(UsageError) as info:
        open_tree(str(wheel)).version("pkg")
    assert str(info.value) == f"{WHEEL}: {METADATA} {problem}"
    path = dir_with_metadata(tmp_path / "d", data)
    with pytest.raises(UsageError) as info:
        DirTree(tmp_path / "d").version("pkg")
    assert str(info.value) == f"{path} {problem}"


# --- wheel and dist-info names ----------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "pkg.whl",
        "pkg-1.5.0.whl",
        "pkg-one-py3-none-any.whl",
        "pkg_-1.5.0-py3-none-any.whl",
        "\u212apkg-1.5.0-py3-none-any.whl",  # KELVIN SIGN, which lowercases to "k"
        "pkg-\u0661.5.0-py3-none-any.whl",  # ARABIC-INDIC DIGIT ONE
    ],
)
def test_an_invalid_wheel_file_name_is_a_usage_error(tmp_path: Path, name: str) -> None:
    wheel = write_wheel(tmp_path / name, {METADATA: "Version: 1.5.0\n"})
    with pytest.raises(UsageError) as info:
        open_tree(str(wheel))
    assert str(info.value) == (
        f"cannot read wheel {wheel}: {name!r} is not a wheel file name; rename it to "
        "NAME-VERSION[-BUILD]-PYTHON-ABI-PLATFORM.whl (ASCII only), as pip names wheels"
    )


def test_valid_wheel_file_names(tmp_path: Path) -> None:
    for name in (
        "pkg-1.5.0-1-py3-none-any.whl",
        "Pkg.Name-1.5.0+cu130-cp311-cp311-linux_x86_64.whl",
    ):
        open_tree(str(write_wheel(tmp_path / name, {})))


@pytest.mark.parametrize(
    "folder",
    [
        "pkg.dist-info",
        "pkg-.dist-info",
        "-1.0.dist-info",
        "pkg-one.dist-info",
        "pkg_-1.0.dist-info",
        "\u212apkg-1.0.dist-info",
        "pkg-\u0661.0.dist-info",
    ],
)
def test_malformed_dist_info_names_are_skipped(tmp_path: Path, folder: str) -> None:
    package = "kpkg" if folder.startswith("\u212a") else "pkg"
    (tmp_path / "version.txt").write_text("1.3.0\n")
    dir_with_metadata(tmp_path, b"Version: 9.9\n", folder)
    assert DirTree(tmp_path).version(package) == Version("1.3.0")
    wheel = write_wheel(
        tmp_path / WHEEL, {f"{folder}/METADATA": "Version: 9.9\n", "version.txt": "1.3.0\n"}
    )
    assert open_tree(str(wheel)).version(package) == Version("1.3.0")


def test_dist_info_names_are_compared_canonically(tmp_path: Path) -> None:
    dir_with_metadata(tmp_path, b"Version: 1.4.0\n", "Pkg_Name-1.4.0.dist-info")
    assert DirTree(tmp_path).version("pkg-name") == Version("1.4.0")
    assert DirTree(tmp_path).version("pkg") is None


@pytest.mark.parametrize("lib", ["purelib", "platlib"])
def test_a_wheel_that_keeps_its_packages_under_data_is_read_there(tmp_path: Path, lib: str) -> None:
    # An installer puts NAME-VER.data/purelib/ (or platlib/) at the top of
    # site-packages: every target of such a wheel was "missing".
    wheel = write_wheel(
        tmp_path / WHEEL,
        {
            f"pkg-1.5.0.data/{lib}/pkg/__init__.py": "",
            f"pkg-1.5.0.data/{lib}/pkg/core.py": "class Widget:\n    pass\n",
            METADATA: "Name: pkg\nVersion: 1.5.0\n",
        },
    )
    index = StaticIndex(open_tree(str(wheel)))
    assert isinstance(index.lookup(SymbolRef.parse("pkg.core:Widget")), Found)


def test_a_symlinked_file_of_a_git_revision_is_read_where_it_points(tmp_path: Path) -> None:
    # Its blob holds the link's target path: that text was parsed as the
    # module, and every target in it was "missing".
    root = tmp_path / "repo"
    (root / "pkg").mkdir(parents=True)
    (root / "real").mkdir()
    (root / "pkg" / "__init__.py").write_text("")
    (root / "real" / "core.py").write_text("class Widget:\n    pass\n")
    (root / "pkg" / "core.py").symlink_to("../real/core.py")
    (root / "pkg" / "out.py").symlink_to("../../elsewhere.py")
    (root / "pkg" / "loop.py").symlink_to("loop.py")
    repo = git.Repo.init(root)
    repo.index.add(["pkg/__init__.py", "real/core.py", "pkg/core.py", "pkg/out.py", "pkg/loop.py"])
    repo.index.commit("one", author=git.Actor("T", "t@example.invalid"))
    index = StaticIndex(open_tree(f"{root}@HEAD"))
    assert isinstance(index.lookup(SymbolRef.parse("pkg.core:Widget")), Found)
    assert index.lookup(SymbolRef.parse("pkg.out:X")) == Unknown(
        f"{root}@HEAD: pkg/out.py is a symlink out of the tree", unreadable=True
    )
    assert index.lookup(SymbolRef.parse("pkg.loop:X")) == Unknown(
        f"{root}@HEAD: pkg/loop.py: too many levels of symlinks", unreadable=True
    )
