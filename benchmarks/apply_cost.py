"""What applying a patch set costs once torch._inductor is imported, and what
`check`'s process walk costs per target.

    python benchmarks/apply_cost.py --parts apply --rounds 30 --out apply.json
    python benchmarks/apply_cost.py --parts walk --walk-rounds 5 --out walk.json
    python benchmarks/apply_cost.py --parts scoped --rounds 10 --out scoped.json

Every part runs in interleaved rounds: each round runs each of its
measurements once, in a shuffled order, so that machine noise hits all of
them alike. Results are medians with quartiles over the rounds; ratios are
taken per round.

Part `apply` (this process first imports torch._inductor,
torch._inductor.compile_fx and every module that holds a declared site, so
that every declared copy is bound):

- warm `apply(eager=True)` in this process, after a warm-up apply and revert
  (module loading excluded). Each repetition starts from `revert()` and
  `backport_tool.state.reset()`, so it re-reads the manifest and re-runs the
  backport module, as a fresh process would. Reported per declared site (a
  target or a declared copy) and as a ratio to `import torch._inductor` in a
  fresh interpreter, timed in the same round. Sets: the bundled manifest (its
  default backport, inductor-realize-on-reuse-refined), the same with
  BACKPORT_TOOL_ENABLE=inductor-realize-on-reuse (the opt-in faithful port,
  which then takes the target), and a synthetic set of real torch._inductor
  functions with their copies (`--targets`, 10).
- cold `apply(eager=True)`: the first one of a fresh interpreter that has
  imported the same modules (backport-tool's own modules and the backport
  module load inside it), in the first `--cold-rounds` rounds.
- references, measured like a warm apply in the same rounds: `apply(eager=True)`
  of the bundled manifest with every backport disabled (what an apply costs
  before it patches anything); the same target patched as a hand-written
  patch does it (`torch.__version__` compared with packaging, then an
  assignment); and the bundled set's warm apply right after an identical
  untimed one instead of after a gc.collect(), which tells how much of the
  warm apply is paid for running with the CPU caches cold.
- warm lazy `apply()` of the bundled manifest in a fresh interpreter after
  `import torch` only: the plan cached, after an apply and revert in that
  interpreter; `--lazy-reps` repetitions per interpreter, one per round.

Part `scoped` (the same process state as part `apply`): `with
backport_tool.enabled(ID, manifest=...)` for each set. The first scope after
`revert()` and `backport_tool.state.reset()`, which decides, verifies and
builds the backport, once per round; then `--scoped-reps` scopes whose
`__enter__` and `__exit__` are timed apart (the per-round median of each);
and, for comparison, a warm `apply(eager=True)` plus `revert()` per scope
(`--scoped-apply-reps` per round, no state reset).

Part `walk`: `backport_tool.references.undeclared` (check's walk) for 1 search
and for all the synthetic targets in one walk, the same targets walked one at a
time, and the whole `backport_tool.check()` of the bundled and of the
synthetic manifest.

The synthetic set is written to a temp dir: a manifest whose targets carry the
copies that `backport_tool.copysites.find_copies` finds in the installed torch,
and a module of thin wrappers (`*args, **kwargs`, calling
`backport_tool.original(...)`); `backport_tool.lock` then fills each target's
signature and fingerprint and the module's sha256, so apply verifies them.

Run it with the torch 2.11 interpreter and the project on PYTHONPATH.
Timings are wall-clock (time.perf_counter); each in-process repetition runs
after a gc.collect(), so that a collection of earlier garbage does not land in
it.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

import backport_tool
from backport_tool import load_manifest, patcher, state
from backport_tool.copysites import find_copies, installed_tree
from backport_tool.manifest import SymbolRef
from backport_tool.references import Search, undeclared
from backport_tool.static import StaticIndex

# Real torch._inductor functions (plain functions, defined where named) that
# other torch modules copy with `from ... import`: 6 to 17 copies each.
SYNTHETIC_TARGETS = (
    "torch._inductor.utils:sympy_product",
    "torch._inductor.utils:sympy_subs",
    "torch._inductor.utils:sympy_index_symbol",
    "torch._inductor.codecache:code_hash",
    "torch._inductor.utils:sympy_index_symbol_with_prefix",
    "torch._inductor.utils:get_kernel_metadata",
    "torch._inductor.utils:use_aten_gemm_kernels",
    "torch._inductor.utils:get_fused_kernel_name",
    "torch._inductor.utils:ceildiv",
    "torch._inductor.codecache:get_path",
)
SYNTHETIC_ID = "synthetic-targets"
DEFAULT_ID = "inductor-realize-on-reuse-refined"
FAITHFUL_ID = "inductor-realize-on-reuse"  # opt-in
ENABLE_ENV = "BACKPORT_TOOL_ENABLE"
# What the first torch.compile imports; importing a copy's module before it
# can hit a circular import inside torch and leave half-made modules behind.
PRELOAD = ("torch._inductor", "torch._inductor.compile_fx")

Row = dict[str, float]  # one round's times, by measurement

SITE_BUDGET_MS = 2.0
LAZY_BUDGET_MS = 5.0
SCOPE_BUDGET_MS = 1.0  # entering, and leaving, an enabled() scope


def stats(values: list[float]) -> dict[str, Any]:
    """Median and quartiles, with the raw samples."""
    q1, q3 = (values[0], values[0])
    if len(values) >= 2:
        q1, _, q3 = statistics.quantiles(values, n=4)
    return {
        "median": statistics.median(values),
        "q1": q1,
        "q3": q3,
        "n": len(values),
        "samples": values,
    }


def switch(name: str) -> bool:
    """Whether environment variable ``name`` changes what apply() does."""
    return name.startswith("BACKPORT_TOOL_") and name != "BACKPORT_TOOL_CACHE_DIR"


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not switch(k)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def fresh_wall(code: str, env: dict[str, str]) -> float:
    """Wall-clock seconds of a fresh interpreter running ``code``."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], env=env, check=False)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{code!r} exited {proc.returncode}")
    return wall


def fresh_json(code: str, env: dict[str, str]) -> dict[str, Any]:
    """The last line a fresh interpreter running ``code`` prints, as JSON."""
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode:
        raise SystemExit(f"child exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def import_all(modules: list[str]) -> dict[str, str]:
    """Import ``modules`` after PRELOAD; the ones that fail, with why."""
    failed: dict[str, str] = {}
    for module in [*PRELOAD, *modules]:
        try:
            importlib.import_module(module)
        except Exception as exc:
            failed[module] = f"{type(exc).__name__}: {exc}"
    return failed


# --- the synthetic patch set -------------------------------------------------


def build_synthetic(directory: Path, count: int) -> dict[str, Any]:
    """Write a manifest and backport module whose targets are the first
    ``count`` of SYNTHETIC_TARGETS, each with the copies `find_copies` finds in
    the installed torch; then `backport_tool.lock` it."""
    index = StaticIndex(installed_tree("torch"))
    targets = []
    wrappers = []
    start = time.perf_counter()
    for symbol in SYNTHETIC_TARGETS[:count]:
        module, _, qualname = symbol.partition(":")
        found = find_copies(index, SymbolRef(module, qualname))
        copies = [str(site) for site in found.sites]
        targets.append({"symbol": symbol, "replacement": qualname, "copies": copies})
        wrappers.append(
            f"def {qualname}(*args, **kwargs):\n"
            f"    return backport_tool.original({symbol!r})(*args, **kwargs)\n"
        )
    find_seconds = time.perf_counter() - start
    module_file = directory / "synthetic.py"
    module_file.write_text(
        '"""Thin wrappers: each calls the original it replaces."""\n\n'
        "import backport_tool\n\n\n" + "\n\n".join(wrappers)
    )
    backport = {
        "id": SYNTHETIC_ID,
        "summary": "real torch._inductor functions with copies, thin wrappers",
        "applies_to": ">=2.11.0,<2.12",
        "module": module_file.name,
        "targets": targets,
    }
    path = directory / "manifest.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "package": "torch", "backports": [backport]}))
    start = time.perf_counter()
    entries = backport_tool.lock(path)
    lock_seconds = time.perf_counter() - start
    locked = yaml.safe_load(path.read_text())["backports"][0]["targets"]
    for before, after in zip(targets, locked, strict=True):
        if after.get("copies", []) != before["copies"] or "fingerprint" not in after:
            raise SystemExit(f"lock disagrees with find_copies on {before['symbol']}: {after}")
    return {
        "manifest": str(path),
        "targets": len(targets),
        "copies": sum(len(t["copies"]) for t in targets),
        "copies_per_target": {t["symbol"]: len(t["copies"]) for t in targets},
        "find_copies_seconds": find_seconds,
        "lock_seconds": lock_seconds,
        "locked": [e.to_dict() for e in entries],
    }


REPO = Path(__file__).resolve().parent.parent


def shown(path: Path) -> str:
    """How the results name a manifest: its path in the repository, else only
    its file name, never a directory of the machine that ran it."""
    try:
        return path.resolve().relative_to(REPO).as_posix()
    except ValueError:
        return f"<outside the repository>/{path.name}"


# --- part apply ----------------------------------------------------------------


@contextlib.contextmanager
def environ(extra: dict[str, str]) -> Iterator[None]:
    before = {name: os.environ.get(name) for name in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def clean() -> None:
    backport_tool.revert()
    state.reset()


@contextlib.contextmanager
def timed_apply(
    manifest: Path, env: dict[str, str], *, collect: bool = True
) -> Iterator[tuple[float, backport_tool.Report]]:
    """apply(eager=True) of ``manifest`` from a clean state, after a
    gc.collect() unless ``collect`` is False: its milliseconds and its report,
    while what it applied is in force."""
    clean()
    if collect:
        gc.collect()
    # The environment stays set until reset() has put back what apply
    # exported for subprocesses (it remembers the value it found).
    with environ(env):
        start = time.perf_counter()
        report = backport_tool.apply(manifest, eager=True)
        elapsed = time.perf_counter() - start
        try:
            yield elapsed * 1e3, report
        finally:
            clean()


def ratios_to_inductor(name: str, per_round: list[Row]) -> list[float]:
    """Each round's ``name`` over that round's ``import torch._inductor``."""
    return [r[name] / (r["import torch._inductor"] * 1e3) for r in per_round]


class ApplySet:
    """One patch set, applied eagerly."""

    def __init__(self, name: str, manifest: Path, backport_id: str, env: dict[str, str]) -> None:
        self.name = name
        self.manifest = manifest
        self.backport_id = backport_id
        self.env = env
        backport = load_manifest(manifest).get(backport_id)
        self.targets = [str(t.symbol) for t in backport.targets]
        self.copies = [str(c) for t in backport.targets for c in t.copies]
        self.warm_ms: list[float] = []
        self.cold_ms: list[float] = []
        self.bound = 0

    @property
    def sites(self) -> int:
        return len(self.targets) + len(self.copies)

    @property
    def modules(self) -> list[str]:
        return sorted({s.partition(":")[0] for s in self.targets + self.copies})

    def apply_once(self) -> float:
        """Milliseconds of one apply(eager=True), from a clean state."""
        with timed_apply(self.manifest, self.env) as (ms, report):
            status = {r.id: r.status.value for r in report.results}
            if status.get(self.backport_id) != "applied":
                raise SystemExit(f"{self.name}: {status}: {report.results}")
            self.bound = len(self.targets) + len(patcher.bound_copies(self.backport_id))
        return ms

    def cold_once(self, env: dict[str, str]) -> None:
        code = textwrap.dedent(
            f"""
            import importlib, json, os, time
            for module in {[*PRELOAD, *self.modules]!r}:
                try:
                    importlib.import_module(module)
                except Exception:
                    pass
            import backport_tool
            os.environ.update({self.env!r})
            start = time.perf_counter()
            report = backport_tool.apply({str(self.manifest)!r}, eager=True)
            elapsed = time.perf_counter() - start
            status = {{r.id: r.status.value for r in report.results}}
            print(json.dumps({{"ms": elapsed * 1e3, "status": status}}))
            """
        )
        got = fresh_json(code, env)
        if got["status"].get(self.backport_id) != "applied":
            raise SystemExit(f"cold {self.name}: {got['status']}")
        self.cold_ms.append(float(got["ms"]))

    def result(self, first_ms: float, per_round: list[dict[str, float]]) -> dict[str, Any]:
        per_site = [ms / self.sites for ms in self.warm_ms]
        ratio = ratios_to_inductor(self.name, per_round)
        return {
            "manifest": shown(self.manifest),
            "backport": self.backport_id,
            "targets": len(self.targets),
            "declared_copies": len(self.copies),
            "declared_sites": self.sites,
            "bound_sites": self.bound,
            "first_in_process_ms": first_ms,
            "cold_fresh_ms": stats(self.cold_ms) if self.cold_ms else None,
            "warm_ms": stats(self.warm_ms),
            "warm_ms_per_site": stats(per_site),
            "warm_ratio_to_import_inductor": stats(ratio),
            "warm_ratio_per_site_to_import_inductor": stats([x / self.sites for x in ratio]),
            "budget": {
                "limit_ms_per_site": SITE_BUDGET_MS,
                "ok": statistics.median(per_site) <= SITE_BUDGET_MS,
            },
        }


class References:
    """What any apply pays, measured like a set's warm apply (from a clean
    state, after a gc.collect()) in the same rounds: the fixed cost of an
    apply that patches nothing, the patch as a hand-written one makes it, and
    the bundled set's apply with the CPU caches warm from an identical apply
    just before it instead of a collection."""

    NOTHING = "apply(eager=True), every backport disabled"
    BY_HAND = "hand-written patch: version gate and setattr, no checks"
    WARM_CACHES = "bundled, right after an identical untimed apply (no gc.collect())"

    def __init__(self, bundled: ApplySet) -> None:
        self.manifest = bundled.manifest
        self.ms: dict[str, list[float]] = {self.NOTHING: [], self.BY_HAND: [], self.WARM_CACHES: []}
        # Imported by part_apply's preloading already (see PRELOAD).
        self.owner = importlib.import_module("torch._inductor.ir").StorageBox
        self.original = self.owner.should_realize_on_reuse
        with timed_apply(self.manifest, {}):
            # The bundled default's function, as a hand-written patch module
            # would hold it; revert() leaves the function itself usable.
            self.replacement = self.owner.should_realize_on_reuse
        if self.replacement is self.original:
            raise SystemExit("the bundled set did not patch StorageBox.should_realize_on_reuse")

    def steps(self, row: Row) -> list[Callable[[], None]]:
        def timed(name: str, measure: Callable[[], float]) -> Callable[[], None]:
            def step() -> None:
                row[name] = measure()
                self.ms[name].append(row[name])

            return step

        return [
            timed(self.NOTHING, self.nothing),
            timed(self.BY_HAND, self.by_hand),
            timed(self.WARM_CACHES, self.warm_caches),
        ]

    def nothing(self) -> float:
        with timed_apply(self.manifest, {"BACKPORT_TOOL_DISABLE": "all"}) as (ms, report):
            if {r.status.value for r in report.results} != {"disabled"}:
                raise SystemExit(f"everything disabled: {report.results}")
        return ms

    def by_hand(self) -> float:
        # What an ad-hoc patch does at startup (as vLLM's env_override.py
        # does): compare torch.__version__ with packaging, then assign.
        clean()
        gc.collect()
        start = time.perf_counter()
        if Version(torch.__version__) in SpecifierSet(">=2.11.0,<2.12"):
            self.owner.should_realize_on_reuse = self.replacement
        elapsed = time.perf_counter() - start
        self.owner.should_realize_on_reuse = self.original
        return elapsed * 1e3

    def warm_caches(self) -> float:
        clean()
        backport_tool.apply(self.manifest, eager=True)  # untimed; timed_apply cleans up
        with timed_apply(self.manifest, {}, collect=False) as (ms, _):
            return ms

    def result(self, per_round: list[Row]) -> dict[str, Any]:
        return {
            name: {
                "ms": stats(values),
                "ratio_to_import_inductor": stats(ratios_to_inductor(name, per_round)),
            }
            for name, values in self.ms.items()
        }


LAZY_CODE = """
import json, time
import torch
import backport_tool
from backport_tool import state
start = time.perf_counter()
first = backport_tool.apply()
first_ms = (time.perf_counter() - start) * 1e3
status = {{r.id: r.status.value for r in first.results}}
times = []
for _ in range({reps}):
    backport_tool.revert()
    state.reset()
    start = time.perf_counter()
    report = backport_tool.apply()
    times.append((time.perf_counter() - start) * 1e3)
    assert {{r.id: r.status.value for r in report.results}} == status, report
print(json.dumps({{"first_ms": first_ms, "ms": times, "status": status}}))
"""


def part_apply(
    args: argparse.Namespace, sets: list[ApplySet], env: dict[str, str]
) -> dict[str, Any]:
    first = {s.name: s.apply_once() for s in sets}
    references = References(sets[0])
    for _ in range(args.warmup):
        for s in sets:
            s.apply_once()
        fresh_wall("import torch._inductor", env)
    fresh_json(LAZY_CODE.format(reps=1), env)  # the startup plan is written

    imports: dict[str, list[float]] = {"import torch": [], "import torch._inductor": []}
    lazy: dict[str, Any] = {"ms": [], "first_ms": [], "status": None}
    per_round: list[dict[str, float]] = []
    for round_ in range(args.rounds):
        row: dict[str, float] = {}
        steps: list[Callable[[], None]] = []
        for code, samples in imports.items():

            def imported(code: str = code, samples: list[float] = samples, row: Row = row) -> None:
                row[code] = fresh_wall(code, env)
                samples.append(row[code])

            steps.append(imported)
        for s in sets:

            def warm(s: ApplySet = s, row: Row = row) -> None:
                row[s.name] = s.apply_once()
                s.warm_ms.append(row[s.name])

            steps.append(warm)
            if round_ < args.cold_rounds:
                steps.append(lambda s=s: s.cold_once(env))

        def lazy_child(row: Row = row) -> None:
            got = fresh_json(LAZY_CODE.format(reps=args.lazy_reps), env)
            lazy["status"] = got["status"]
            lazy["first_ms"].append(float(got["first_ms"]))
            lazy["ms"] += [float(v) for v in got["ms"]]
            row["lazy apply()"] = statistics.median(got["ms"])

        steps.append(lazy_child)
        steps += references.steps(row)
        random.shuffle(steps)
        for step in steps:
            step()
        per_round.append(row)
        print(f"apply round {round_ + 1}/{args.rounds}", file=sys.stderr, flush=True)

    lazy_ratio = [r["lazy apply()"] / (r["import torch"] * 1e3) for r in per_round]
    return {
        "import_seconds": {code: stats(v) for code, v in imports.items()},
        "sets": {s.name: s.result(first[s.name], per_round) for s in sets},
        "references": references.result(per_round),
        "lazy_warm_apply": {
            "status": lazy["status"],
            "first_in_process_ms": stats(lazy["first_ms"]),
            "ms": stats(lazy["ms"]),
            "ratio_to_import_torch": stats(lazy_ratio),
            "budget": {
                "limit_ms": LAZY_BUDGET_MS,
                "ok": statistics.median(lazy["ms"]) <= LAZY_BUDGET_MS,
            },
        },
        "per_round": per_round,
    }


# --- part scoped -----------------------------------------------------------------


def scoped_once(s: ApplySet) -> float:
    """Milliseconds of the first scope after a clean state (entering and
    leaving it): decide, verify, build, patch and restore."""
    clean()
    gc.collect()
    scope = backport_tool.enabled(s.backport_id, manifest=s.manifest)
    start = time.perf_counter()
    result = scope.__enter__()
    entered = time.perf_counter()
    try:
        if result.status.value != "applied":
            raise SystemExit(f"scoped {s.name}: {result}")
        bound = len(s.targets) + len(patcher.bound_copies(s.backport_id))
        if bound != s.sites:
            raise SystemExit(f"scoped {s.name}: {bound} of {s.sites} sites bound")
    finally:
        leaving = time.perf_counter()
        scope.__exit__(None, None, None)
        left = time.perf_counter()
    return (entered - start + left - leaving) * 1e3


def scoped_reps(s: ApplySet, reps: int) -> tuple[list[float], list[float]]:
    """Microseconds of each ``__enter__`` and each ``__exit__`` of ``reps``
    scopes, the backport verified already."""
    enters: list[float] = []
    exits: list[float] = []
    gc.collect()
    for _ in range(reps):
        scope = backport_tool.enabled(s.backport_id, manifest=s.manifest)
        start = time.perf_counter()
        scope.__enter__()
        middle = time.perf_counter()
        scope.__exit__(None, None, None)
        end = time.perf_counter()
        enters.append((middle - start) * 1e6)
        exits.append((end - middle) * 1e6)
    if backport_tool.applied():
        raise SystemExit(f"scoped {s.name}: still applied after its scopes")
    return enters, exits


def apply_revert_ms(s: ApplySet, reps: int) -> list[float]:
    """Milliseconds of ``apply(eager=True)`` plus ``revert()``, warm: what a
    scope costs when written with them."""
    clean()
    times: list[float] = []
    with environ(s.env):
        backport_tool.apply(s.manifest, eager=True)  # parses and loads once
        backport_tool.revert()
        for _ in range(reps):
            gc.collect()
            start = time.perf_counter()
            report = backport_tool.apply(s.manifest, eager=True)
            backport_tool.revert()
            times.append((time.perf_counter() - start) * 1e3)
            if report.by_id(s.backport_id).status.value != "applied":
                raise SystemExit(f"apply/revert {s.name}: {report.results}")
        clean()
    return times


def brief(values: list[float]) -> dict[str, Any]:
    """Median and quartiles, without the samples."""
    full = stats(values)
    del full["samples"]
    return full


def part_scoped(args: argparse.Namespace, sets: list[ApplySet]) -> dict[str, Any]:
    first: dict[str, list[float]] = {s.name: [] for s in sets}
    enter_medians: dict[str, list[float]] = {s.name: [] for s in sets}
    exit_medians: dict[str, list[float]] = {s.name: [] for s in sets}
    enter_all: dict[str, list[float]] = {s.name: [] for s in sets}
    exit_all: dict[str, list[float]] = {s.name: [] for s in sets}
    pairs: dict[str, list[float]] = {s.name: [] for s in sets}
    for s in sets:  # warm-up: every module loaded, every file read once
        scoped_once(s)
        scoped_reps(s, 10)
    for round_ in range(args.rounds):
        steps: list[Callable[[], None]] = []
        for s in sets:

            def scopes(s: ApplySet = s) -> None:
                first[s.name].append(scoped_once(s))
                enters, exits = scoped_reps(s, args.scoped_reps)
                enter_medians[s.name].append(statistics.median(enters))
                exit_medians[s.name].append(statistics.median(exits))
                enter_all[s.name] += enters
                exit_all[s.name] += exits
                clean()

            def pair(s: ApplySet = s) -> None:
                pairs[s.name] += apply_revert_ms(s, args.scoped_apply_reps)

            steps += [scopes, pair]
        random.shuffle(steps)
        for step in steps:
            step()
        print(f"scoped round {round_ + 1}/{args.rounds}", file=sys.stderr, flush=True)
    out: dict[str, Any] = {}
    for s in sets:
        enter, leave = statistics.median(enter_all[s.name]), statistics.median(exit_all[s.name])
        out[s.name] = {
            "manifest": shown(s.manifest),
            "backport": s.backport_id,
            "declared_sites": s.sites,
            "first_scope_ms": stats(first[s.name]),
            "enter_us": stats(enter_medians[s.name]),
            "exit_us": stats(exit_medians[s.name]),
            "enter_us_every_rep": brief(enter_all[s.name]),
            "exit_us_every_rep": brief(exit_all[s.name]),
            "apply_revert_ms": stats(pairs[s.name]),
            "budget": {
                "limit_ms": SCOPE_BUDGET_MS,
                "ok": max(enter, leave) <= SCOPE_BUDGET_MS * 1e3,
            },
        }
    return {"reps_per_round": args.scoped_reps, "sets": out}


# --- part walk -------------------------------------------------------------------


def walk_searches(manifest: Path) -> list[Any]:
    """A references.Search per synthetic target: its original and declared sites."""
    searches = []
    for target in load_manifest(manifest).get(SYNTHETIC_ID).targets:
        module = importlib.import_module(target.symbol.module)
        original = vars(module)[target.symbol.qualname]
        searches.append(Search(original, frozenset(str(site) for site in target.sites)))
    return searches


def timed_ms(action: Callable[[], object]) -> float:
    gc.collect()
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1e3


def part_walk(args: argparse.Namespace, bundled: Path, synthetic: Path) -> dict[str, Any]:
    searches = walk_searches(synthetic)
    n = len(searches)
    times: dict[str, list[float]] = {
        "1 search": [],
        f"{n} searches, one walk": [],
        f"{n} searches, one walk each (sum)": [],
        "check() bundled": [],
        "check() synthetic": [],
    }
    found: dict[str, Any] = {}
    statuses: dict[str, Any] = {}

    def walk(label: str, chosen: list[Any]) -> Callable[[], None]:
        def go() -> None:
            out: list[Any] = []
            times[label].append(timed_ms(lambda: out.extend(undeclared(chosen))))
            found[label] = [list(paths) for paths in out]

        return go

    def each() -> None:
        label = f"{n} searches, one walk each (sum)"
        times[label].append(sum(timed_ms(lambda s=s: undeclared([s])) for s in searches))

    def check(label: str, manifest: Path) -> Callable[[], None]:
        def go() -> None:
            clean()
            out: list[Any] = []
            times[label].append(timed_ms(lambda: out.append(backport_tool.check(manifest))))
            statuses[label] = {r.id: r.status.value for r in out[0].results}
            clean()

        return go

    for round_ in range(args.walk_rounds):
        steps = [
            walk("1 search", searches[:1]),
            walk(f"{n} searches, one walk", searches),
            each,
            check("check() bundled", bundled),
            check("check() synthetic", synthetic),
        ]
        random.shuffle(steps)
        for step in steps:
            step()
        print(f"walk round {round_ + 1}/{args.walk_rounds}", file=sys.stderr, flush=True)
    return {
        "searches": n,
        "ms": {label: stats(v) for label, v in times.items()},
        "check_status": statuses,
        "undeclared_found": found,
    }


# --- main ----------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--parts", default="apply,walk", help="apply, walk, scoped; default apply,walk"
    )
    parser.add_argument("--rounds", type=int, default=30, help="apply rounds")
    parser.add_argument("--cold-rounds", type=int, default=5, help="apply rounds with cold runs")
    parser.add_argument("--lazy-reps", type=int, default=10, help="lazy applies per interpreter")
    parser.add_argument("--walk-rounds", type=int, default=5)
    parser.add_argument("--scoped-reps", type=int, default=500, help="scopes per round")
    parser.add_argument(
        "--scoped-apply-reps", type=int, default=3, help="apply()+revert() pairs per round"
    )
    parser.add_argument("--targets", type=int, default=len(SYNTHETIC_TARGETS))
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--out", type=Path, help="also write the JSON result here")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a summary")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if not parts <= {"apply", "walk", "scoped"} or not 1 <= args.targets <= len(SYNTHETIC_TARGETS):
        parser.error("--parts takes apply, walk and/or scoped; --targets 1 to 10")

    for name in [n for n in os.environ if switch(n)]:
        del os.environ[name]
    env = child_env()

    bundled = Path(backport_tool.default_manifest_path()).resolve()
    synthetic = build_synthetic(Path(tempfile.mkdtemp(prefix="apply-cost-")), args.targets)
    synthetic_manifest = Path(synthetic["manifest"])
    synthetic["manifest"] = shown(synthetic_manifest)
    sets = [
        ApplySet("bundled", bundled, DEFAULT_ID, {}),
        ApplySet("bundled, faithful enabled", bundled, FAITHFUL_ID, {ENABLE_ENV: FAITHFUL_ID}),
        ApplySet(f"synthetic, {args.targets} targets", synthetic_manifest, SYNTHETIC_ID, {}),
    ]
    # Every module that holds a site: every declared copy is then bound.
    unimportable = import_all(sorted({m for s in sets for m in s.modules}))

    result: dict[str, Any] = {
        "machine": {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "cuda": torch.cuda.is_available(),
            "modules_loaded": len(sys.modules),
            "gc_objects": len(gc.get_objects()),
        },
        "settings": {
            "parts": sorted(parts),
            "rounds": args.rounds,
            "cold_rounds": min(args.cold_rounds, args.rounds),
            "lazy_reps": args.lazy_reps,
            "walk_rounds": args.walk_rounds,
            "scoped_reps": args.scoped_reps,
            "scoped_apply_reps": args.scoped_apply_reps,
            "warmup": args.warmup,
            "preloaded": list(PRELOAD),
        },
        "synthetic": synthetic,
        "unimportable_modules": unimportable,
        "apply": part_apply(args, sets, env) if "apply" in parts else None,
        "walk": part_walk(args, bundled, synthetic_manifest) if "walk" in parts else None,
        "scoped": part_scoped(args, sets) if "scoped" in parts else None,
    }
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text if args.json else summary(result))
    ok = True
    if result["apply"] is not None:
        ok = all(s["budget"]["ok"] for s in result["apply"]["sets"].values())
        ok = ok and result["apply"]["lazy_warm_apply"]["budget"]["ok"]
    if result["scoped"] is not None:
        ok = ok and all(s["budget"]["ok"] for s in result["scoped"]["sets"].values())
    return 0 if ok else 1


def _q(entry: dict[str, Any], scale: float = 1.0, digits: int = 3) -> str:
    median, q1, q3 = (entry[k] * scale for k in ("median", "q1", "q3"))
    return f"{median:.{digits}f} ({q1:.{digits}f}-{q3:.{digits}f})"


def summary(result: dict[str, Any]) -> str:
    settings, machine = result["settings"], result["machine"]
    lines = [
        f"Python {machine['python']}, torch {machine['torch']}, {machine['cpus']} CPUs, "
        f"{machine['modules_loaded']} modules, {machine['gc_objects']} gc objects",
    ]
    applied = result["apply"]
    if applied is not None:
        imports = applied["import_seconds"]
        lines += [
            f"{settings['rounds']} apply rounds ({settings['cold_rounds']} with cold runs)",
            f"fresh `import torch`: {_q(imports['import torch'])} s, "
            f"`import torch._inductor`: {_q(imports['import torch._inductor'])} s",
            "",
            "| set | sites (bound) | cold ms | warm ms | warm ms/site | warm/site / import |",
            "|---|---|---|---|---|---|",
        ]
        for name, s in applied["sets"].items():
            cold = _q(s["cold_fresh_ms"], digits=1) if s["cold_fresh_ms"] else "-"
            lines.append(
                f"| {name} | {s['declared_sites']} ({s['bound_sites']}) | {cold} | "
                f"{_q(s['warm_ms'], digits=2)} | {_q(s['warm_ms_per_site'])} | "
                f"{_q(s['warm_ratio_per_site_to_import_inductor'], 1e6, 1)} ppm |"
            )
        lines += ["", "| reference | ms | / import |", "|---|---|---|"]
        for name, ref in applied["references"].items():
            lines.append(
                f"| {name} | {_q(ref['ms'])} | {_q(ref['ratio_to_import_inductor'], 1e6, 1)} ppm |"
            )
        lazy = applied["lazy_warm_apply"]
        lines += [
            "",
            f"warm lazy apply(): {_q(lazy['ms'])} ms, ratio to import torch "
            f"{_q(lazy['ratio_to_import_torch'], digits=5)} (first in process "
            f"{_q(lazy['first_in_process_ms'], digits=2)} ms)",
        ]
    scoped = result["scoped"]
    if scoped is not None:
        lines += [
            "",
            f"{settings['rounds']} scoped rounds, {scoped['reps_per_round']} scopes each",
            "",
            "| set | sites | first scope ms | enter us | exit us | apply()+revert() ms |",
            "|---|---|---|---|---|---|",
        ]
        for name, s in scoped["sets"].items():
            lines.append(
                f"| {name} | {s['declared_sites']} | {_q(s['first_scope_ms'], digits=1)} | "
                f"{_q(s['enter_us'], digits=1)} | {_q(s['exit_us'], digits=1)} | "
                f"{_q(s['apply_revert_ms'], digits=2)} |"
            )
    walked = result["walk"]
    if walked is not None:
        lines += ["", f"{settings['walk_rounds']} walk rounds"]
        lines += [f"{label}: {_q(entry, digits=1)} ms" for label, entry in walked["ms"].items()]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
