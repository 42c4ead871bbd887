"""Startup cost of backport-tool: `import torch` with and without `apply()`.

Runs each command in a fresh interpreter, in interleaved pairs (A, B, C in a
shuffled order each round) so that machine noise hits all of them alike, and
reports the median of the per-round ratios with its spread.

    python benchmarks/startup.py --rounds 40

Run it with the interpreter of a venv that has torch and backport-tool
installed (not editable: a source checkout without .pyc files is slower).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "import torch": "import torch",
    "lazy apply()": "import torch, backport_tool; backport_tool.apply()",
    "apply(eager=True)": "import torch, backport_tool; backport_tool.apply(eager=True)",
}


def timed(code: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    return time.perf_counter() - start


def quantiles(values: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(values, n=4)
    return q[0], statistics.median(values), q[2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--budget", type=float, default=1.02, help="max lazy/plain median ratio")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKPORT_TOOL_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    for _ in range(args.warmup):  # page cache, .pyc files, the startup plan
        for code in COMMANDS.values():
            timed(code, env)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.rounds):
        names = list(COMMANDS)
        random.shuffle(names)
        for name in names:
            times[name].append(timed(COMMANDS[name], env))
    base = times["import torch"]
    result = {
        "python": sys.version.split()[0],
        "rounds": args.rounds,
        "seconds": {name: quantiles(values) for name, values in times.items()},
        "ratios": {
            name: quantiles([t / b for t, b in zip(values, base, strict=True)])
            for name, values in times.items()
            if name != "import torch"
        },
    }
    lazy_ratio = result["ratios"]["lazy apply()"][1]
    result["budget"] = {
        "limit": args.budget,
        "lazy_median_ratio": lazy_ratio,
        "ok": lazy_ratio <= args.budget,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{args.rounds} interleaved rounds, Python {result['python']}")
        print("| command | median s (q1-q3) | ratio to import torch, median (q1-q3) |")
        print("|---|---|---|")
        for name, (q1, med, q3) in result["seconds"].items():
            ratio = "1"
            if name in result["ratios"]:
                r1, rm, r3 = result["ratios"][name]
                ratio = f"{rm:.4f} ({r1:.4f}-{r3:.4f})"
            print(f"| `{COMMANDS[name]}` | {med:.3f} ({q1:.3f}-{q3:.3f}) | {ratio} |")
        verdict = "within" if result["budget"]["ok"] else "OVER"
        print(f"lazy apply(): median ratio {lazy_ratio:.4f}, {verdict} the {args.budget} budget")
    return 0 if result["budget"]["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
