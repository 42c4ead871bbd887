"""The default, deferred apply(): an import hook applies each backport when its
target module is imported."""

from __future__ import annotations

import importlib
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import TESTS_DIR, PatchSet

import backport_tool
from backport_tool import VerificationError, apply, current_report


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


def test_the_hook_calls_back_once_every_module_is_imported(tmp_path: Path) -> None:
    # The hook knows nothing of backports: modules in, one callback out.
    from backport_tool import lazy

    for name in ("lazy_a", "lazy_b"):
        (tmp_path / f"{name}.py").write_text("VALUE = 1\n")
    sys.path.insert(0, str(tmp_path))
    calls: list[tuple[bool, bool]] = []
    try:
        waiting = lazy.when_imported(
            "key",
            ("lazy_a", "lazy_b"),
            lambda settled: calls.append((settled("lazy_a"), settled("lazy_b"))),
        )
        assert waiting == ("lazy_a", "lazy_b")
        importlib.import_module("lazy_a")
        assert calls == []
        importlib.import_module("lazy_b")

        assert calls == [(True, True)]
        assert lazy.cancel(["key"]) == ()
        assert lazy.when_imported("again", ("lazy_a",), lambda settled: None) == ()
    finally:
        sys.path.remove(str(tmp_path))
        for name in ("lazy_a", "lazy_b"):
            sys.modules.pop(name, None)
