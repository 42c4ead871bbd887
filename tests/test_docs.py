"""The docs must not drift from the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from backport_tool import ManifestError, Status, load_manifest
from backport_tool.cli import build_parser, reference, subcommands

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_cli_reference_is_generated_from_argparse() -> None:
    assert (DOCS / "cli.md").read_text(encoding="utf-8") == reference(), (
        "docs/cli.md is stale; regenerate it with the command at its top"
    )


def test_every_command_is_in_the_readme() -> None:
    readme = (DOCS.parent / "README.md").read_text(encoding="utf-8")
    for name in subcommands(build_parser()):
        assert f"backport-tool {name}" in readme, name


def _known_keys(tmp_path: Path, document: str) -> list[str]:
    # The loader's own "expected one of" list is the schema; read it from there.
    path = tmp_path / "manifest.yaml"
    path.write_text(document, encoding="utf-8")
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    message = str(caught.value)
    keys: str = re.findall(r"expected one of: ([\w, ]+)", message)[0]
    return keys.split(", ")


def test_manifest_reference_names_every_key_and_status(tmp_path: Path) -> None:
    reference = (DOCS / "manifest.md").read_text(encoding="utf-8")
    entry = (
        "  - id: x\n    summary: s\n    applies_to: '>=1'\n    module: m.py\n"
        "    targets: [{symbol: 'a:b', replacement: b%s}]\n"
    )
    documents = [
        "version: 1\npackage: torch\nbackports: []\nbogus: 1\n",
        "version: 1\npackage: torch\nbackports:\n" + entry % "" + "    bogus: 1\n",
        "version: 1\npackage: torch\nbackports:\n" + entry % ", bogus: 1",
        "version: 1\npackage: torch\nbackports:\n" + entry % "" + "    upstream: {bogus: 1}\n",
    ]
    for document in documents:
        keys = _known_keys(tmp_path, document)
        assert keys, document
        for key in keys:
            assert re.search(rf"\b{key}:", reference), f"docs/manifest.md lacks the key {key}"
    for status in Status:
        assert f"| `{status.value}` |" in reference, status


def test_relative_links_in_the_docs_resolve() -> None:
    for page in [DOCS.parent / "README.md", *DOCS.glob("*.md")]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            assert (page.parent / target).exists(), f"{page.name}: broken link {target}"
