"""``backport_tool.enabled()``: one backport in force for a ``with`` block.
Unit behaviour on synthetic target modules; the cost and the bundled
realize-on-reuse backport on the real torch 2.11 at the end."""

from __future__ import annotations

import contextlib
import importlib
import json
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import BACKPORT_SOURCE, PatchSet

import backport_tool
from backport_tool import BackportToolError, ScopeError, Status, VerificationError, enabled
from backport_tool.state import STATE


def test_a_scope_puts_the_backport_in_force_and_restores_exactly(patchset: PatchSet) -> None:
    patchset.add("fix", "Widget.compute", "Widget.helper", "Widget.inherited", "free_function")
    manifest = patchset.write()
    mod = patchset.target()
    before = dict(vars(mod.Widget)), mod.free_function

    with enabled("fix", manifest=manifest) as result:
        assert result.status is Status.APPLIED
        assert result.reason == (
            "in force for this block: replaced "
            + ", ".join(
                patchset.sym(t)
                for t in ("Widget.compute", "Widget.helper", "Widget.inherited", "free_function")
            )
        )
        assert mod.Widget().compute(1) == 1001
        assert mod.Widget.helper(2) == 40
        assert mod.Widget().inherited(1) == 3001
        assert mod.free_function(3) == 6
        assert [a.id for a in backport_tool.applied()] == ["fix"]

    assert dict(vars(mod.Widget)) == before[0]
    assert "inherited" not in vars(mod.Widget)
    assert mod.free_function is before[1]
    assert backport_tool.applied() == ()
    # The report is apply()'s: a scope leaves it alone.
    assert backport_tool.current_report() is None


def test_an_exception_in_the_block_restores_and_propagates(patchset: PatchSet) -> None:
    patchset.add("fix", "Widget.compute")
    manifest = patchset.write()
    mod = patchset.target()
    original = vars(mod.Widget)["compute"]
    seen = []

    def block() -> None:
        with enabled("fix", manifest=manifest):
            seen.append(mod.Widget().compute(1))
            raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        block()
    assert seen == [1001]
    assert vars(mod.Widget)["compute"] is original
    assert backport_tool.applied() == ()


def test_verification_happens_once_per_process_state(
    patchset: PatchSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backport_tool import engine, state

    runs: list[str] = []
    verify = engine.verified_run

    def counted(*args: Any, **kwargs: Any) -> Any:
        runs.append(args[1].id)
        return verify(*args, **kwargs)

    monkeypatch.setattr(engine, "verified_run", counted)
    patchset.add("fix", "Widget.compute")
    manifest = patchset.write()
    mod = patchset.target()
    replacements = []
    for _ in range(3):
        with enabled("fix", manifest=manifest):
            replacements.append(vars(mod.Widget)["compute"])
    assert runs == ["fix"]
    assert replacements[0] is replacements[1] is replacements[2]
    # The same manifest named by a relative path is the same key.
    monkeypatch.chdir(manifest.parent)
    with enabled("fix", manifest="manifest.yaml"):
        pass
    assert runs == ["fix"]
    state.reset()
    with enabled("fix", manifest=manifest):
        assert mod.Widget().compute(1) == 1001
    assert runs == ["fix", "fix"]


def test_nested_scopes_of_one_backport_revert_at_the_last_exit(patchset: PatchSet) -> None:
    patchset.add("fix", "Widget.compute")
    manifest = patchset.write()
    mod = patchset.target()
    with enabled("fix", manifest=manifest):
        with enabled("fix", manifest=manifest) as inner:
            assert inner.status is Status.APPLIED
            assert mod.Widget().compute(1) == 1001
        assert mod.Widget().compute(1) == 1001
    assert mod.Widget().compute(1) == 2


def test_other_threads_see_the_patch_and_overlapping_scopes_count(patchset: PatchSet) -> None:
    patchset.add("fix", "Widget.compute")
    manifest = patchset.write()
    mod = patchset.target()
    seen: list[int] = []
    entered, leave, left = threading.Event(), threading.Event(), threading.Event()

    def other() -> None:
        with enabled("fix", manifest=manifest):
            entered.set()
            leave.wait(10)
        left.set()

    # A thread without any scope sees what is in force: the patch is global.
    with enabled("fix", manifest=manifest):
        reader = threading.Thread(target=lambda: seen.append(mod.Widget().compute(1)))
        reader.start()
        reader.join()
        worker = threading.Thread(target=other)
        worker.start()
        assert entered.wait(10)
    # This thread's scope ended; the other thread's still holds the backport.
    assert mod.Widget().compute(1) == 1001
    leave.set()
    assert left.wait(10)
    worker.join()
    assert seen == [1001]
    assert mod.Widget().compute(1) == 2
    assert backport_tool.applied() == ()


def test_a_scope_while_apply_holds_the_backport_changes_nothing(patchset: PatchSet) -> None:
    patchset.add("fix", "Widget.compute")
    manifest = patchset.write()
    mod = patchset.target()
    backport_tool.apply(manifest, eager=True)
    patched = vars(mod.Widget)["compute"]
    with enabled("fix", manifest=manifest) as result:
        assert result.reason == "applied by apply(): it stays applied after this block"
        assert vars(mod.Widget)["compute"] is patched
    assert vars(mod.Widget)["compute"] is patched
    assert [a.id for a in backport_tool.applied()] == ["fix"]
    assert backport_tool.revert() == ("fix",)
    assert mod.Widget().compute(1) == 2
    # Reverted: the next scope applies it again, with the same replacement.
    with enabled("fix", manifest=manifest):
        assert vars(mod.Widget)["compute"] is patched
    assert mod.Widget().compute(1) == 2


def test_apply_during_a_scope_keeps_the_backport_applied_after_it(patchset: PatchSet) -> None:
    patchset.add("fix", "Widget.compute")
    manifest = patchset.write()
    mod = patchset.target()
    with enabled("fix", manifest=manifest):
        report = backport_tool.apply(manifest, eager=True)
        assert report.by_id("fix").status is Status.APPLIED
    assert mod.Widget().compute(1) == 1001
    assert backport_tool.revert() == ("fix",)
    assert mod.Widget().compute(1) == 2


def test_apply_during_a_scope_with_the_backport_disabled_leaves_it_to_the_scope(
    patchset: PatchSet, caplog: pytest.LogCaptureFixture
) -> None:
    # That apply() does not keep it: the block's end reverts it, and the
    # report must not say it stays applied.
    patchset.add("fix", "Widget.compute")
    manifest = patchset.write()
    mod = patchset.target()
    with enabled("fix", manifest=manifest):
        result = backport_tool.apply(manifest, eager=True, disable=["fix"]).by_id("fix")
        assert mod.Widget().compute(1) == 1001
    assert result.status is Status.DISABLED
    assert result.reason.endswith("; in force for an enabled() block until it ends")
    assert "stays applied" not in caplog.text
    assert mod.Widget().compute(1) == 2
    assert backport_tool.applied() == ()
    report = backport_tool.current_report()
    assert report is not None
    assert report.by_id("fix").status is Status.DISABLED


def test_one_scope_entered_by_two_threads_at_once_is_a_usage_error(
    patchset: PatchSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both threads get past the check before either has marked the scope in
    # use (they meet while preparing): both would count a scope, and the one
    # slot the Scope has for what it holds could end only one of them.
    from backport_tool import scoped

    patchset.add("fix", "Widget.compute")
    manifest = patchset.write()
    mod = patchset.target()
    scope = enabled("fix", manifest=manifest)
    meet = threading.Barrier(2, timeout=1)
    prepared = scoped._prepared

    def meeting(*args: Any) -> Any:
        with contextlib.suppress(threading.BrokenBarrierError):
            meet.wait()
        return prepared(*args)

    monkeypatch.setattr(scoped, "_prepared", meeting)
    outcomes: list[str] = []

    def block() -> None:
        try:
            with scope:
                outcomes.append("ran")
        except backport_tool.UsageError as exc:
            outcomes.append(str(exc))

    threads = [threading.Thread(target=block) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == [
        "ran",
        "this enabled('fix') is already in use; call enabled() for each with block",
    ]
    assert backport_tool.applied() == ()
    assert mod.Widget().compute(1) == 2


def test_a_lazy_apply_pending_on_the_target_takes_the_backport_the_scope_imports(
    patchset: PatchSet,
) -> None:
    patchset.add("fix", "Widget.compute")
    manifest = patchset.write()
    assert backport_tool.apply(manifest).by_id("fix").status is Status.PENDING
    assert patchset.module not in sys.modules
    # The scope imports the target; apply()'s import hook applies it there.
    with enabled("fix", manifest=manifest) as result:
        assert result.reason == "applied by apply(): it stays applied after this block"
    assert patchset.target().Widget().compute(1) == 1001
    report = backport_tool.current_report()
    assert report is not None
    assert report.by_id("fix").status is Status.APPLIED


def test_revert_inside_a_scope_reverts_at_once(patchset: PatchSet) -> None:
    patchset.add("fix", "Widget.compute")
    manifest = patchset.write()
    mod = patchset.target()
    with enabled("fix", manifest=manifest):
        assert backport_tool.revert() == ("fix",)
        assert mod.Widget().compute(1) == 2
    assert mod.Widget().compute(1) == 2
    assert backport_tool.applied() == ()


@pytest.mark.parametrize(
    ("target", "status", "reason"),
    [
        ("Widget.compute", "drift", "has signature (self, x: int) -> int, the backport expects"),
        ("Widget.gone", "missing", "has no attribute 'gone'"),
    ],
)
def test_a_backport_that_fails_verification_raises_and_the_block_does_not_run(
    patchset: PatchSet, target: str, status: str, reason: str
) -> None:
    patchset.add("fix", "free_function", target, signature="(a, b=2)")
    patchset.backports[0]["targets"][1]["signature"] = "(self, y: str) -> int"
    manifest = patchset.write()
    mod = patchset.target()
    before = dict(vars(mod.Widget)), mod.free_function
    ran = []
    with pytest.raises(ScopeError) as caught, enabled("fix", manifest=manifest):
        ran.append(1)
    assert ran == []
    error = caught.value
    assert isinstance(error, VerificationError)
    assert isinstance(error, BackportToolError)
    assert error.exit_code == 1
    assert error.report.by_id("fix").status.value == status
    message = str(error)
    assert message.startswith(f"enabled('fix'): backport fix cannot be put in force: {status} (")
    assert reason in message
    assert message.endswith("nothing was changed. Hint: run `backport-tool status` for details")
    assert (dict(vars(mod.Widget)), mod.free_function) == before
    assert backport_tool.applied() == ()
    # Not kept: the next scope verifies again, and says the same.
    assert STATE.scoped == {}
    with pytest.raises(ScopeError, match=re.escape(reason)), enabled("fix", manifest=manifest):
        pass


def test_a_backport_the_version_or_a_switch_refuses_runs_the_block_without_it(
    patchset: PatchSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    patchset.add("old", "Widget.compute", applies_to=">=0.1,<1.0")
    patchset.add("off", "Widget.other")
    manifest = patchset.write()
    mod = patchset.target()
    monkeypatch.setenv("BACKPORT_TOOL_DISABLE", "off")
    ran = []
    with enabled("old", manifest=manifest) as old, enabled("off", manifest=manifest) as off:
        ran.append((mod.Widget().compute(1), mod.Widget().other(1)))
    assert ran == [(2, 3)]
    assert (old.status, off.status) == (Status.NOT_APPLICABLE, Status.DISABLED)
    assert old.reason == f"{patchset.dist} 1.5.0 is outside applies_to '>=0.1,<1.0'"
    assert (
        off.reason == "disabled by a switch: BACKPORT_TOOL_DISABLE, apply(disable=...) or --disable"
    )
    assert backport_tool.applied() == ()


def test_a_switch_that_names_no_backport_is_a_warning_as_in_apply(
    patchset: PatchSet, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A typo in the kill switch leaves the backport on: say so.
    patchset.add("fix", "Widget.compute")
    manifest = patchset.write()
    monkeypatch.setenv("BACKPORT_TOOL_DISABLE", "fxi")
    with enabled("fix", manifest=manifest) as result:
        assert result.status is Status.APPLIED
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        "backport-tool: the BACKPORT_TOOL_DISABLE variable names 'fxi', which is no backport of "
        "the manifest; did you mean 'fix'?"
    ]


def test_naming_an_opt_in_backport_enables_it(patchset: PatchSet) -> None:
    patchset.add("opt", "Widget.compute", opt_in=True)
    manifest = patchset.write()
    mod = patchset.target()
    assert backport_tool.apply(manifest, eager=True).by_id("opt").status is Status.DISABLED
    with enabled("opt", manifest=manifest) as result:
        assert result.status is Status.APPLIED
        assert mod.Widget().compute(1) == 1001
    assert mod.Widget().compute(1) == 2


def test_an_unknown_id_or_a_bad_call_is_a_usage_error(patchset: PatchSet) -> None:
    patchset.add("fix", "Widget.compute")
    manifest = patchset.write()
    with (
        pytest.raises(backport_tool.UsageError, match=r"has no backport 'fxi'; did you mean 'fix'"),
        enabled("fxi", manifest=manifest),
    ):
        pass
    with pytest.raises(backport_tool.UsageError, match="a backport id as a string"):
        enabled(["fix"])  # type: ignore[arg-type]
    scope = enabled("fix", manifest=manifest)
    with scope:
        with pytest.raises(backport_tool.UsageError, match="already in use"), scope:
            pass
        assert patchset.target().Widget().compute(1) == 1001
    with scope:  # reusable once it has ended
        pass
    assert patchset.target().Widget().compute(1) == 2


def test_the_default_manifest_is_backport_tool_manifest(
    patchset: PatchSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    patchset.add("fix", "Widget.compute")
    monkeypatch.setenv("BACKPORT_TOOL_MANIFEST", str(patchset.write()))
    with enabled("fix") as result:
        assert result.status is Status.APPLIED
        assert patchset.target().Widget().compute(1) == 1001


COPY_SOURCE = "from {module} import free_function\n"


def copy_module(patchset: PatchSet, name: str) -> str:
    module = f"{patchset.module}_{name}"
    (patchset.site / f"{module}.py").write_text(COPY_SOURCE.format(module=patchset.module))
    return module


def test_declared_copies_are_bound_for_the_block_and_unbound_after(patchset: PatchSet) -> None:
    early = copy_module(patchset, "early")
    late = copy_module(patchset, "late")
    entry = patchset.add("fix", "free_function")
    entry["targets"][0]["copies"] = [f"{early}:free_function", f"{late}:free_function"]
    manifest = patchset.write()
    mod = patchset.target()
    original = mod.free_function
    copied = importlib.import_module(early)
    try:
        with enabled("fix", manifest=manifest):
            assert copied.free_function is mod.free_function is not original
            assert copied.free_function(3) == 6
            # Imported inside the block, it copies the fix from the target.
            imported = importlib.import_module(late)
            assert imported.free_function is mod.free_function
        # Both copies hold the original again.
        assert mod.free_function is copied.free_function is imported.free_function is original
        with enabled("fix", manifest=manifest):
            assert imported.free_function is mod.free_function is not original
        assert imported.free_function is original
    finally:
        sys.modules.pop(early, None)
        sys.modules.pop(late, None)


HOOKED_SOURCE = (
    BACKPORT_SOURCE
    + """
CALLS = []


def after_apply():
    CALLS.append("after_apply")
    if FAIL:
        raise RuntimeError("cannot register")


def before_revert():
    CALLS.append("before_revert")


FAIL = False
"""
)


def test_hooks_run_at_the_first_entry_and_the_last_exit(patchset: PatchSet) -> None:
    patchset.write_backport("fix.py", HOOKED_SOURCE)
    patchset.add("fix", "Widget.compute")
    manifest = patchset.write()
    mod = patchset.target()
    with enabled("fix", manifest=manifest):
        module = sys.modules["_backport_tool_bp_fix"]
        assert module.CALLS == ["after_apply"]
        with enabled("fix", manifest=manifest):
            pass
        assert module.CALLS == ["after_apply"]
    assert module.CALLS == ["after_apply", "before_revert"]
    module.FAIL = True  # type: ignore[attr-defined]
    ran = []
    with (
        pytest.raises(ScopeError, match="after_apply raised RuntimeError: cannot register"),
        enabled("fix", manifest=manifest),
    ):
        ran.append(1)
    assert ran == []
    # Rolled back, its before_revert first.
    assert module.CALLS[2:] == ["after_apply", "before_revert"]
    assert mod.Widget().compute(1) == 2
    assert backport_tool.applied() == ()


def test_a_hook_cannot_enter_a_scope(patchset: PatchSet) -> None:
    patchset.write_backport(
        "fix.py",
        BACKPORT_SOURCE + "\n\nimport backport_tool\nERRORS = []\n\n\ndef after_apply():\n"
        "    try:\n        backport_tool.enabled('other').__enter__()\n"
        "    except backport_tool.UsageError as exc:\n        ERRORS.append(str(exc))\n",
    )
    patchset.add("fix", "Widget.compute")
    with enabled("fix", manifest=patchset.write()):
        errors = sys.modules["_backport_tool_bp_fix"].ERRORS
    assert errors == [
        "enabled() was called from the after_apply hook of 'fix'; hooks run while "
        "backport-tool is applying or reverting, so they must not apply or revert backports "
        "themselves. Do it after apply() returns"
    ]


def test_a_backport_that_conflicts_with_one_in_force_raises(
    patchset: PatchSet, tmp_path: Path
) -> None:
    patchset.add("default", "Widget.compute")
    patchset.add("other", "Widget.compute", opt_in=True)
    manifest = patchset.write()
    mod = patchset.target()
    backport_tool.apply(manifest, eager=True)
    patched = vars(mod.Widget)["compute"]
    with (
        pytest.raises(ScopeError, match="same function as a target of backport 'default'"),
        enabled("other", manifest=manifest),
    ):
        pass
    assert vars(mod.Widget)["compute"] is patched
    # The same id from another manifest.
    other = tmp_path / "other"
    (other / "backports").mkdir(parents=True)
    (other / "backports" / "fix.py").write_text(BACKPORT_SOURCE)
    (other / "manifest.yaml").write_text(manifest.read_text())
    with (
        pytest.raises(ScopeError, match="already applied in this process from"),
        enabled("default", manifest=other / "manifest.yaml"),
    ):
        pass
    assert [a.id for a in backport_tool.applied()] == ["default"]


def test_something_else_replacing_a_target_is_caught_and_verified_again(
    patchset: PatchSet,
) -> None:
    patchset.add("fix", "Widget.compute")
    manifest = patchset.write()
    mod = patchset.target()
    with enabled("fix", manifest=manifest):
        pass

    def theirs(self: object, x: int) -> int:
        return x + 7

    mod.Widget.compute = theirs
    with (
        pytest.raises(ScopeError, match="changed between verification and patching"),
        enabled("fix", manifest=manifest),
    ):
        pass
    assert mod.Widget.compute is theirs
    # Verified again: theirs is what the target is now.
    with enabled("fix", manifest=manifest):
        assert mod.Widget().compute(1) == 1001
    assert mod.Widget.compute is theirs


ORIGINAL_CALLER = """
import backport_tool


def compute(self, x: int) -> int:
    return backport_tool.original("{symbol}")(self, x) * 10
"""


def test_a_wrapper_calls_its_original_inside_a_scope(patchset: PatchSet) -> None:
    patchset.write_backport("fix.py", ORIGINAL_CALLER.format(symbol=patchset.sym("Widget.compute")))
    patchset.add("fix", "Widget.compute")
    manifest = patchset.write()
    mod = patchset.target()
    with enabled("fix", manifest=manifest):
        assert mod.Widget().compute(1) == 20
    with pytest.raises(backport_tool.UsageError, match="no applied backport replaces"):
        backport_tool.original(patchset.sym("Widget.compute"))


def median_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


def enter_exit_us(backport_id: str, manifest: Any, rounds: int = 300) -> tuple[float, float]:
    enters: list[float] = []
    exits: list[float] = []
    for _ in range(rounds):
        scope = enabled(backport_id, manifest=manifest)
        start = time.perf_counter()
        scope.__enter__()
        middle = time.perf_counter()
        scope.__exit__(None, None, None)
        enters.append(middle - start)
        exits.append(time.perf_counter() - middle)
    return median_us(enters), median_us(exits)


def test_entering_and_leaving_cost_well_under_a_millisecond(patchset: PatchSet) -> None:
    patchset.add("fix", "Widget.compute", "Widget.helper", "free_function")
    manifest = patchset.write()
    patchset.target()
    with enabled("fix", manifest=manifest):
        pass
    enter, leave = enter_exit_us("fix", manifest)
    # Budget 1 ms each; about 10 us here, so a busy machine still passes.
    assert enter < 1000, enter
    assert leave < 1000, leave


# --- real torch 2.11: the bundled realize-on-reuse backports -------------------

REALIZE = "torch._inductor.ir:StorageBox.should_realize_on_reuse"


@pytest.mark.torch211
@pytest.mark.parametrize(
    "backport_id", ["inductor-realize-on-reuse-refined", "inductor-realize-on-reuse"]
)
def test_the_bundled_backport_in_a_scope_on_torch_211(backport_id: str) -> None:
    pytest.importorskip("torch")
    from torch._inductor import ir
    from torch.compiler import config

    original = vars(ir.StorageBox)["should_realize_on_reuse"]
    tag = config.cache_key_tag
    with enabled(backport_id) as result:
        assert result.status is Status.APPLIED, result.reason
        replaced = vars(ir.StorageBox)["should_realize_on_reuse"]
        assert replaced is not original
        assert replaced.__module__ == "_backport_tool_bp_" + backport_id.replace("-", "_")
        assert "backport-tool:" in config.cache_key_tag
    assert vars(ir.StorageBox)["should_realize_on_reuse"] is original
    assert config.cache_key_tag == tag
    enter, leave = enter_exit_us(backport_id, None, rounds=100)
    assert enter < 1000, enter
    assert leave < 1000, leave
    assert vars(ir.StorageBox)["should_realize_on_reuse"] is original


@pytest.mark.torch211
def test_a_compile_inside_the_scope_runs_the_backports_decision() -> None:
    torch = pytest.importorskip("torch")
    from realize_probe import four_read_pointwise_three_users, fresh_compile, record_decisions

    args = [torch.randn(256, 512) for _ in range(4)]
    with record_decisions() as before:
        fresh_compile(four_read_pointwise_three_users, *args)
    with enabled("inductor-realize-on-reuse"), record_decisions() as inside:
        out = fresh_compile(four_read_pointwise_three_users, *args)
    with record_decisions() as after:
        fresh_compile(four_read_pointwise_three_users, *args)
    # The installed heuristic is the backport's inside the block only: there it
    # realizes the 4-read value that 2.11 inlines.
    assert before
    assert after
    assert all(d.original == d.installed for d in before + after)
    flips = [
        (d.users, d.kind, d.original, d.installed) for d in inside if d.original != d.installed
    ]
    assert flips == [(3, "Pointwise", False, True)]
    for got, want in zip(out, four_read_pointwise_three_users(*args), strict=True):
        torch.testing.assert_close(got, want)


@pytest.mark.torch211
def test_the_scoped_part_of_the_apply_cost_benchmark_writes_its_json(tmp_path: Path) -> None:
    benchmark = Path(__file__).resolve().parent.parent / "benchmarks" / "apply_cost.py"
    out = tmp_path / "scoped.json"
    args = ["--parts", "scoped", "--targets", "1", "--rounds", "1", "--scoped-reps", "5"]
    args += ["--scoped-apply-reps", "1", "--warmup", "0", "--out", str(out)]
    proc = subprocess.run(
        [sys.executable, str(benchmark), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    # 1 is a budget over on a run this short; anything else is a failure.
    assert proc.returncode in (0, 1), proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["apply"] is None
    assert result["walk"] is None
    scoped = result["scoped"]
    assert scoped["reps_per_round"] == 5
    assert list(scoped["sets"]) == ["bundled", "bundled, faithful enabled", "synthetic, 1 targets"]
    for entry in scoped["sets"].values():
        for key in ("first_scope_ms", "enter_us", "exit_us", "apply_revert_ms"):
            assert entry[key]["n"] == 1
            assert entry[key]["median"] > 0
        assert entry["enter_us_every_rep"]["n"] == 5
        assert entry["budget"]["limit_ms"] == 1.0
