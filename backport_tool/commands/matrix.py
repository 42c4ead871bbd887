from __future__ import annotations

import sys

from ..api import manifest_for
from ..matrix import COLUMNS, Matrix, build_matrix
from ..retire import parse_supported
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
        versions = []
        for report, cells in zip(matrix.reports, matrix.cells, strict=True):
            data = report.to_dict(details=True)
            data["backports"] = [cells[b["id"]].to_dict() for b in data["backports"]]
            versions.append(data)
        return dump(
            "matrix",
            {
                "manifest": str(matrix.manifest.path),
                "supported": str(matrix.supported) if matrix.supported is not None else None,
                "versions": versions,
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


def strict_problems(matrix: Matrix) -> list[str]:
    problems = matrix.problems()
    if not problems:
        return []
    lines = [
        "backport-tool: matrix --strict: drift where applies_to or --supported allows the version:"
    ]
    for version, backport_id, cell in problems:
        where = " and ".join("--supported" if i == "supported" else i for i in cell.inside)
        lines.append(f"  {backport_id} on {version} (inside {where}): {'; '.join(cell.drift)}")
    return lines


def run(
    manifest: str | None, sources: list[str], *, fmt: Format, supported: str | None, strict: bool
) -> int:
    loaded = manifest_for(manifest)
    # Parsed before any source is read: a typo costs no wheel reading.
    supported_range = parse_supported(supported, loaded.package) if supported else None
    matrix = build_matrix(sources, loaded, supported=supported_range)
    print(render(matrix, fmt))
    problems = strict_problems(matrix) if strict else []
    if problems:
        sys.stdout.flush()
        print("\n".join(problems), file=sys.stderr)
        return 1
    return 0
