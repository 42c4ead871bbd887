"""`backport-tool new`: a skeleton that fails its self-test until implemented,
and a manifest entry with the installed target's signature and fingerprint."""

from __future__ import annotations

import json
import subprocess
import typing
from pathlib import Path

import pytest
from helpers import PatchSet


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

    checked = cli(patchset, work, "check", "--json", "--manifest", "manifest.yaml")
    assert checked.returncode == 0, checked.stderr
    (entry,) = json.loads(checked.stdout)["backports"]
    assert (entry["id"], entry["status"]) == ("fix-compute", "ready")
    assert entry["reason"] == "would apply: targets found, signatures match, fingerprints match"

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
    ],
)
def test_new_skeleton_imports_what_its_annotations_name(
    patchset: PatchSet, tmp_path: Path, home: str, source: str, function: str, imports: list[str]
) -> None:
    # The copied signature names what the target's module had in scope, some of
    # it only under TYPE_CHECKING; the skeleton must bind each name itself.
    (patchset.site / f"{home}.py").write_text(source)
    work = tmp_path / "project"
    work.mkdir()
    target = f"{home}:{function}"
    proc = cli(patchset, work, "new", "fix", "--target", target, "--package", patchset.dist)
    assert proc.returncode == 0, proc.stderr
    skeleton = (work / "backports" / "fix.py").read_text()
    block = skeleton.split("if TYPE_CHECKING:\n", 1)[1].split("\n\n", 1)[0]
    assert block.splitlines() == imports
    # Resolve every annotation as a type checker would, with TYPE_CHECKING true.
    namespace: dict[str, object] = {}
    exec(compile(skeleton.replace("if TYPE_CHECKING:", "if True:"), "fix.py", "exec"), namespace)
    hints = typing.get_type_hints(namespace[function])
    assert set(hints) >= {"x", "return"}
