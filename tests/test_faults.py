"""Faults and concurrency: every failure gets its own status, the other
backports still apply, the target stays untouched, and no interleaving of
apply/revert leaves a wrapper of a wrapper."""

from __future__ import annotations

import functools
import sys
import threading

import pytest
from helpers import BACKPORT_SOURCE, PatchSet

import backport_tool
from backport_tool import Status, current_report, engine, replacement, revert
from backport_tool.state import STATE

apply = functools.partial(backport_tool.apply, eager=True)


def test_each_fault_has_its_status_and_the_rest_still_applies(patchset: PatchSet) -> None:
    patchset.write_backport("boom.py", "raise ImportError('no such helper')\n")
    patchset.write_backport("notcallable.py", "compute = 'not a function'\n")
    patchset.add("raises-on-import", "Widget.compute", module="backports/boom.py")
    patchset.add("not-callable", "Widget.compute", module="backports/notcallable.py")
    patchset.add("good", "Widget.other")
    module = patchset.target()
    original = module.Widget.__dict__["compute"]
    report = apply(patchset.write())
    assert {r.id: r.status for r in report.results} == {
        "raises-on-import": Status.FAILED,
        "not-callable": Status.FAILED,
        "good": Status.APPLIED,
    }
    assert module.Widget.__dict__["compute"] is original
    assert module.Widget().other(1) == 2001


def test_a_target_replaced_between_verify_and_apply(
    patchset: PatchSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    patchset.add("fix", "Widget.compute", "Widget.other")
    patchset.add("good", "Widget.inherited")
    module = patchset.target()

    def intruder(self: object, x: int) -> int:
        return -x

    real_plan = replacement.patch_for

    def plan_then_intrude(*args: object) -> object:
        planned = real_plan(*args)  # type: ignore[arg-type]
        # Someone else patches the class after verification, before patching.
        if planned.symbol.endswith("Widget.other"):
            module.Widget.other = intruder
        return planned

    monkeypatch.setattr(engine, "patch_for", plan_then_intrude)
    report = apply(patchset.write())
    result = report.by_id("fix")
    assert result.status is Status.FAILED
    assert result.reason == (
        "patching failed, nothing changed: Stale: "
        f"{patchset.sym('Widget.other')} changed between verification and patching; "
        "something else replaced it"
    )
    assert module.Widget().compute(1) == 2  # first target not left patched
    assert module.Widget.__dict__["other"] is intruder
    assert report.by_id("good").status is Status.APPLIED


def test_failure_in_a_lazy_hook_never_breaks_the_import(
    patchset: PatchSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    patchset.add("fix", "Widget.compute")
    backport_tool.apply(patchset.write())

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("internal bug")

    monkeypatch.setattr(engine, "evaluate", broken)
    module = patchset.target()  # must import fine
    assert module.Widget().compute(1) == 2
    report = current_report()
    assert report is not None
    assert report.by_id("fix").status is Status.FAILED
    assert report.by_id("fix").reason == "RuntimeError: internal bug"


def test_apply_after_revert_works(patchset: PatchSet) -> None:
    patchset.add("fix", "Widget.compute")
    manifest = patchset.write()
    module = patchset.target()
    for _ in range(3):
        assert apply(manifest).by_id("fix").status is Status.APPLIED
        assert module.Widget().compute(1) == 1001
        assert revert() == ("fix",)
        assert module.Widget().compute(1) == 2


def test_eight_threads_applying_and_reverting_stay_consistent(patchset: PatchSet) -> None:
    patchset.write_backport("fix.py", BACKPORT_SOURCE)
    patchset.add("fix", "Widget.compute", "Widget.helper")
    patchset.add("other", "Widget.other")
    manifest = patchset.write()
    # The target module is imported by a thread of its own while the others
    # run, so the lazy hook fires concurrently with eager applies/reverts.
    errors: list[BaseException] = []
    start = threading.Barrier(9)

    def churn(seed: int) -> None:
        try:
            start.wait()
            for i in range(40):
                if (i + seed) % 3 == 0:
                    revert()
                elif (i + seed) % 3 == 1:
                    backport_tool.apply(manifest)
                else:
                    apply(manifest)
        except BaseException as exc:  # collected for the main thread
            errors.append(exc)

    def importer() -> None:
        start.wait()
        __import__(patchset.module)

    threads = [threading.Thread(target=churn, args=(n,)) for n in range(8)]
    threads.append(threading.Thread(target=importer))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    module = sys.modules[patchset.module]
    fix = STATE.modules[patchset.patches.joinpath("backports/fix.py").resolve()][0]
    # Each target is exactly the original (defined in the target module) or
    # exactly the replacement (defined in the backport module): never a wrapper.
    compute = module.Widget.__dict__["compute"]
    helper = module.Widget.__dict__["helper"]
    assert isinstance(helper, staticmethod)
    applied = {a.id for a in backport_tool.applied()}
    if "fix" in applied:
        assert compute is fix.compute
        assert helper.__func__ is fix.helper
    else:
        assert compute.__module__ == helper.__func__.__module__ == patchset.module
    revert()
    assert module.Widget.__dict__["compute"].__module__ == patchset.module
    assert module.Widget().compute(1) == 2
    assert module.Widget.helper(2) == 4
    assert module.Widget().other(1) == 3


@pytest.mark.parametrize(
    "source",
    [
        "{raise_}\n",
        "def upstream_probe(symbol, source):\n    {raise_}\n",
        "def after_apply():\n    {raise_}\n",
    ],
    ids=["on import", "upstream_probe", "after_apply"],
)
@pytest.mark.parametrize(
    ("raise_", "named"),
    [
        ("import sys; sys.exit(0)", "SystemExit"),
        # No Exception either: async code's cancellation, a class of its own.
        ("import asyncio; raise asyncio.CancelledError('stop')", "CancelledError: stop"),
        ("raise type('Stop', (BaseException,), {{}})()", "Stop"),
    ],
    ids=["sys.exit", "CancelledError", "BaseException"],
)
def test_sys_exit_in_a_backport_is_its_failure_not_the_end_of_the_process(
    patchset: PatchSet, source: str, raise_: str, named: str
) -> None:
    # A backport module that calls sys.exit() on import (or in a hook) is
    # broken; it must not decide the exit code of the server or of `check`.
    # Nor may any other BaseException of its code escape apply().
    patchset.write_backport(
        "exits.py", BACKPORT_SOURCE + "\n" + source.format(raise_=raise_.format())
    )
    patchset.add("exits", "Widget.compute", module="backports/exits.py")
    patchset.add("good", "Widget.other")
    module = patchset.target()
    original = module.Widget.__dict__["compute"]
    report = apply(patchset.write())
    result = report.by_id("exits")
    assert result.status is Status.FAILED, result
    assert named in result.reason
    assert report.by_id("good").status is Status.APPLIED
    assert module.Widget.__dict__["compute"] is original


def test_sys_exit_while_importing_a_target_module_is_reported(patchset: PatchSet) -> None:
    (patchset.site / f"{patchset.module}_exits.py").write_text("import sys\nsys.exit(0)\n")
    patchset.add("good", "Widget.other")
    entry = patchset.add("exits", "Widget.compute")
    entry["targets"][0]["symbol"] = f"{patchset.module}_exits:compute"
    try:
        report = apply(patchset.write())
    finally:
        sys.modules.pop(f"{patchset.module}_exits", None)
    assert report.by_id("exits").status is Status.FAILED
    assert "SystemExit" in report.by_id("exits").reason
    assert report.by_id("good").status is Status.APPLIED


def test_check_of_a_module_calling_sys_exit_fails_loudly(patchset: PatchSet) -> None:
    patchset.write_backport("exits.py", BACKPORT_SOURCE + "\nimport sys\nsys.exit(0)\n")
    patchset.add("exits", "Widget.compute", module="backports/exits.py")
    done = patchset.cli("check", "--manifest", str(patchset.write()))
    assert done.returncode == 1, done
    assert "exits" in done.stdout
    assert "SystemExit" in done.stdout
    assert "Traceback" not in done.stderr


def test_sys_exit_in_a_backport_under_lazy_apply_never_reaches_the_import(
    patchset: PatchSet,
) -> None:
    patchset.write_backport("exits.py", BACKPORT_SOURCE + "\nimport sys\nsys.exit(0)\n")
    patchset.add("exits", "Widget.compute", module="backports/exits.py")
    backport_tool.apply(patchset.write())
    module = patchset.target()  # the hook loads the backport module here
    assert module.Widget().compute(1) == 2
    report = current_report()
    assert report is not None
    assert report.by_id("exits").status is Status.FAILED
    assert "SystemExit" in report.by_id("exits").reason


def test_a_target_someone_replaced_after_apply_is_not_reported_in_force(
    patchset: PatchSet,
) -> None:
    patchset.add("fix", "Widget.compute")
    manifest = patchset.write()
    module = patchset.target()
    assert apply(manifest).by_id("fix").status is Status.APPLIED

    def theirs(self: object, x: int) -> int:
        return -x

    module.Widget.compute = theirs
    result = backport_tool.check(manifest).by_id("fix")
    assert result.status is Status.FAILED
    assert result.reason.startswith(
        f"applied in this process, but no longer in force at {patchset.sym('Widget.compute')}: "
        "something replaced what apply put there"
    )
    assert module.Widget.compute is theirs  # reported, never put back


FROZEN = """\
_sets = {}


class Meta(type):
    # Takes the first set of `first` only, and no set of `second`.
    def __setattr__(cls, name, value):
        _sets[name] = _sets.get(name, 0) + 1
        if name == "second" or (name == "first" and _sets[name] > 1):
            raise AttributeError(f"frozen attribute {name!r}")
        super().__setattr__(name, value)


class W(metaclass=Meta):
    def first(self):
        return "orig-first"

    def second(self):
        return "orig-second"
"""


def test_a_failed_rollback_is_not_reported_as_nothing_changed(patchset: PatchSet) -> None:
    name = f"{patchset.module}_frozen"
    (patchset.site / f"{name}.py").write_text(FROZEN)
    patchset.write_backport(
        "frozen.py", "def first(self):\n    return 'new'\n\ndef second(self):\n    return 'new'\n"
    )
    entry = patchset.add("frozen", module="backports/frozen.py")
    entry["targets"] = [
        {"symbol": f"{name}:W.{method}", "replacement": method} for method in ("first", "second")
    ]
    try:
        report = apply(patchset.write(), eager=True)
        module = sys.modules[name]
        assert module.W().first() == "new"  # the class refused to take the original back
    finally:
        sys.modules.pop(name, None)
    result = report.by_id("frozen")
    assert result.status is Status.FAILED
    assert result.reason == (
        "patching failed: AttributeError: frozen attribute 'second'; putting the originals "
        f"back failed too, so these still hold the replacement: {name}:W.first "
        "(AttributeError: frozen attribute 'first'). Start a new process without this backport"
    )
