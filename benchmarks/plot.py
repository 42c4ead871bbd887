"""Plot the GPU latency ratio of each model (faithful port, refined model) to the
torch 2.11 heuristic against token count, one line per workload, one panel per
model, from realize_bench.py JSON results. Held-out workloads are dashed.

    python benchmarks/plot.py docs/results/gpu_3models.json [LATER.json ...] \
        --out docs/realize_latency.png

With several files, a later file's row replaces an earlier one for the same
workload and token count.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from tables import MODELS, load


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+")
    parser.add_argument("--out", required=True)
    parser.add_argument("--device", default="NVIDIA H100 80GB HBM3")
    parser.add_argument("--torch", default="2.11.0+cu130")
    args = parser.parse_args()
    series: dict[tuple[str, str], list[tuple[int, float, float, float]]] = defaultdict(list)
    held_out: set[str] = set()
    for row in load(args.results):
        if row.get("held_out"):
            held_out.add(row["workload"])
        for model, ratio in row.get("ratios", {}).items():
            series[(model, row["workload"])].append(
                (row["tokens"], ratio["median"], ratio["min"], ratio["max"])
            )
    fig, axes = plt.subplots(1, len(MODELS), figsize=(15, 6), sharey=True)
    for ax, model in zip(axes, MODELS, strict=True):
        ax.set_prop_cycle(color=plt.get_cmap("tab20").colors)
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
    fig.suptitle(f"realize-on-reuse models on {args.device}, torch {args.torch}")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
