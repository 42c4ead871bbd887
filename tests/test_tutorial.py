"""docs/tutorial.md, then docs/retiring.md, followed command by command
against the real torch 2.11.

Each ``sh`` block runs in one fresh project directory next to a checkout of
this repository (``../backport-tool``), and the ``text`` block after it must
match its output; ``{...}`` in an expected line matches any text. Markers
before a block (``<!-- tutorial: ... -->``) say how to treat it: ``skip``,
``exit N``, ``write PATH``, ``run-python``, ``manifest-ends-with``,
``replace-entry ID`` and ``add-to-entry ID``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import python_env

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "docs" / "tutorial.md", REPO / "docs" / "retiring.md"]
WHEELS = os.environ.get("BACKPORT_TOOL_WHEELS")

pytestmark = [
    pytest.mark.torch211,
    pytest.mark.skipif(
        not WHEELS, reason="set BACKPORT_TOOL_WHEELS to a directory from scripts/fetch-wheels"
    ),
]

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)
_MARKER = re.compile(r"<!-- tutorial: (.+?) -->\s*$")


@dataclass(frozen=True)
class Block:
    lang: str
    body: str
    marker: str | None
    line: int


def blocks(text: str) -> list[Block]:
    found = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = _MARKER.search(before)
        line = text.count("\n", 0, match.start()) + 1
        found.append(Block(match[1], match[2], marker[1] if marker else None, line))
    return found


def _matches(expected: str, actual: str) -> bool:
    pattern = "".join(
        ".+?" if part.startswith("{") else re.escape(part)
        for part in re.split(r"(\{[^}]*\})", expected.strip())
    )
    return re.fullmatch(pattern, actual.strip(), re.S) is not None


def _shims(bin_dir: Path) -> None:
    # The commands of the tutorial, run by the interpreter under test (its
    # venv's console script may be another build of backport-tool).
    bin_dir.mkdir()
    for name, argv in (("python", ""), ("backport-tool", "-m backport_tool")):
        shim = bin_dir / name
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" {argv} "$@"\n')
        shim.chmod(0o755)


def _add_to_entry(manifest: Path, backport_id: str, lines: str) -> None:
    text = manifest.read_text(encoding="utf-8")
    start = text.index(f"  - id: {backport_id}\n")
    summary = text.index("\n    summary:", start)
    end = text.index("\n", summary + 1) + 1
    # After the whole summary: a folded one (`summary: >-`) goes on in deeper
    # indented lines.
    while text.startswith("      ", end):
        end = text.index("\n", end) + 1
    manifest.write_text(text[:end] + lines + text[end:], encoding="utf-8")


def _replace_entry(manifest: Path, backport_id: str, entry: str) -> None:
    text = manifest.read_text(encoding="utf-8")
    start = text.index(f"  - id: {backport_id}\n")
    # Exactly this entry: up to the next one, or to the end of the manifest.
    following = text.find("\n  - id: ", start)
    end = len(text) if following == -1 else following + 1
    generated = text[start:end]
    # The lines `new` filled in from the installed torch must be what the
    # tutorial shows; the reader keeps them as they are.
    for key in ("symbol", "replacement", "signature", "fingerprint", "recorded_from"):
        line = next(
            ln.strip().removeprefix("- ")
            for ln in generated.splitlines()
            if ln.strip().removeprefix("- ").startswith(f"{key}:")
        )
        assert line in entry, f"`new` wrote {line!r}, the tutorial shows another {key}"
    manifest.write_text(text[:start] + entry + text[end:], encoding="utf-8")


def test_the_tutorial_runs_as_written(tmp_path: Path) -> None:
    assert WHEELS is not None
    (tmp_path / "backport-tool").symlink_to(REPO)
    project = tmp_path / "myservice"
    project.mkdir()
    (project / "wheels").mkdir()
    for version in ("2.12.0", "2.13.0"):
        for wheel in Path(WHEELS).glob(f"torch-{version}-*.whl"):
            (project / "wheels" / wheel.name).symlink_to(wheel)
    _shims(tmp_path / "bin")
    env = python_env(
        PATH=f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}",
        BACKPORT_TOOL_CACHE_DIR=str(tmp_path / "cache"),
        PYTHONWARNINGS="ignore",
    )
    output: str | None = None
    ran = 0
    steps = [(page, b) for page in PAGES for b in blocks(page.read_text(encoding="utf-8"))]
    for page, block in steps:
        where = f"docs/{page.name}:{block.line}"
        marker = block.marker or ""
        if marker == "skip":
            continue
        if block.lang == "sh":
            expected_rc = int(marker.split()[1]) if marker.startswith("exit ") else 0
            proc = subprocess.run(
                ["bash", "-c", block.body],
                cwd=project,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            assert proc.returncode == expected_rc, f"{where}: {proc.stdout}{proc.stderr}"
            output = proc.stdout
            ran += 1
        elif block.lang == "text":
            assert output is not None, f"{where}: an output block with no command before it"
            assert _matches(block.body, output), f"{where}: got\n{output}"
            output = None
        elif marker.startswith("write "):
            (project / marker.split(" ", 1)[1]).write_text(block.body, encoding="utf-8")
        elif marker.startswith("replace-entry "):
            _replace_entry(project / "manifest.yaml", marker.split(" ", 1)[1], block.body)
        elif marker.startswith("add-to-entry "):
            _add_to_entry(project / "manifest.yaml", marker.split(" ", 1)[1], block.body)
        elif marker == "manifest-ends-with":
            manifest = (project / "manifest.yaml").read_text(encoding="utf-8")
            assert manifest.endswith(block.body), f"{where}: the manifest ends\n{manifest[-800:]}"
        elif marker == "run-python":
            proc = subprocess.run(
                [sys.executable, "-c", block.body],
                cwd=project,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            assert proc.returncode == 0, f"{where}: {proc.stderr}"
        else:
            pytest.fail(f"{where}: a {block.lang} block without a tutorial marker")
    assert ran >= 14
