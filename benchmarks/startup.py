"""Startup cost of backport-tool: `import torch` with and without `apply()`.

Runs each command in a fresh interpreter, in interleaved pairs (A, B, C in a
shuffled order each round) so that machine noise hits all of them alike, and
reports the median of the per-round ratios with its spread.

    python benchmarks/startup.py --rounds 80 --out docs/results/startup-2.11-cpu.json

Each child also times itself: `import torch`, then the rest of its command
(`import backport_tool; backport_tool.apply()`), with time.perf_counter. The
in-process ratio (torch + rest) / torch of the same child is free of the
round-to-round noise that dominates the wall ratio on a shared machine, and
"outside" (wall minus both) is what the interpreter's start and exit cost.

Run it with the interpreter of a venv that has torch and backport-tool
installed, or with a checkout first on PYTHONPATH (the warm-up rounds write
its .pyc files). The exit status is 1 when the lazy median wall ratio is over
the budget. `--out` writes the JSON result, with every round's raw times.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time

# name -> (the first statement, the rest): the command is "import torch, REST".
COMMANDS = {
    "import torch": ("import torch", ""),
    "lazy apply()": ("import torch", "import backport_tool; backport_tool.apply()"),
    "apply(eager=True)": ("import torch", "import backport_tool; backport_tool.apply(eager=True)"),
}

# What each child runs: the command, timed from inside.
CHILD = (
    "import sys, time; _a = time.perf_counter(); {first}; _b = time.perf_counter(); "
    "{rest}; _c = time.perf_counter(); sys.stdout.write(f'{{_b - _a}} {{_c - _b}}\\n')"
)


def switch(name: str) -> bool:
    """Whether environment variable ``name`` changes what apply() does."""
    return name.startswith("BACKPORT_TOOL_") and name != "BACKPORT_TOOL_CACHE_DIR"


def command_text(name: str) -> str:
    first, rest = COMMANDS[name]
    return f"{first}; {rest}" if rest else first


class Run:
    """One fresh interpreter's times, in seconds."""

    def __init__(self, wall: float, cpu: float, torch: float, rest: float) -> None:
        self.wall = wall
        self.cpu = cpu  # user + system of the child
        self.torch = torch  # `import torch`, timed inside the child
        self.rest = rest  # the rest of the command, timed inside the child


def timed(name: str, env: dict[str, str]) -> Run:
    """Run command ``name`` in one fresh interpreter."""
    first, rest = COMMANDS[name]
    code = CHILD.format(first=first, rest=rest or "pass")
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    proc.stdout.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{command_text(name)!r} exited {proc.returncode}")
    torch, rest_s = (float(x) for x in out.split()[-2:])
    return Run(wall, usage.ru_utime + usage.ru_stime, torch, rest_s)


def quantiles(values: list[float]) -> tuple[float, float, float]:
    """(q1, median, q3)."""
    if len(values) < 2:  # a smoke run
        return values[0], values[0], values[0]
    q = statistics.quantiles(values, n=4)
    return q[0], statistics.median(values), q[2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=80)
    parser.add_argument("--eager-rounds", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--budget", type=float, default=1.01, help="max lazy/plain median ratio")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--out", help="also write the JSON result, with raw times, here")
    args = parser.parse_args()

    # The switches and the manifest are the defaults; the plan cache stays where it is set.
    env = {k: v for k, v in os.environ.items() if not switch(k)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    for _ in range(args.warmup):  # page cache, .pyc files, the startup plan
        for name in COMMANDS:
            timed(name, env)
    runs: dict[str, list[Run]] = {name: [] for name in COMMANDS}
    for round_ in range(args.rounds):
        names = list(COMMANDS)
        if round_ >= args.eager_rounds:
            names.remove("apply(eager=True)")  # slow and far from the budget
        random.shuffle(names)
        for name in names:
            runs[name].append(timed(name, env))
    ran = [name for name in COMMANDS if runs[name]]
    base = runs["import torch"]

    def ratios(field: str) -> dict[str, tuple[float, float, float]]:
        # Per round: the command over `import torch` of the same round.
        return {
            name: quantiles(
                [
                    getattr(r, field) / getattr(b, field)
                    for r, b in zip(runs[name], base, strict=False)
                ]
            )
            for name in ran
            if name != "import torch"
        }

    result = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "commands": {name: command_text(name) for name in ran},
        "rounds": args.rounds,
        "eager_rounds": min(args.eager_rounds, args.rounds),
        "seconds": {name: quantiles([r.wall for r in runs[name]]) for name in ran},
        "cpu_seconds": {name: quantiles([r.cpu for r in runs[name]]) for name in ran},
        "ratios": ratios("wall"),
        "cpu_ratios": ratios("cpu"),
        # Inside each child: (import torch + the rest) / import torch.
        "in_process_ratios": {
            name: quantiles([(r.torch + r.rest) / r.torch for r in runs[name]])
            for name in ran
            if name != "import torch"
        },
        "in_process_ms": {
            name: {
                "import torch": quantiles([r.torch * 1e3 for r in runs[name]]),
                "rest": quantiles([r.rest * 1e3 for r in runs[name]]),
                "outside": quantiles([(r.wall - r.torch - r.rest) * 1e3 for r in runs[name]]),
            }
            for name in ran
        },
        "raw": {
            name: [
                {"wall": r.wall, "cpu": r.cpu, "torch": r.torch, "rest": r.rest} for r in runs[name]
            ]
            for name in ran
        },
    }
    lazy_ratio = result["ratios"]["lazy apply()"][1]
    result["budget"] = {
        "limit": args.budget,
        "lazy_median_ratio": lazy_ratio,
        "ok": lazy_ratio <= args.budget,
    }
    text = json.dumps(result, indent=2)
    if args.out:
        with open(args.out, "w") as out:
            out.write(text + "\n")
    if args.json:
        print(text)
    else:
        print(
            f"{args.rounds} interleaved rounds ({result['eager_rounds']} with eager), "
            f"Python {result['python']}"
        )
        print("| command | wall s, median (q1-q3) | wall ratio | CPU ratio | in-process ratio |")
        print("|---|---|---|---|---|")
        for name in ran:
            q1, med, q3 = result["seconds"][name]
            cells = ["1", "1", "1"]
            if name != "import torch":
                cells = [
                    "{1:.4f} ({0:.4f}-{2:.4f})".format(*result[key][name])
                    for key in ("ratios", "cpu_ratios", "in_process_ratios")
                ]
            text = command_text(name)
            print(f"| `{text}` | {med:.3f} ({q1:.3f}-{q3:.3f}) | {' | '.join(cells)} |")
        print("| command | import torch ms | rest ms | outside ms (start, exit) |")
        print("|---|---|---|---|")
        for name in ran:
            parts = result["in_process_ms"][name]
            cells = [
                "{1:.1f} ({0:.1f}-{2:.1f})".format(*parts[key])
                for key in ("import torch", "rest", "outside")
            ]
            print(f"| {name} | {' | '.join(cells)} |")
        verdict = "within" if result["budget"]["ok"] else "OVER"
        print(
            f"lazy apply(): median wall ratio {lazy_ratio:.4f}, {verdict} the {args.budget} budget"
        )
    return 0 if result["budget"]["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
