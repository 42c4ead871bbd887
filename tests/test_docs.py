"""The docs must not drift from the code."""

from __future__ import annotations

from pathlib import Path

from backport_tool.cli import build_parser, reference

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_cli_reference_is_generated_from_argparse() -> None:
    assert (DOCS / "cli.md").read_text(encoding="utf-8") == reference(), (
        "docs/cli.md is stale; regenerate it with the command at its top"
    )


def test_every_command_is_in_the_readme() -> None:
    readme = (DOCS.parent / "README.md").read_text(encoding="utf-8")
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name in commands:
        assert f"backport-tool {name}" in readme, name
