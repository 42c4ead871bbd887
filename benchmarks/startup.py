"""Startup cost of backport-tool: `import torch` with and without `apply()`.

Runs each command in a fresh interpreter, in interleaved pairs (A, B, C in a
shuffled order each round) so that machine noise hits all of them alike, and
reports the median of the per-round ratios with its spread.

    python benchmarks/startup.py --rounds 80

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


def timed(code: str, env: dict[str, str]) -> tuple[float, float]:
    """Wall-clock and CPU (user + system) seconds of one fresh interpreter."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{code!r} exited {proc.returncode}")
    return wall, usage.ru_utime + usage.ru_stime


def quantiles(values: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(values, n=4)
    return q[0], statistics.median(values), q[2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=80)
    parser.add_argument("--eager-rounds", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--budget", type=float, default=1.02, help="max lazy/plain median ratio")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKPORT_TOOL_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    for _ in range(args.warmup):  # page cache, .pyc files, the startup plan
        for code in COMMANDS.values():
            timed(code, env)
    wall: dict[str, list[float]] = {name: [] for name in COMMANDS}
    cpu: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for round_ in range(args.rounds):
        names = list(COMMANDS)
        if round_ >= args.eager_rounds:
            names.remove("apply(eager=True)")  # slow and far from the budget
        random.shuffle(names)
        for name in names:
            w, c = timed(COMMANDS[name], env)
            wall[name].append(w)
            cpu[name].append(c)

    def ratios(times: dict[str, list[float]]) -> dict[str, tuple[float, float, float]]:
        base = times["import torch"]
        return {
            name: quantiles([t / b for t, b in zip(values, base, strict=False)])
            for name, values in times.items()
            if name != "import torch"
        }

    result = {
        "python": sys.version.split()[0],
        "rounds": args.rounds,
        "eager_rounds": min(args.eager_rounds, args.rounds),
        "seconds": {name: quantiles(values) for name, values in wall.items()},
        "cpu_seconds": {name: quantiles(values) for name, values in cpu.items()},
        "ratios": ratios(wall),
        "cpu_ratios": ratios(cpu),
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
        print(
            f"{args.rounds} interleaved rounds ({result['eager_rounds']} with eager), "
            f"Python {result['python']}"
        )
        print("| command | wall s, median (q1-q3) | wall ratio | CPU ratio |")
        print("|---|---|---|---|")
        for name, (q1, med, q3) in result["seconds"].items():
            cells = ["1", "1"]
            if name in result["ratios"]:
                cells = [
                    "{1:.4f} ({0:.4f}-{2:.4f})".format(*result[key][name])
                    for key in ("ratios", "cpu_ratios")
                ]
            print(f"| `{COMMANDS[name]}` | {med:.3f} ({q1:.3f}-{q3:.3f}) | {' | '.join(cells)} |")
        verdict = "within" if result["budget"]["ok"] else "OVER"
        print(
            f"lazy apply(): median wall ratio {lazy_ratio:.4f}, {verdict} the {args.budget} budget"
        )
    return 0 if result["budget"]["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
