"""`backport-tool new`: a skeleton that fails its self-test until implemented,
and a manifest entry with the installed target's signature and fingerprint."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sysconfig
import typing
from pathlib import Path

import pytest
import yaml
from helpers import TARGET_SOURCE, PatchSet, assert_copies_written, run_backport_tool
from test_files import EROFS_MESSAGE, listing, run_read_only

import backport_tool
from backport_tool import SymbolRef, load_manifest, lock, state
from backport_tool.errors import UsageError
from backport_tool.manifest import MAX_ID_LENGTH
from backport_tool.scaffold import scaffold


def cli(patchset: PatchSet, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return patchset.cli(*args, cwd=cwd)


def test_new_writes_a_module_and_a_verified_entry(patchset: PatchSet, tmp_path: Path) -> None:
    work = tmp_path / "project"
    work.mkdir()
    target = patchset.sym("Widget.compute")
    proc = cli(patchset, work, "new", "fix-compute", "--target", target, "--package", patchset.dist)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "wrote backports/fix_compute.py"
    module = (work / "backports" / "fix_compute.py").read_text()
    assert "def compute(self, x: int) -> int:" in module
    assert "TYPE_CHECKING" not in module  # builtins only: nothing to import

    # A fresh skeleton is never ready, and apply never installs it.
    checked = cli(patchset, work, "check", "--json", "--manifest", "manifest.yaml")
    assert checked.returncode == 1, checked.stderr
    (entry,) = json.loads(checked.stdout)["backports"]
    assert (entry["id"], entry["status"]) == ("fix-compute", "failed")
    assert entry["reason"] == (
        "backports/fix_compute.py:compute is not written yet (its body only raises "
        "NotImplementedError); write the fix, then run `backport-tool check` again"
    )
    applied = cli(patchset, work, "apply", "--json", "--manifest", "manifest.yaml")
    assert json.loads(applied.stdout)["backports"][0]["status"] == "failed"

    # Once the body is written, it is ready; the self-test still says it is not.
    path = work / "backports" / "fix_compute.py"
    text = path.read_text()
    start = text.index('    raise NotImplementedError("fix-compute')
    end = text.index("\n", start)
    path.write_text(text[:start] + "    return x + 1000" + text[end:])
    checked = cli(patchset, work, "check", "--json", "--manifest", "manifest.yaml")
    assert checked.returncode == 0, checked.stderr
    (entry,) = json.loads(checked.stdout)["backports"]
    assert (entry["status"], entry["reason"]) == (
        "ready",
        "would apply: targets found, signatures match, fingerprints match",
    )
    selftest = cli(patchset, work, "check", "--selftest", "--manifest", "manifest.yaml")
    assert selftest.returncode == 1
    assert "selftest failed: AssertionError: fix-compute: the self-test is not " in (
        selftest.stdout
    )


def test_new_appends_keeping_comments_and_refuses_duplicates(
    patchset: PatchSet, tmp_path: Path
) -> None:
    work = tmp_path / "project"
    work.mkdir()
    (work / "manifest.yaml").write_text(
        f"# my patch set\nversion: 1\npackage: {patchset.dist}\nbackports: []  # none yet\n"
    )
    assert (
        cli(patchset, work, "new", "one", "--target", patchset.sym("Widget.compute")).returncode
        == 0
    )
    assert (
        cli(patchset, work, "new", "two", "--target", patchset.sym("Widget.other")).returncode == 0
    )
    text = (work / "manifest.yaml").read_text()
    assert text.startswith("# my patch set\nversion: 1\n")
    again = cli(patchset, work, "new", "two", "--target", patchset.sym("Widget.other"))
    assert (again.returncode, again.stderr) == (
        2,
        "backport-tool: error: manifest.yaml already has a backport 'two'\n",
    )
    missing = cli(patchset, work, "new", "three", "--target", patchset.sym("Widget.nope"))
    assert missing.returncode == 2
    assert "cannot read the installed" in missing.stderr
    assert "three" not in (work / "manifest.yaml").read_text()
    # --package only names a new manifest's distribution; it must not be
    # ignored when it contradicts an existing one.
    other = cli(
        patchset, work, "new", "four", "--target", patchset.sym("Widget.helper"), "--package", "x"
    )
    assert (other.returncode, other.stderr) == (
        2,
        f"backport-tool: error: --package x disagrees with manifest.yaml, which gates on "
        f"{patchset.dist}; leave --package out, or give another --manifest\n",
    )


ANNOTATED = """
from __future__ import annotations

import collections.abc as cabc
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from decimal import Decimal as Dec


class Local:
    pass


def written(x: Dec, items: cabc.Sequence[Local], flag: Optional[bool] = None) -> list[Local]:
    return []
"""

EVALUATED = """
import fractions


def evaluated(x: fractions.Fraction, y: "int | None" = None) -> dict[str, fractions.Fraction]:
    return {}
"""


ALIASED = """
import typing

Alias = typing.Union[int, typing.Iterable[int]]


def aliased(x: Alias, y: type(None) = None) -> None:
    pass
"""

PARAMSPEC = """
from __future__ import annotations

from typing import Callable, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class Outer:
    class Inner:
        pass


def wrapped(x: Outer.Inner, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    return fn(*args, **kwargs)
"""

DEFAULTS = """
import enum


class Mode(enum.Enum):
    FAST = 1


def noop():
    pass


def defaulted(x: int, hook=noop, mode=Mode.FAST, *, sentinel=object()) -> int:
    return x
"""


def started(patchset: PatchSet, tmp_path: Path, target: str, **modules: str) -> Path:
    # The project `new fix --target TARGET` starts, with ``modules`` (name:
    # source) importable.
    for name, source in modules.items():
        (patchset.site / f"{name}.py").write_text(source)
    work = tmp_path / "project"
    work.mkdir()
    proc = cli(patchset, work, "new", "fix", "--target", target, "--package", patchset.dist)
    assert proc.returncode == 0, proc.stderr
    return work


@pytest.mark.parametrize(
    ("home", "source", "function", "imports"),
    [
        (
            "annotated_home",
            ANNOTATED,
            "written",
            [
                "    import collections.abc as cabc",
                "    from annotated_home import Local",
                "    from decimal import Decimal as Dec",
                "    from typing import Optional",
            ],
        ),
        ("evaluated_home", EVALUATED, "evaluated", ["    import fractions"]),
        # inspect spells typing's names and NoneType without their module.
        (
            "aliased_home",
            ALIASED,
            "aliased",
            [
                "    from types import NoneType",
                "    from typing import Iterable",
                "    from typing import Union",
            ],
        ),
        # P.args and Outer.Inner are attributes of the home's objects, not
        # modules: `import P` would not even load under TYPE_CHECKING.
        (
            "paramspec_home",
            PARAMSPEC,
            "wrapped",
            [
                "    from paramspec_home import Outer",
                "    from paramspec_home import P",
                "    from paramspec_home import T",
                "    from typing import Callable",
            ],
        ),
    ],
)
def test_new_skeleton_imports_what_its_annotations_name(
    patchset: PatchSet, tmp_path: Path, home: str, source: str, function: str, imports: list[str]
) -> None:
    # The copied signature names what the target's module had in scope, some of
    # it only under TYPE_CHECKING; the skeleton must bind each name itself.
    work = started(patchset, tmp_path, f"{home}:{function}", **{home: source})
    skeleton = (work / "backports" / "fix.py").read_text()
    block = skeleton.split("if TYPE_CHECKING:\n", 1)[1].split("\n\n", 1)[0]
    assert block.splitlines() == imports
    # Resolve every annotation as a type checker would, with TYPE_CHECKING true.
    namespace: dict[str, object] = {}
    exec(compile(skeleton.replace("if TYPE_CHECKING:", "if True:"), "fix.py", "exec"), namespace)
    hints = typing.get_type_hints(namespace[function])
    assert set(hints) >= {"x", "return"}


def _cli_env(patchset: PatchSet, tmp_path: Path) -> dict[str, str]:
    # An internal error's log goes to the test's directory, not ~/.cache.
    return patchset.env(XDG_CACHE_HOME=str(tmp_path / "xdg"))


def _new(
    patchset: PatchSet,
    work: Path,
    tmp_path: Path,
    backport_id: str = "fix",
    manifest: str = "manifest.yaml",
) -> subprocess.CompletedProcess[str]:
    return run_backport_tool(
        "new",
        backport_id,
        "--target",
        patchset.sym("Widget.compute"),
        "--manifest",
        manifest,
        paths=[patchset.site],
        cwd=work,
        XDG_CACHE_HOME=str(tmp_path / "xdg"),
    )


@pytest.fixture
def work(tmp_path: Path) -> Path:
    work = tmp_path / "project"
    work.mkdir()
    return work


def _manifest(patchset: PatchSet) -> str:
    return f"# mine\nversion: 1\npackage: {patchset.dist}\nbackports: []\n"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "manifest.yaml: <document>: expected a mapping, got null"),
        ("- a\n- b\n", "manifest.yaml:1: <document>: expected a mapping, got a list"),
        (
            "version: 1\npackage: [x\n",
            "manifest.yaml:3:1: invalid YAML: expected ',' or ']', but got '<stream end>'",
        ),
        (
            "version: 1\nversion: 1\npackage: p\nbackports: []\n",
            "manifest.yaml:2: version: duplicate key 'version'; keep one",
        ),
        (
            "version: 1\npackage: p\nbackports:\n  a: 1\n",
            "manifest.yaml:3: backports: expected a list, got a mapping",
        ),
    ],
    ids=["empty", "list", "yaml-syntax", "duplicate-key", "backports-mapping"],
)
def test_new_refuses_an_invalid_manifest_and_writes_nothing(
    patchset: PatchSet, work: Path, tmp_path: Path, text: str, problem: str
) -> None:
    (work / "manifest.yaml").write_text(text)
    proc = _new(patchset, work, tmp_path)
    assert (proc.returncode, proc.stderr) == (
        2,
        f"backport-tool: error: invalid manifest: {problem}\n",
    )
    assert listing(work) == {"manifest.yaml": text.encode()}


def test_new_returns_the_paths_it_wrote(patchset: PatchSet, work: Path) -> None:
    target = patchset.sym("Widget.compute")
    result = scaffold(work / "manifest.yaml", "fix-it", target, package=patchset.dist)
    assert result == (work / "manifest.yaml", work / "backports" / "fix_it.py")
    assert (result.manifest, result.module) == result
    assert json.loads(json.dumps(result.to_dict())) == {
        "manifest": str(work / "manifest.yaml"),
        "module": str(work / "backports" / "fix_it.py"),
    }


def test_new_keeps_the_manifests_mode_bom_and_crlf(patchset: PatchSet, work: Path) -> None:
    manifest = work / "manifest.yaml"
    manifest.write_bytes(("\ufeff" + _manifest(patchset).replace("\n", "\r\n")).encode())
    manifest.chmod(0o664)
    scaffold(manifest, "fix", patchset.sym("Widget.compute"))
    raw = manifest.read_bytes().decode()
    assert raw.startswith("\ufeff# mine\r\nversion: 1\r\n")
    assert raw.count("\n") == raw.count("\r\n") > 10
    assert stat.S_IMODE(manifest.stat().st_mode) == 0o664
    assert load_manifest(manifest).get("fix").module == work / "backports" / "fix.py"


def test_new_writes_through_a_symlinked_manifest_next_to_its_target(
    patchset: PatchSet, work: Path
) -> None:
    # Module paths are relative to the manifest's real location: the module
    # lands next to the file the link points to, not next to the link.
    (work / "real").mkdir()
    real = work / "real" / "manifest.yaml"
    real.write_text(_manifest(patchset))
    link = work / "manifest.yaml"
    link.symlink_to(Path("real") / "manifest.yaml")
    result = scaffold(link, "fix", patchset.sym("Widget.compute"))
    assert result == (link, work / "real" / "backports" / "fix.py")
    assert (link.is_symlink(), os.readlink(link)) == (True, str(Path("real") / "manifest.yaml"))
    assert "- id: fix" in real.read_text()
    assert sorted(listing(work)) == [
        "manifest.yaml",
        "real",
        "real/backports",
        "real/backports/fix.py",
        "real/manifest.yaml",
    ]


def test_new_refuses_a_dangling_manifest_link(
    patchset: PatchSet, work: Path, tmp_path: Path
) -> None:
    (work / "manifest.yaml").symlink_to("gone.yaml")
    proc = _new(patchset, work, tmp_path)
    assert (proc.returncode, proc.stderr) == (
        2,
        "backport-tool: error: manifest.yaml is a symlink to gone.yaml, which does not "
        "exist; nothing was written. Fix or remove the link and run the command again\n",
    )
    assert listing(work) == {"manifest.yaml": None}
    assert (work / "manifest.yaml").is_symlink()


def test_new_refuses_a_backports_link_that_leads_outside(
    patchset: PatchSet, work: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (work / "manifest.yaml").write_text(_manifest(patchset))
    (work / "backports").symlink_to(outside)
    proc = _new(patchset, work, tmp_path)
    assert (proc.returncode, proc.stderr) == (
        2,
        f"backport-tool: error: backports/fix.py leads to {outside / 'fix.py'}, outside "
        f"{work}; nothing was written. A patch set's files must stay inside the manifest's "
        "directory: replace the symlink with a real directory there\n",
    )
    assert listing(outside) == {}
    assert listing(work) == {"backports": None, "manifest.yaml": _manifest(patchset).encode()}


def test_new_on_a_read_only_filesystem_exits_2_and_writes_nothing(
    patchset: PatchSet, work: Path, tmp_path: Path
) -> None:
    (work / "manifest.yaml").write_text(_manifest(patchset))
    before = listing(work)
    proc = run_read_only(
        work,
        ["new", "fix", "--target", patchset.sym("Widget.compute"), "--manifest", "manifest.yaml"],
        cwd=work,
        env=_cli_env(patchset, tmp_path),
    )
    assert (proc.returncode, proc.stderr) == (
        2,
        "backport-tool: error: " + EROFS_MESSAGE.format(path="backports/fix.py") + "\n",
    )
    assert listing(work) == before


def test_new_removes_its_module_when_the_manifest_cannot_be_written(
    patchset: PatchSet, work: Path, tmp_path: Path
) -> None:
    # The manifest's directory is read-only, backports/ on it a writable mount:
    # the module is written, the manifest is not, and the module must go.
    (work / "manifest.yaml").write_text(_manifest(patchset))
    (work / "backports").mkdir()
    spill = tmp_path / "spill"
    spill.mkdir()
    before = listing(work)
    proc = run_read_only(
        work,
        ["new", "fix", "--target", patchset.sym("Widget.compute"), "--manifest", "manifest.yaml"],
        cwd=work,
        env=_cli_env(patchset, tmp_path),
        writable=[(spill, work / "backports")],
    )
    assert (proc.returncode, proc.stderr) == (
        2,
        "backport-tool: error: " + EROFS_MESSAGE.format(path="manifest.yaml") + "\n",
    )
    assert (listing(work), listing(spill)) == (before, {})


def test_new_write_error_removes_the_module_and_the_directory_it_made(
    patchset: PatchSet, work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OSError(EROFS) injected at os.replace of the manifest, in-process: the
    fallback for sandboxes without read-only mounts."""
    manifest = work / "manifest.yaml"
    manifest.write_text(_manifest(patchset))
    real_replace = os.replace

    def replace(source: str, target: str) -> None:
        if Path(target) == manifest:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(UsageError) as caught:
        scaffold(manifest, "fix", patchset.sym("Widget.compute"))
    monkeypatch.undo()
    assert str(caught.value) == EROFS_MESSAGE.format(path=manifest)
    assert listing(work) == {"manifest.yaml": _manifest(patchset).encode()}


@pytest.mark.parametrize("length", [65, 77, 300])
def test_new_refuses_an_id_longer_than_a_manifest_allows(
    patchset: PatchSet, work: Path, tmp_path: Path, length: int
) -> None:
    # Not "invalid manifest" about the user's valid one, nor a file name too
    # long for the filesystem: the command line's id is what is wrong.
    (work / "manifest.yaml").write_text(_manifest(patchset))
    long_id = "x-" + "a" * (length - 2)
    proc = _new(patchset, work, tmp_path, long_id)
    assert (proc.returncode, proc.stderr) == (
        2,
        f"backport-tool: error: id {long_id!r} is {length} characters long; an id has at "
        f"most {MAX_ID_LENGTH}: choose a shorter one\n",
    )
    assert listing(work) == {"manifest.yaml": _manifest(patchset).encode()}


def test_new_takes_an_id_of_the_longest_length(patchset: PatchSet, work: Path) -> None:
    (work / "manifest.yaml").write_text(_manifest(patchset))
    longest = "x-" + "a" * (MAX_ID_LENGTH - 2)
    scaffold(work / "manifest.yaml", longest, patchset.sym("Widget.compute"))
    assert load_manifest(work / "manifest.yaml").get(longest).id == longest


READ_ONLY = (
    "backport-tool: error: cannot write manifest.yaml: it is read-only; nothing was changed. "
    "If it is meant to change, make it writable (chmod u+w), then run the command again\n"
)


def test_new_refuses_a_read_only_manifest_and_writes_nothing(
    patchset: PatchSet, work: Path, tmp_path: Path
) -> None:
    manifest = work / "manifest.yaml"
    manifest.write_text(_manifest(patchset))
    manifest.chmod(0o444)
    proc = _new(patchset, work, tmp_path)
    assert (proc.returncode, proc.stderr) == (2, READ_ONLY)
    assert listing(work) == {"manifest.yaml": _manifest(patchset).encode()}
    assert stat.S_IMODE(manifest.stat().st_mode) == 0o444


def test_new_refuses_a_manifest_this_user_may_not_write(
    patchset: PatchSet, work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone else's 0644 manifest, as the kernel sees it for a user who is
    not root, simulated."""
    manifest = work / "manifest.yaml"
    manifest.write_text(_manifest(patchset))
    real_access = os.access

    def access(target: str | os.PathLike[str], mode: int, **kwargs: typing.Any) -> bool:
        return Path(target) != manifest and real_access(target, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)
    with pytest.raises(UsageError) as caught:
        scaffold(manifest, "fix", patchset.sym("Widget.compute"))
    assert f"backport-tool: error: {caught.value}\n" == READ_ONLY.replace(
        "manifest.yaml:", f"{manifest}:"
    )
    assert listing(work) == {"manifest.yaml": _manifest(patchset).encode()}


def test_new_refuses_a_manifest_in_the_standard_library(
    patchset: PatchSet, work: Path, tmp_path: Path
) -> None:
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    place = stdlib / "json"
    before = listing(place)
    # Without --package, a tool that failed to refuse would stop at the fake
    # package's version, before writing into the interpreter.
    proc = _new(patchset, work, tmp_path, manifest="pkg:json/manifest.yaml")
    assert (proc.returncode, proc.stderr) == (
        2,
        f"backport-tool: error: {place / 'manifest.yaml'} is inside an installed package "
        f"({stdlib}); nothing was written. Run the command in your project, whose "
        "manifest.yaml it then finds in the current directory or above, or name one with "
        "--manifest PATH (`backport-tool new` starts one)\n",
    )
    assert listing(place) == before
    assert listing(work) == {}


def test_new_takes_several_targets_and_values(patchset: PatchSet, tmp_path: Path) -> None:
    (patchset.site / f"{patchset.module}.py").write_text(
        TARGET_SOURCE + '\nLIMITS = ("reads", 4)\n\n\nclass Other:\n    def compute(self, x):\n'
        "        return x\n"
    )
    work = tmp_path / "project"
    work.mkdir()
    targets = [
        patchset.sym("Widget.compute"),
        patchset.sym("Other.compute"),
        patchset.sym("LIMITS"),
    ]
    args = [a for t in targets for a in ("--target", t)]
    proc = cli(patchset, work, "new", "fix", *args, "--package", patchset.dist)
    assert proc.returncode == 0, proc.stderr
    module = (work / "backports" / "fix.py").read_text()
    assert "def Widget_compute(self, x: int) -> int:" in module
    assert "def Other_compute(self, x):" in module
    # A tuple is a value (a set, dict or list is a registry, edited in place).
    assert "#     LIMITS = ('reads', 4)\nLIMITS = NotImplemented\n" in module
    entry = yaml.safe_load((work / "manifest.yaml").read_text())["backports"][0]
    assert [(t["symbol"], t["replacement"], "signature" in t) for t in entry["targets"]] == [
        (targets[0], "Widget_compute", True),
        (targets[1], "Other_compute", True),
        (targets[2], "LIMITS", False),
    ]
    checked = cli(patchset, work, "check", "--json", "--manifest", "manifest.yaml")
    (result,) = json.loads(checked.stdout)["backports"]
    assert result["status"] == "failed"
    assert result["reason"] == "; ".join(
        [
            "backports/fix.py:Widget_compute is not written yet (its body only raises "
            "NotImplementedError); write the fix, then run `backport-tool check` again",
            "backports/fix.py:Other_compute is not written yet (its body only raises "
            "NotImplementedError); write the fix, then run `backport-tool check` again",
            "backports/fix.py:LIMITS is not written yet (its value is NotImplemented); write "
            "the fix, then run `backport-tool check` again",
        ]
    )


def test_new_writes_the_copies_of_each_target_after_recorded_from(
    patchset: PatchSet, work: Path
) -> None:
    source = patchset.site / f"{patchset.module}.py"
    source.write_text(
        TARGET_SOURCE + "\nalias = free_function\n\n\nclass Holder:\n    run = free_function\n"
    )
    mod = patchset.module
    manifest = work / "manifest.yaml"
    targets = [patchset.sym("free_function"), patchset.sym("Widget.compute")]
    scaffold(manifest, "fix", targets, package=patchset.dist)
    assert_copies_written(
        manifest.read_text(),
        f'      - symbol: "{mod}:free_function"',
        [f"{mod}:Holder.run", f"{mod}:alias"],
        f'      - symbol: "{mod}:Widget.compute"',
    )
    first, second = load_manifest(manifest).get("fix").targets
    assert first.copies == (SymbolRef(mod, "Holder.run"), SymbolRef(mod, "alias"))
    # No copies: no key.
    assert second.copies == ()
    assert manifest.read_text().count("copies:") == 1


# --- every target kind --------------------------------------------------------


def _write_body(path: Path, marker: str, body: str) -> None:
    # Replaces the skeleton's `raise NotImplementedError("<marker>...")` line.
    text = path.read_text()
    start = text.index(f'    raise NotImplementedError("{marker}')
    end = text.index("\n", start)
    path.write_text(text[:start] + body + text[end:])


def _status(manifest: Path, backport_id: str) -> tuple[str, str]:
    # A backport module runs once per process: the edited one must run anew.
    state.reset()
    result = backport_tool.check(manifest).by_id(backport_id)
    return result.status.value, result.reason


@pytest.mark.torch211
def test_new_wraps_a_builtin_and_binds_its_original(tmp_path: Path) -> None:
    import torch

    manifest = tmp_path / "manifest.yaml"
    written = scaffold(manifest, "zero3-linear", "torch.nn.functional:linear")
    (entry,) = yaml.safe_load(manifest.read_text())["backports"][0]["targets"]
    # C code: no fingerprint, no text signature to copy, the original bound.
    assert entry["original"] == "original_linear"
    assert "fingerprint" not in entry
    assert "signature" not in entry
    module = written.module.read_text()
    assert "\noriginal_linear = None\n" in module
    assert "def linear(*args, **kwargs):" in module
    assert "# Call the original as original_linear(*args, **kwargs)." in module
    status, reason = _status(manifest, "zero3-linear")
    assert (status, "is not written yet" in reason) == ("failed", True)

    _write_body(written.module, "zero3-linear", "    return original_linear(*args, **kwargs) + 1")
    assert _status(manifest, "zero3-linear")[0] == "ready"
    x, w = torch.ones(2, 3), torch.ones(4, 3)
    try:
        assert backport_tool.apply(manifest, eager=True).by_id("zero3-linear").status.value == (
            "applied"
        )
        assert torch.equal(torch.nn.functional.linear(x, w), torch.full((2, 4), 4.0))
    finally:
        backport_tool.revert()
    assert torch.equal(torch.nn.functional.linear(x, w), torch.full((2, 4), 3.0))


@pytest.mark.torch211
def test_new_decorates_a_classmethod_inherited_from_c(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.yaml"
    written = scaffold(
        manifest, "subclass-hook", "torch.nn.modules.module:Module.__init_subclass__"
    )
    module = written.module.read_text()
    assert "@classmethod\ndef __init_subclass__(cls, *args, **kwargs):" in module
    assert "original_init_subclass(cls, *args, **kwargs)" in module
    _write_body(
        written.module,
        "subclass-hook",
        "    cls.made_by_the_fix = True\n    return original_init_subclass(cls, *args, **kwargs)",
    )
    assert _status(manifest, "subclass-hook")[0] == "ready"
    import torch

    try:
        backport_tool.apply(manifest, eager=True)

        class Late(torch.nn.Module):
            pass

        assert Late.made_by_the_fix  # type: ignore[attr-defined]
    finally:
        backport_tool.revert()


@pytest.mark.torch211
def test_new_starts_a_config_option_from_its_declaration(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.yaml"
    written = scaffold(manifest, "threads", "torch._inductor.config:compile_threads")
    module = written.module.read_text()
    assert "#     compile_threads: Optional[int] = " in module
    assert "\ncompile_threads = NotImplemented\n" in module
    (entry,) = yaml.safe_load(manifest.read_text())["backports"][0]["targets"]
    assert entry["fingerprint"].startswith("sha256:")
    assert _status(manifest, "threads")[0] == "failed"
    written.module.write_text(
        module.replace("\ncompile_threads = NotImplemented\n", "\ncompile_threads = 1\n")
    )
    assert _status(manifest, "threads")[0] == "ready"


def _write_fixes(module: Path, bodies: dict[str, str]) -> None:
    """Replace each skeleton's `raise NotImplementedError` (named by what it
    fixes, as the skeleton says) with a one-line body."""
    text = module.read_text()
    for what, body in bodies.items():
        placeholder = f'    raise NotImplementedError("fix: write the fixed {what} here")'
        assert placeholder in text, what
        text = text.replace(placeholder, f"    {body}")
    module.write_text(text)


def test_new_decorates_a_staticmethod_and_a_classmethod(patchset: PatchSet, tmp_path: Path) -> None:
    (patchset.site / f"{patchset.module}.py").write_text(
        TARGET_SOURCE + "\n\nclass Maker:\n    @classmethod\n    def make(cls, n: int) -> int:\n"
        "        return n\n"
    )
    manifest = tmp_path / "manifest.yaml"
    targets = [patchset.sym("Widget.helper"), patchset.sym("Maker.make")]
    written = scaffold(manifest, "fix", targets, package=patchset.dist)
    module = written.module.read_text()
    assert "@staticmethod\ndef helper(x: int) -> int:" in module
    assert "@classmethod\ndef make(cls, n: int) -> int:" in module
    _write_fixes(written.module, {"Widget.helper": "return x * 20", "Maker.make": "return n + 1"})
    assert _status(manifest, "fix")[0] == "ready"


def test_new_starts_a_property_target_as_a_property(patchset: PatchSet, tmp_path: Path) -> None:
    # A plain function would be refused: the skeleton is a property with the
    # original's setter, and a cached_property stays one.
    (patchset.site / f"{patchset.module}.py").write_text(
        TARGET_SOURCE + "\n\nimport functools\n\n\nclass Box:\n    def __init__(self):\n"
        "        self._v = 1\n\n    @property\n    def v(self):\n        return self._v\n\n"
        "    @v.setter\n    def v(self, value):\n        self._v = value\n\n"
        "    @functools.cached_property\n    def c(self):\n        return 2\n"
    )
    manifest = tmp_path / "manifest.yaml"
    targets = [patchset.sym("Box.v"), patchset.sym("Box.c")]
    written = scaffold(manifest, "fix", targets, package=patchset.dist)
    module = written.module.read_text()
    assert "@property\ndef v(self):" in module
    assert "@v.setter\ndef v(self, value):" in module
    assert "import functools\n" in module
    assert "@functools.cached_property\ndef c(self):" in module
    assert _status(manifest, "fix")[0] == "failed"  # not written yet
    _write_fixes(
        written.module,
        {
            "Box.v": "return self._v * 10",
            "Box.v setter": "self._v = value + 1",
            "Box.c": "return 20",
        },
    )
    assert _status(manifest, "fix")[0] == "ready"
    # new recorded what lock records: only the module's new pin changes.
    changed = {e.symbol: e.action.value for e in lock(manifest) if e.symbol}
    assert changed == {targets[0]: "unchanged", targets[1]: "unchanged"}


def test_new_subclasses_a_class_target(patchset: PatchSet, tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.yaml"
    written = scaffold(manifest, "fix-widget", patchset.sym("Widget"), package=patchset.dist)
    module = written.module.read_text()
    assert f"from {patchset.module} import Widget as _Original_Widget\n" in module
    assert "class Widget(_Original_Widget):" in module
    # The original's code, for the author to edit from.
    assert "    #     class Widget(Base):\n" in module
    assert "    #         def compute(self, x: int) -> int:\n" in module
    (entry,) = yaml.safe_load(manifest.read_text())["backports"][0]["targets"]
    assert entry["fingerprint"].startswith("sha256:")
    assert "signature" not in entry
    status, reason = _status(manifest, "fix-widget")
    assert status == "failed"
    assert "Widget is not written yet (it defines nothing of its own" in reason

    written.module.write_text(
        module.replace(
            "    # The original, as installed",
            "    def compute(self, x: int) -> int:\n        return x + 1000\n\n"
            "    # The original, as installed",
        )
    )
    assert _status(manifest, "fix-widget")[0] == "ready"
    target = patchset.target()
    try:
        backport_tool.apply(manifest, eager=True)
        assert target.Widget().compute(1) == 1001
    finally:
        backport_tool.revert()
    assert target.Widget().compute(1) == 2


def test_new_starts_registry_edits_for_a_set_and_a_dict(patchset: PatchSet, tmp_path: Path) -> None:
    (patchset.site / f"{patchset.module}.py").write_text(
        TARGET_SOURCE + "\n\nHANDLERS = {print}\nTABLE = {'a': len}\n"
    )
    manifest = tmp_path / "manifest.yaml"
    targets = [patchset.sym("HANDLERS"), patchset.sym("TABLE")]
    written = scaffold(manifest, "fix", targets, package=patchset.dist)
    module = written.module.read_text()
    assert "# The entries to add to HANDLERS\n# (a set of 1 entries)" in module
    assert "\nHANDLERS_entry = NotImplemented\n" in module
    assert "\nTABLE_key = NotImplemented\nTABLE_value = NotImplemented\n" in module
    entries = yaml.safe_load(manifest.read_text())["backports"][0]["targets"]
    assert [(t["symbol"], t["add"]) for t in entries] == [
        (targets[0], ["HANDLERS_entry"]),
        (targets[1], {"TABLE_key": "TABLE_value"}),
    ]
    assert all(t["fingerprint"].startswith("sha256:") for t in entries)
    status, reason = _status(manifest, "fix")
    assert status == "failed"
    assert "HANDLERS_entry is not written yet (its value is NotImplemented)" in reason

    written.module.write_text(
        module.replace("HANDLERS_entry = NotImplemented", "HANDLERS_entry = repr")
        .replace("TABLE_key = NotImplemented", "TABLE_key = 'b'")
        .replace("TABLE_value = NotImplemented", "TABLE_value = str")
    )
    assert _status(manifest, "fix")[0] == "ready"
    target = patchset.target()
    try:
        backport_tool.apply(manifest, eager=True)
        handlers, table = target.HANDLERS, target.TABLE
        assert (handlers, table) == ({print, repr}, {"a": len, "b": str})
    finally:
        backport_tool.revert()
    handlers, table = target.HANDLERS, target.TABLE
    assert (handlers, table) == ({print}, {"a": len})


def test_new_names_defaults_as_the_source_does_and_the_skeleton_still_loads(
    patchset: PatchSet, tmp_path: Path
) -> None:
    # inspect shows such defaults as <function noop at 0x...>: no signature,
    # and another in every process. The skeleton cannot evaluate them without
    # importing the target's module, so it takes the arguments whole.
    work = started(
        patchset,
        tmp_path,
        "reexport_home:defaulted",
        defaults_home=DEFAULTS,
        reexport_home="from defaults_home import defaulted\n",
    )
    signature = "(x: int, hook=noop, mode=Mode.FAST, *, sentinel=...) -> int"
    assert f'signature: "{signature}"' in (work / "manifest.yaml").read_text()
    skeleton = (work / "backports" / "fix.py").read_text()
    assert (
        "# The original: defaulted" + signature + "\n"
        "# Defaults that name its module's objects (noop, Mode.FAST) cannot be written here:\n"
        "# this module must not import torch when it loads. Bind the arguments inside\n"
        "# (inspect.signature(original).bind).\n"
        "def defaulted(*args: Any, **kwargs: Any):\n"
    ) in skeleton
    namespace: dict[str, object] = {}
    exec(compile(skeleton.replace("if TYPE_CHECKING:", "if True:"), "fix.py", "exec"), namespace)
    # Not written yet, but it loads and fits the original.
    checked = cli(patchset, work, "check")
    assert "is not written yet" in checked.stdout, checked.stdout + checked.stderr


def test_new_reads_a_reexported_target_in_the_module_that_defines_it(
    patchset: PatchSet, tmp_path: Path
) -> None:
    work = started(
        patchset,
        tmp_path,
        "reexporting:written",
        annotated_home=ANNOTATED,
        reexporting="from annotated_home import written\n",
    )
    skeleton = (work / "backports" / "fix.py").read_text()
    block = skeleton.split("if TYPE_CHECKING:\n", 1)[1].split("\n\n", 1)[0]
    assert "    from annotated_home import Local" in block.splitlines()


# --- targets torch 2.11 has ---------------------------------------------------


def _type_checking_block(skeleton: str) -> list[str]:
    return skeleton.split("if TYPE_CHECKING:\n", 1)[1].split("\n\n", 1)[0].splitlines()


@pytest.mark.torch211
def test_new_writes_the_source_signature_where_the_installed_one_cannot_be_read_back(
    tmp_path: Path,
) -> None:
    # inspect spells the annotation NamedTuple (a function in typing) as
    # <function NamedTuple at 0x...>: Python cannot read that back, so the
    # manifest records no signature, as lock does, and the skeleton takes the
    # source's spelling.
    manifest = tmp_path / "manifest.yaml"
    written = scaffold(manifest, "fix", "torch.utils._pytree:_namedtuple_flatten")
    (entry,) = yaml.safe_load(manifest.read_text())["backports"][0]["targets"]
    assert "signature" not in entry
    assert entry["fingerprint"].startswith("sha256:")
    module = written.module.read_text()
    assert "\ndef _namedtuple_flatten(d: NamedTuple) -> tuple[list[Any], Context]:\n" in module
    assert _type_checking_block(module) == [
        "    from torch.utils._pytree import Context",
        "    from typing import Any",
        "    from typing_extensions import NamedTuple",
    ]
    status, reason = _status(manifest, "fix")
    assert (status, "_namedtuple_flatten is not written yet" in reason) == ("failed", True)
    _write_fixes(written.module, {"_namedtuple_flatten": "return list(d), type(d)"})
    assert "targets found, fingerprints match" in _status(manifest, "fix")[1]


@pytest.mark.torch211
def test_new_names_one_qualname_of_two_modules_apart(tmp_path: Path) -> None:
    # Two defs of one name in one module: the second would replace both.
    from torch._inductor import comm_analysis, utils

    manifest = tmp_path / "manifest.yaml"
    targets = ["torch._inductor.comm_analysis:get_gpu_type", "torch._inductor.utils:get_gpu_type"]
    written = scaffold(manifest, "fix", targets)
    entries = yaml.safe_load(manifest.read_text())["backports"][0]["targets"]
    assert [(t["symbol"], t["replacement"]) for t in entries] == [
        (targets[0], "comm_analysis_get_gpu_type"),
        (targets[1], "utils_get_gpu_type"),
    ]
    module = written.module.read_text()
    assert "\ndef comm_analysis_get_gpu_type() -> " in module
    assert "\ndef utils_get_gpu_type() -> str:\n" in module
    _write_fixes(written.module, {"get_gpu_type": 'return "fixed"'})  # both, one marker
    assert _status(manifest, "fix")[0] == "ready"
    text = written.module.read_text()
    written.module.write_text(
        text.replace('return "fixed"', 'return "comm"', 1).replace(
            'return "fixed"', 'return "utils"'
        )
    )
    state.reset()
    try:
        assert backport_tool.apply(manifest, eager=True).by_id("fix").status.value == "applied"
        # Each module's function is its own replacement now, whatever its annotation says.
        got: tuple[object, object] = (comm_analysis.get_gpu_type(), utils.get_gpu_type())
        assert got == ("comm", "utils")
    finally:
        backport_tool.revert()


@pytest.mark.torch211
def test_new_imports_a_paramspec_from_the_targets_module(tmp_path: Path) -> None:
    written = scaffold(tmp_path / "manifest.yaml", "fix", "torch._inductor.utils:get_triton_code")
    module = written.module.read_text()
    assert "def get_triton_code(fn: Callable[P, _T], *args: P.args, **kwargs: P.kwargs)" in module
    assert _type_checking_block(module) == [
        "    from collections.abc import Callable",
        "    from torch._inductor.utils import P",
        "    from torch._inductor.utils import _T",
    ]
    # Every annotation resolves as a type checker would, with TYPE_CHECKING true.
    namespace: dict[str, object] = {}
    exec(compile(module.replace("if TYPE_CHECKING:", "if True:"), "fix.py", "exec"), namespace)
    assert set(typing.get_type_hints(namespace["get_triton_code"])) == {
        "fn",
        "args",
        "kwargs",
        "return",
    }


@pytest.mark.torch211
@pytest.mark.parametrize(
    ("target", "why"),
    [
        (
            "torch._inductor.runtime.hints:ReductionHint",
            "torch._inductor.runtime.hints.ReductionHint is an Enum with members, which Python "
            "does not let a subclass extend, and a class target's replacement subclasses the "
            "original; target the functions or methods that use it instead, or a module value "
            "built from it",
        ),
        (
            "torch._inductor.runtime.hints:ReductionHint.INNER",
            "a member of the Enum torch._inductor.runtime.hints.ReductionHint, which Python "
            "does not let anyone reassign; target the functions or methods that use it instead",
        ),
        (
            "torch:Size.__getitem__",
            "torch.Size is an immutable type (C code), whose attributes cannot be set; target a "
            "Python class or module that exposes it instead",
        ),
        (
            "torch._C:_get_tracing_state",
            "torch._C is an extension module, which backport-tool never changes; target the "
            "Python module that exposes it instead",
        ),
    ],
    ids=["enum", "enum-member", "immutable-type", "extension-module"],
)
def test_new_refuses_a_target_no_replacement_could_ever_take(
    work: Path, tmp_path: Path, target: str, why: str
) -> None:
    # check refuses each of them whatever the module holds: a skeleton would
    # never load (an Enum's subclass), or never be installed.
    proc = run_backport_tool(
        "new", "fix", "--target", target, cwd=work, XDG_CACHE_HOME=str(tmp_path / "xdg")
    )
    assert (proc.returncode, proc.stderr) == (2, f"backport-tool: error: target {target}: {why}\n")
    assert listing(work) == {}


@pytest.mark.parametrize(
    "ending",
    [
        "        replacement: other\n",
        # A flow list: ruamel keeps the comment at the end of targets:.
        '        replacement: other\n        recorded_from: ["1.5.0"]\n',
        # A block list: ruamel keeps the comment on its last item.
        '        replacement: other\n        acknowledged:\n          - "a.b:C[0]"\n',
    ],
    ids=["key", "flow-list", "block-list"],
)
def test_new_keeps_the_comment_below_the_last_backport_below_the_new_one(
    patchset: PatchSet, work: Path, ending: str
) -> None:
    (work / "backports").mkdir()
    (work / "backports" / "one.py").write_text("def other(self, x):\n    return x\n")
    manifest = work / "manifest.yaml"
    manifest.write_text(
        f"version: 1\npackage: {patchset.dist}\nbackports:\n  - id: one\n    summary: s\n"
        '    applies_to: ">=1.0,<2.0"\n    module: backports/one.py\n    targets:\n'
        f'      - symbol: "{patchset.sym("Widget.other")}"\n' + ending + "# the last line\n"
    )
    scaffold(manifest, "two", patchset.sym("Widget.compute"))
    scaffold(manifest, "three", [patchset.sym("Widget.helper"), patchset.sym("free_function")])
    text = manifest.read_text()
    assert text.endswith('recorded_from: ["1.5.0"]\n# the last line\n'), text
    assert text.count("# the last line") == 1
    assert ending in text
    assert [b.id for b in load_manifest(manifest).backports] == ["one", "two", "three"]
