"""Plot the GPU latency ratio of each model (faithful port, refined model) to the
torch 2.11 heuristic against token count, one line per workload, one panel per
model, from realize_bench.py JSON results. Held-out workloads are dashed.

    python benchmarks/plot.py docs/results/gpu.json --out docs/realize_latency.png
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

MODELS = ("faithful", "refined")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    series: dict[tuple[str, str], list[tuple[int, float, float, float]]] = defaultdict(list)
    held_out: set[str] = set()
    meta = {}
    for path in args.results:
        with open(path) as handle:
            data = json.load(handle)
        meta = data["meta"]
        for row in data["results"]:
            if row.get("held_out"):
                held_out.add(row["workload"])
            for model, ratio in row.get("ratios", {}).items():
                series[(model, row["workload"])].append(
                    (row["tokens"], ratio["median"], ratio["min"], ratio["max"])
                )
    fig, axes = plt.subplots(1, len(MODELS), figsize=(15, 6), sharey=True)
    for ax, model in zip(axes, MODELS, strict=True):
        for (name_model, name), points in sorted(series.items()):
            if name_model != model:
                continue
            points.sort()
            ax.errorbar(
                [p[0] for p in points],
                [p[1] for p in points],
                yerr=[[p[1] - p[2] for p in points], [p[3] - p[1] for p in points]],
                marker="o",
                capsize=3,
                linestyle="--" if name in held_out else "-",
                label=name + (" (held out)" if name in held_out else ""),
            )
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("tokens")
        ax.set_title(f"{model} / torch 2.11 heuristic")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("latency ratio (lower is better)")
    axes[-1].legend(fontsize=7, loc="upper right")
    fig.suptitle(f"realize-on-reuse models on {meta.get('device')} (torch {meta.get('torch')})")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
