"""Plot the GPU latency ratio (cost model / 2.11 heuristic) against token count,
one line per workload, from realize_bench.py JSON results.

    python benchmarks/plot.py docs/results/gpu_*.json --out docs/realize_latency.png
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    series: dict[str, list[tuple[int, float, float, float]]] = defaultdict(list)
    meta = {}
    for path in args.results:
        with open(path) as handle:
            data = json.load(handle)
        meta = data["meta"]
        for row in data["results"]:
            if "ratio_median" in row:
                series[row["workload"]].append(
                    (row["tokens"], row["ratio_median"], row["ratio_min"], row["ratio_max"])
                )
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for name, points in sorted(series.items()):
        points.sort()
        tokens = [p[0] for p in points]
        median = [p[1] for p in points]
        low = [p[1] - p[2] for p in points]
        high = [p[3] - p[1] for p in points]
        ax.errorbar(tokens, median, yerr=[low, high], marker="o", capsize=3, label=name)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("tokens")
    ax.set_ylabel("latency ratio, cost model / torch 2.11 heuristic (lower is better)")
    ax.set_title(f"realize-on-reuse backport on {meta.get('device')} (torch {meta.get('torch')})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
