"""Render realize_bench.py JSON results as the Markdown tables of
docs/benchmarks.md: a summary of latency ratios (workload x token count, both
models), the goals of the refined model, then one table per workload.

    python benchmarks/tables.py docs/results/gpu_3models.json [LATER.json ...] > tables.md

With several files, a later file's row replaces an earlier one for the same
workload and token count (a re-measurement of some cases).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from typing import Any

MODELS = ("faithful", "refined")
MODES = ("original", *MODELS)


def _flips(stats: dict[str, Any]) -> str:
    return f"{stats['flips']} ({stats['flips_to_realize']}/{stats['flips_to_inline']})"


def _ratio(row: dict[str, Any], model: str) -> str:
    ratio = row.get("ratios", {}).get(model)
    if ratio is None:
        return "-"
    return f"{ratio['median']:.3f} ({ratio['min']:.3f}-{ratio['max']:.3f})"


def summary(rows: list[dict[str, Any]]) -> list[str]:
    tokens = sorted({row["tokens"] for row in rows})
    by_name: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for row in rows:
        by_name[row["workload"]][row["tokens"]] = row
    head = "| workload | model | " + " | ".join(str(t) for t in tokens) + " |"
    lines = [head, "|---|---|" + "---|" * len(tokens)]
    for name, cells in by_name.items():
        label = name + (" (held out)" if next(iter(cells.values()))["held_out"] else "")
        for model in MODELS:
            values = []
            for t in tokens:
                ratio = cells.get(t, {}).get("ratios", {}).get(model)
                values.append(f"{ratio['median']:.3f}" if ratio else "-")
            lines.append(f"| {label} | {model} | " + " | ".join(values) + " |")
    return lines


def goals(rows: list[dict[str, Any]]) -> list[str]:
    timed = [row for row in rows if "ratios" in row]
    worst = max(timed, key=lambda row: row["ratios"]["refined"]["median"], default=None)
    over = [
        f"{row['workload']}@{row['tokens']} ({row['ratios']['refined']['median']:.3f})"
        for row in timed
        if row["ratios"]["refined"]["median"] > 1.01
    ]
    broadcast = [
        row for row in timed if row["workload"] == "broadcast-5-reads" and row["tokens"] >= 2048
    ]
    lines = ["| goal | result | met |", "|---|---|---|"]
    if worst is not None:
        lines.append(
            "| refined / 2.11 median <= 1.01 on every workload x token count "
            f"| worst {worst['ratios']['refined']['median']:.3f} "
            f"({worst['workload']}@{worst['tokens']}); over 1.01: {', '.join(over) or 'none'} "
            f"| {'yes' if not over else 'no'} |"
        )
    if broadcast:
        values = ", ".join(
            f"{row['ratios']['refined']['median']:.3f}@{row['tokens']}" for row in broadcast
        )
        met = all(row["ratios"]["refined"]["median"] <= 0.90 for row in broadcast)
        lines.append(
            f"| <= 0.90 on broadcast-5-reads at 2048 and 8192 | {values} "
            f"| {'yes' if met else 'no'} |"
        )
    wrong = [f"{row['workload']}@{row['tokens']}" for row in rows if not row["correct"]]
    listed = f" (wrong: {', '.join(wrong)})" if wrong else ""
    lines.append(
        f"| outputs equal eager within tolerance | {len(rows) - len(wrong)} of {len(rows)} "
        f"cases{listed} | {'yes' if not wrong else 'no'} |"
    )
    return lines


def per_workload(rows: list[dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    seen: set[str] = set()
    for row in rows:
        name = row["workload"]
        if name not in seen:
            if not seen or row["held_out"] != rows[rows.index(row) - 1]["held_out"]:
                lines += [
                    "",
                    "### Held-out workloads (not used to choose the rules)"
                    if row["held_out"]
                    else "### Tuning workloads",
                ]
            seen.add(name)
            lines += [
                "",
                f"#### {name}" + (" (held out)" if row["held_out"] else ""),
                "",
                row["notes"],
                "",
                "| tokens | flips faithful | flips refined | code as 2.11's "
                "| kernels 2.11 / faithful / refined | est. bytes 2.11 / faithful / refined "
                "| median ms 2.11 | faithful / 2.11 | refined / 2.11 | correct |",
                "|---|---|---|---|---|---|---|---|---|---|",
            ]
        stats = row["stats"]
        same = " / ".join(
            "same" if stats[m].get("code") == stats["original"].get("code") else "differs"
            for m in MODELS
        )
        kernels = " / ".join(str(stats[m]["kernels"]) for m in MODES)
        estimated = " / ".join(format(stats[m]["bytes"], ",") for m in MODES)
        latency = row.get("latency_ms", {}).get("original")
        median_ms = f"{sorted(latency)[len(latency) // 2]:.4f}" if latency else "-"
        lines.append(
            f"| {row['tokens']} | {_flips(stats['faithful'])} | {_flips(stats['refined'])} "
            f"| {same} | {kernels} | {estimated} "
            f"| {median_ms} | {_ratio(row, 'faithful')} | {_ratio(row, 'refined')} "
            f"| {'yes' if row['correct'] else 'NO'} |"
        )
    return lines


def load(paths: list[str]) -> list[dict[str, Any]]:
    """The result rows of ``paths``; later files replace rows of earlier ones."""
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for path in paths:
        with open(path) as handle:
            for row in json.load(handle)["results"]:
                rows[(row["workload"], row["tokens"])] = row
    return list(rows.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+")
    args = parser.parse_args()
    rows = load(args.results)
    timed = any("ratios" in row for row in rows)
    out = [*summary(rows), "", *goals(rows)] if timed else []
    print("\n".join(out + per_workload(rows)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
