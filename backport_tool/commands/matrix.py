from __future__ import annotations

from ..matrix import COLUMNS, Matrix, build_matrix
from ._output import Format, dump


def _text(rows: list[tuple[str, ...]]) -> list[str]:
    table = [COLUMNS, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in table
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def _markdown(rows: list[tuple[str, ...]]) -> list[str]:
    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return [line(COLUMNS), line(tuple("---" for _ in COLUMNS)), *map(line, rows)]


def render(matrix: Matrix, fmt: Format) -> str:
    if fmt is Format.JSON:
        return dump(
            "matrix",
            {
                "manifest": str(matrix.manifest.path),
                "versions": [r.to_dict(details=True) for r in matrix.reports],
            },
        )
    out: list[str] = []
    for backport in matrix.manifest.backports:
        rows = matrix.rows(backport.id)
        if fmt is Format.MARKDOWN:
            out += [f"### {backport.id}", "", *_markdown(rows), ""]
        else:
            out += [f"{backport.id}", *_text(rows), ""]
    return "\n".join(out).rstrip("\n")


def run(manifest: str | None, sources: list[str], *, fmt: Format) -> int:
    print(render(build_matrix(sources, manifest), fmt))
    return 0
