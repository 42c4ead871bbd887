"""The default, deferred apply(): an import hook applies each backport when its
target module is imported."""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import TESTS_DIR, PatchSet

import backport_tool
from backport_tool import Status, VerificationError, apply, current_report, revert


def status(report: backport_tool.Report | None, backport_id: str = "fix") -> str:
    assert report is not None
    return report.by_id(backport_id).status.value


def test_apply_defers_until_the_target_module_is_imported(patchset: PatchSet) -> None:
    patchset.add("fix", "Widget.compute")
    report = apply(patchset.write())
    assert patchset.module not in sys.modules
    assert status(report) == "pending"
    assert report.by_id("fix").reason == f"verified and applied when {patchset.module} is imported"
    assert report.exit_code == 0

    module = patchset.target()  # the user's own import

    assert module.Widget().compute(1) == 1001
    assert status(current_report()) == "applied"
    assert [a.id for a in backport_tool.applied()] == ["fix"]


def test_apply_when_the_target_is_already_imported_is_immediate(patchset: PatchSet) -> None:
    patchset.add("fix", "Widget.compute")
    module = patchset.target()
    report = apply(patchset.write())
    assert status(report) == "applied"
    assert module.Widget().compute(1) == 1001


def test_a_problem_found_in_the_hook_is_logged_and_reported_not_raised(
    patchset: PatchSet, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="backport_tool")
    patchset.add("fix", "Widget.compute", signature="(self) -> int")
    patchset.write_backport("bad.py", "raise RuntimeError('broken backport')\n")
    patchset.add("bad", "Widget.other", module="backports/bad.py")
    apply(patchset.write())

    module = patchset.target()  # must not raise

    assert module.Widget().compute(1) == 2
    assert module.Widget().other(1) == 3
    report = current_report()
    assert (status(report, "fix"), status(report, "bad")) == ("drift", "failed")
    assert report is not None
    assert report.exit_code == 1
    assert "inductor" not in caplog.text
    assert f"backport-tool: fix: drift (target {patchset.sym('Widget.compute')} has" in caplog.text
    assert "backport-tool: bad: failed (backports/bad.py raised RuntimeError" in caplog.text


def test_revert_cancels_a_pending_backport(patchset: PatchSet) -> None:
    patchset.add("fix", "Widget.compute")
    apply(patchset.write())
    backport_tool.revert()
    assert patchset.target().Widget().compute(1) == 2
    assert status(current_report()) == "disabled"


def test_strict_mode_fails_at_startup(patchset: PatchSet) -> None:
    patchset.add("fix", "Widget.compute", signature="(self) -> int")
    with pytest.raises(VerificationError) as info:
        apply(patchset.write(), strict=True)
    assert str(info.value).startswith(
        f"backport verification failed:\n  fix: drift (target {patchset.sym('Widget.compute')}"
    )
    assert info.value.exit_code == 1


def test_exactly_one_info_line_at_startup(
    patchset: PatchSet, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="backport_tool")
    patchset.add("fix", "Widget.compute")
    patchset.add("old", "Widget.other", applies_to="<1.0")
    apply(patchset.write())
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert infos == ["backport-tool: 1 pending (fix), 1 refused"]


def run_python(code: str, patchset: PatchSet, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=patchset.env(**env),
        check=False,
        cwd=TESTS_DIR,  # not the repo root: test the installed package
    )


def test_startup_path_skips_yaml_once_the_plan_is_cached(
    patchset: PatchSet, tmp_path: Path
) -> None:
    patchset.add("fix", "Widget.compute")
    manifest = patchset.write()
    code = (
        "import sys, json, backport_tool\n"
        f"r = backport_tool.apply({str(manifest)!r})\n"
        "print(json.dumps([r.by_id('fix').status.value, 'yaml' in sys.modules,"
        " 'packaging' in sys.modules]))\n"
    )
    cache = str(tmp_path / "cache")
    first = run_python(code, patchset, BACKPORT_TOOL_CACHE_DIR=cache)
    second = run_python(code, patchset, BACKPORT_TOOL_CACHE_DIR=cache)
    assert json.loads(first.stdout) == ["pending", True, True]
    assert json.loads(second.stdout) == ["pending", False, False]
    # A changed manifest is a new plan.
    patchset.backports[0]["applies_to"] = "<1.0"
    patchset.write()
    third = run_python(code, patchset, BACKPORT_TOOL_CACHE_DIR=cache)
    assert json.loads(third.stdout)[0] == "not-applicable"


def test_backport_tool_log_env(patchset: PatchSet) -> None:
    patchset.add("fix", "Widget.compute")
    code = f"import backport_tool; backport_tool.apply({str(patchset.write())!r})"
    shown = run_python(code, patchset, BACKPORT_TOOL_LOG="INFO")
    assert shown.stderr == "backport-tool: 1 pending (fix), 0 refused\n"
    quiet = run_python(code, patchset)
    assert quiet.stderr == ""


def _modules(tmp_path: Path, sources: dict[str, str]) -> Iterator[None]:
    for name, text in sources.items():
        (tmp_path / f"{name}.py").write_text(text)
    sys.path.insert(0, str(tmp_path))
    try:
        yield
    finally:
        sys.path.remove(str(tmp_path))
        for name in sources:
            sys.modules.pop(name, None)


def test_watch_runs_in_the_hook_and_settle_after_the_outermost_import(tmp_path: Path) -> None:
    # The hook knows nothing of backports: a module in, a callback out. The
    # settle callback waits until no module of the package executes.
    from backport_tool import lazy

    hooks = lazy.Hooks()
    calls: list[str] = []
    sources = {
        "lzpkg_outer": "import lzpkg_outer_inner\nAFTER = 1\n",
        "lzpkg_outer_inner": "VALUE = 1\n",
    }
    with contextlib.contextmanager(_modules)(tmp_path, sources):
        # Hooks for a package the test names: every module whose name starts
        # with "lzpkg_outer" is not "of" package lzpkg_outer, so settle on the
        # importing module itself.
        def inner_done() -> None:
            calls.append("inner")
            assert not lazy.is_loaded("lzpkg_outer")  # still executing its import
            assert hooks.when_settled("key", "lzpkg_outer", lambda: calls.append("settled"))

        assert hooks.watch("key", "lzpkg_outer_inner", inner_done)
        assert hooks.watch("key", "lzpkg_outer", lambda: calls.append("outer"))
        hooks.finder.watched.add("lzpkg_outer")
        importlib.import_module("lzpkg_outer")
        assert calls == ["inner", "outer", "settled"]
        assert not hooks.pending_work()
        assert hooks.finder not in sys.meta_path
        # Already imported: nothing registered, the caller runs it itself.
        assert hooks.watch("again", "lzpkg_outer", lambda: None) is False
        assert hooks.when_settled("again", "lzpkg_outer", lambda: None) is False


def test_a_module_already_executing_is_never_waited_for_for_ever(tmp_path: Path) -> None:
    # apply() called while a target module is still executing: its loader is
    # not ours, so the next import (or settle()) runs what waited for it.
    from backport_tool import lazy

    hooks = lazy.Hooks()
    calls: list[str] = []
    sources = {
        "lzbusy": "import lzbusy_probe\nlzbusy_probe.register()\nVALUE = 1\n",
        "lzbusy_probe": "",
        "lzbusy_later": "",
    }

    def register() -> None:
        assert not lazy.is_loaded("lzbusy")
        assert hooks.watch("key", "lzbusy", lambda: calls.append("lzbusy"))

    with contextlib.contextmanager(_modules)(tmp_path, sources):
        probe = importlib.import_module("lzbusy_probe")
        setattr(probe, "register", register)  # noqa: B010 - a module attribute mypy cannot see
        importlib.import_module("lzbusy")
        assert calls == []
        assert hooks.awaited("key") == (("lzbusy",), ())
        importlib.import_module("lzbusy_later")
        assert calls == ["lzbusy"]
        assert hooks.awaited("key") == ((), ())


def test_a_backport_of_two_modules_applies_all_at_once_after_the_import(
    patchset: PatchSet, tmp_path: Path
) -> None:
    # Targets in two modules: importing the first imports the second as soon
    # as the import finishes, and both are patched together.
    entry = patchset.add("fix", "Widget.compute")
    second = f"{patchset.module}_two"
    (patchset.site / f"{second}.py").write_text("def twice(x):\n    return 2 * x\n")
    backports = patchset.patches / "backports"
    with (backports / "fix.py").open("a") as handle:
        handle.write("\n\ndef twice(x):\n    return 3 * x\n")
    entry["targets"].append({"symbol": f"{second}:twice", "replacement": "twice"})
    report = backport_tool.apply(patchset.write())
    assert report.by_id("fix").status is Status.PENDING
    assert second not in sys.modules
    importlib.import_module(patchset.module)
    # The second module is imported once the first import has finished.
    current = backport_tool.current_report()
    assert current is not None
    assert current.by_id("fix").status is Status.APPLIED, current.by_id("fix").reason
    assert sys.modules[second].twice(2) == 6
    revert()
    assert sys.modules[second].twice(2) == 4


def test_two_threads_importing_two_patched_modules_never_deadlock(patchset: PatchSet) -> None:
    entry = patchset.add("fix", "Widget.compute")
    other = f"{patchset.module}_b"
    (patchset.site / f"{other}.py").write_text(
        f"import time\ntime.sleep(0.05)\nimport {patchset.module}\ndef g(x):\n    return x\n"
    )
    with (patchset.patches / "backports" / "fix.py").open("a") as handle:
        handle.write("\n\ndef g(x):\n    return -x\n")
    entry["targets"].append({"symbol": f"{other}:g", "replacement": "g"})
    report = backport_tool.apply(patchset.write())
    assert report.by_id("fix").status is Status.PENDING
    errors: list[BaseException] = []

    def load(name: str) -> None:
        try:
            importlib.import_module(name)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=load, args=(n,)) for n in (patchset.module, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "deadlock"
    assert not errors
    current = backport_tool.current_report()
    assert current is not None
    assert current.by_id("fix").status is Status.APPLIED, current.by_id("fix").reason
    assert sys.modules[other].g(1) == -1


LZRUN_BACKPORT = """
def f():
    return "patched-p"


def g():
    return "patched-q"
"""


@contextlib.contextmanager
def _package(patchset: PatchSet, files: dict[str, str]) -> Iterator[Path]:
    # A package "lzrun" of the given modules, importable while the block runs,
    # and a manifest of one backport replacing lzrun.p:f and lzrun.<q>:g.
    root = patchset.site / "lzrun"
    root.mkdir()
    for name, text in {"__init__.py": "", **files}.items():
        (root / name).write_text(text)
    try:
        yield root
    finally:
        for name in [m for m in sys.modules if m == "lzrun" or m.startswith("lzrun.")]:
            del sys.modules[name]
        sys.modules.pop("lzrun_log", None)


# lzrun.p holds one target; lzrun.sub imports it inside another import of
# the package.
P_AND_SUB = {"p.py": "def f():\n    return 'orig-p'\n", "sub.py": "import lzrun.p\n"}


def _child(patchset: PatchSet, script: str, manifest: Path) -> subprocess.CompletedProcess[str]:
    # In a child, so that a deadlock fails the test instead of hanging it.
    (patchset.site / "lzchild.py").write_text(script)
    return subprocess.run(
        [sys.executable, str(patchset.site / "lzchild.py"), str(manifest)],
        capture_output=True,
        text=True,
        env=patchset.env(),
        timeout=60,
        check=False,
    )


def _lzrun_manifest(patchset: PatchSet, second: str) -> Path:
    patchset.write_backport("lzrun_fix.py", LZRUN_BACKPORT)
    entry = patchset.add("fix", module="backports/lzrun_fix.py")
    entry["targets"] = [
        {"symbol": "lzrun.p:f", "replacement": "f"},
        {"symbol": f"lzrun.{second}:g", "replacement": "g"},
    ]
    return patchset.write()


def test_deferred_work_runs_when_the_outer_import_returns_and_imports_each_module_once(
    patchset: PatchSet,
) -> None:
    # lzrun.p is imported inside another import of the package (lzrun.sub):
    # the backport's other module is imported as soon as that import returns,
    # executed once, and the report is the one an eager apply gives.
    (patchset.site / "lzrun_log.py").write_text("RUNS = []\n")
    files = {
        **P_AND_SUB,
        "q.py": "import lzrun_log\nlzrun_log.RUNS.append('q')\n\ndef g():\n    return 'orig-q'\n",
    }
    with _package(patchset, files):
        manifest = _lzrun_manifest(patchset, "q")
        importlib.import_module("lzrun")
        assert status(apply(manifest)) == "pending"
        importlib.import_module("lzrun.sub")
        latest = backport_tool.state.STATE.latest  # as it is, without settling
        assert latest is not None
        assert (status(latest), latest.by_id("fix").reason) == (
            "applied",
            "replaced lzrun.p:f, lzrun.q:g",
        )
        q = importlib.import_module("lzrun.q")
        assert sys.modules["lzrun_log"].RUNS == ["q"]
        assert (sys.modules["lzrun.p"].f(), q.g()) == ("patched-p", "patched-q")
        revert()
        eager = apply(manifest, eager=True).by_id("fix")
        assert (eager.status, eager.reason) == (Status.APPLIED, "replaced lzrun.p:f, lzrun.q:g")


LOCK_CHILD = """
import importlib, sys, threading
import backport_tool
import lzrun
backport_tool.apply(sys.argv[1], subprocesses=False)
other = threading.Thread(target=importlib.import_module, args=("lzslow",), daemon=True)
other.start()
import lzrun.sub
import lznext
other.join()
print(backport_tool.current_report().by_id("fix").status.value)
"""


def test_deferred_work_never_imports_under_the_import_lock(patchset: PatchSet) -> None:
    # The deferred import of lzrun.qq needs lzslow, which another thread is
    # importing, and which imports a module nobody imported yet: the deferred
    # work must not hold importlib's global lock while it waits.
    (patchset.site / "lzslow.py").write_text("import time\ntime.sleep(0.5)\nimport lzslow_after\n")
    (patchset.site / "lzslow_after.py").write_text("")
    (patchset.site / "lznext.py").write_text("")
    files = {**P_AND_SUB, "qq.py": "import lzslow\n\ndef g():\n    return 'orig-q'\n"}
    with _package(patchset, files):
        child = _child(patchset, LOCK_CHILD, _lzrun_manifest(patchset, "qq"))
    assert (child.returncode, child.stdout.strip()) == (0, "applied"), child.stderr


def test_a_required_symbol_is_verified_live_under_lazy_apply_as_under_eager(
    patchset: PatchSet,
) -> None:
    # A name its module defines dynamically is not in its source: read from
    # the source in the hook, lazy apply would call it missing where eager
    # apply finds it. The hook waits for the required module instead.
    files = {"p.py": "def f():\n    return 'orig-p'\n", "dyn.py": "globals()['VALUE'] = 1\n"}
    with _package(patchset, files):
        patchset.write_backport("lzrun_fix.py", LZRUN_BACKPORT)
        entry = patchset.add("fix", module="backports/lzrun_fix.py", requires=["lzrun.dyn:VALUE"])
        entry["targets"] = [{"symbol": "lzrun.p:f", "replacement": "f"}]
        manifest = patchset.write()
        apply(manifest)
        p = importlib.import_module("lzrun.p")
        result = backport_tool.state.STATE.latest
        assert result is not None
        assert (status(result), p.f()) == ("applied", "patched-p")
        assert "lzrun.dyn" in sys.modules


MODULES_CHILD = """
import importlib, sys, threading, time
import backport_tool
import lzrun
backport_tool.apply(sys.argv[1], subprocesses=False)
other = threading.Thread(target=importlib.import_module, args=("lzrun.y",), daemon=True)
other.start()
time.sleep(0.2)  # lzrun.y executes in the other thread
import lzrun.x
other.join()
report = backport_tool.current_report()
print(report.by_id("bx").status.value, report.by_id("by").status.value)
"""


def test_two_threads_loading_backport_modules_that_import_each_others_targets(
    patchset: PatchSet,
) -> None:
    # bx's module imports lzrun.y, which the other thread is importing; that
    # thread's hook then loads by's module. Neither may wait for the other.
    patchset.write_backport("bx.py", "from lzrun.y import g as _helper\n\ndef f():\n    return 1\n")
    patchset.write_backport("by.py", "def g():\n    return 2\n")
    for backport_id, symbol, name in (("bx", "lzrun.x:f", "f"), ("by", "lzrun.y:g", "g")):
        entry = patchset.add(backport_id, module=f"backports/{backport_id}.py")
        entry["targets"] = [{"symbol": symbol, "replacement": name}]
    files = {
        "x.py": "def f():\n    return 0\n",
        "y.py": "import time\ntime.sleep(1.0)\n\ndef g():\n    return 0\n",
    }
    with _package(patchset, files):
        child = _child(patchset, MODULES_CHILD, patchset.write())
    assert (child.returncode, child.stdout.strip()) == (0, "applied applied"), child.stderr
