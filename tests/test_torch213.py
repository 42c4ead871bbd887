"""The shipped backports on the real torch 2.13: refused, and torch left alone. The
faithful port is opt-in, but its version decision comes first: it is refused as
fixed upstream, and its claim checked, whether it is enabled or not."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.torch213

torch = pytest.importorskip("torch")

import backport_tool  # noqa: E402
from backport_tool import Status, default_manifest_path  # noqa: E402

BACKPORT = "inductor-realize-on-reuse"
REFINED = "inductor-realize-on-reuse-refined"
# Not enabled (the default), and enabled.
ENABLED = pytest.mark.parametrize("enable", [[], [BACKPORT]], ids=["default", "enabled"])


@ENABLED
def test_apply_is_refused_as_fixed_upstream_and_torch_is_untouched(enable: list[str]) -> None:
    # In a fresh interpreter: the refusal must come from the version alone,
    # without importing torch._inductor at all.
    env = dict(os.environ)  # the switches are unset (conftest)
    if enable:
        env["BACKPORT_TOOL_ENABLE"] = ",".join(enable)
    code = (
        "import sys, json, backport_tool\n"
        "r = backport_tool.apply()\n"
        "print(json.dumps([r.to_dict(), 'torch._inductor.ir' in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parent,  # not the repo root: test the installed package
        env=env,
    ).stdout
    report, inductor_imported = yaml.safe_load(out)
    assert report["version"].startswith("2.13.")
    entries = {entry["id"]: entry for entry in report["backports"]}
    assert entries[REFINED]["status"] == "not-applicable"  # torch 2.11 only
    entry = entries[BACKPORT]
    assert entry["status"] == "fixed-upstream"
    assert (
        ">= fixed_in 2.12.0: upstream is declared to include the fix; not verified"
        in (entry["reason"])
    )
    assert entry["reason"].endswith("`backport-tool check` tests the claim against it")
    assert inductor_imported is False


@ENABLED
def test_apply_in_process_leaves_the_original_in_place(enable: list[str]) -> None:
    from torch._inductor.ir import StorageBox

    original = StorageBox.__dict__["should_realize_on_reuse"]
    report = backport_tool.apply(enable=enable)
    assert report.by_id(BACKPORT).status is Status.FIXED_UPSTREAM
    assert report.by_id(REFINED).status is Status.NOT_APPLICABLE
    assert backport_tool.applied() == ()
    assert StorageBox.__dict__["should_realize_on_reuse"] is original


def test_the_default_refined_model_is_not_applicable_and_torch_is_untouched() -> None:
    from torch._inductor.ir import StorageBox

    original = StorageBox.__dict__["should_realize_on_reuse"]
    report = backport_tool.apply()
    assert report.by_id(REFINED).status is Status.NOT_APPLICABLE
    assert "outside applies_to" in (report.by_id(REFINED).reason or "")
    assert report.by_id(BACKPORT).status is Status.FIXED_UPSTREAM
    assert backport_tool.applied() == ()
    assert StorageBox.__dict__["should_realize_on_reuse"] is original


def test_signature_check_catches_the_2_13_signature(tmp_path: Path) -> None:
    # A manifest whose range wrongly admits 2.13 must still be stopped before
    # the first compile: 2.13's mark_reuse passes graph_reuse=..., which the
    # 2.11 replacement cannot take.
    bundled = default_manifest_path()
    shutil.copytree(bundled.parent / "backports", tmp_path / "backports")
    data = yaml.safe_load(bundled.read_text())
    (entry,) = [e for e in data["backports"] if e["id"] == BACKPORT]
    entry["applies_to"] = ">=2.11.0"
    del entry["fixed_in"]
    (tmp_path / "manifest.yaml").write_text(yaml.safe_dump(data))

    from torch._inductor.ir import StorageBox

    original = StorageBox.__dict__["should_realize_on_reuse"]
    result = backport_tool.apply(tmp_path / "manifest.yaml", enable=[BACKPORT]).by_id(BACKPORT)
    assert result.status is Status.DRIFT
    assert result.reason.startswith(
        "target torch._inductor.ir:StorageBox.should_realize_on_reuse has signature "
        "(self, users: int, *, graph_reuse: bool = True) -> bool, "
        "the backport expects (self, users: int) -> bool; "
        "target torch._inductor.ir:StorageBox.should_realize_on_reuse source fingerprint "
    )
    assert StorageBox.__dict__["should_realize_on_reuse"] is original


@ENABLED
def test_check_says_the_declared_fix_is_not_in_the_2_13_code(enable: list[str]) -> None:
    result = backport_tool.check(enable=enable).by_id(BACKPORT)
    assert result.status is Status.FIXED_UPSTREAM
    assert result.upstream_claim is backport_tool.Claim.CONTRADICTED
    assert result.to_dict()["upstream_claim"] == "contradicted"
    (target,) = result.targets
    assert target.signature_matches is False
    assert target.fingerprint_matches is False
    assert "but the code does not have the fix" in result.reason
    assert "graph_reuse: bool = True" in result.reason


def _threads_manifest(tmp_path: Path) -> Path:
    (tmp_path / "backports").mkdir()
    (tmp_path / "backports" / "fix.py").write_text("")
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(
        "version: 1\npackage: torch\nbackports:\n  - id: threads\n    summary: s\n"
        '    applies_to: ">=2.13"\n    module: backports/fix.py\n    targets:\n'
        '      - symbol: "torch._inductor.config:compile_threads"\n        value: 3\n'
    )
    return manifest


def test_a_config_option_torch_keeps_per_context_is_not_in_force_in_another_thread(
    tmp_path: Path,
) -> None:
    # torch 2.13 keeps config options in a ContextVar: what one thread sets,
    # another never reads. Another thread's apply or scope must not count it
    # as in force there.
    import threading

    from torch._inductor import config

    manifest = _threads_manifest(tmp_path)
    default = config.compile_threads
    assert default != 3
    seen: dict[str, object] = {}

    def elsewhere() -> None:
        seen["value"] = config.compile_threads
        seen["report"] = backport_tool.apply(manifest, eager=True).by_id("threads")
        try:
            with backport_tool.enabled("threads", manifest=manifest):
                pass
        except backport_tool.ScopeError as exc:
            seen["scope"] = str(exc)

    assert backport_tool.apply(manifest, eager=True).by_id("threads").status is Status.APPLIED
    try:
        assert config.compile_threads == 3
        worker = threading.Thread(target=elsewhere)
        worker.start()
        worker.join()
        assert seen["value"] == default
        report = seen["report"]
        assert isinstance(report, backport_tool.BackportResult)
        assert report.status is Status.FAILED
        assert report.reason.startswith("applied in another thread or task")
        assert "in force in another one" in str(seen["scope"])
        assert config.compile_threads == 3
    finally:
        assert backport_tool.revert() == ("threads",)
    assert config.compile_threads == default


def test_a_config_option_torch_keeps_per_context_in_tasks_and_a_revert_elsewhere(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncio
    import threading

    from torch._inductor import config

    manifest = _threads_manifest(tmp_path)
    default = config.compile_threads

    async def task() -> backport_tool.BackportResult:
        return backport_tool.apply(manifest, eager=True).by_id("threads")

    async def two_tasks() -> list[backport_tool.BackportResult]:
        # Each task runs in a copy of this context: the second one never sees
        # what the first one set.
        return [await asyncio.create_task(task()) for _ in range(2)]

    first, second = asyncio.run(two_tasks())
    assert first.status is Status.APPLIED
    assert second.status is Status.FAILED
    assert second.reason.startswith("applied in another thread or task")
    assert backport_tool.revert() == ("threads",)
    assert config.compile_threads == default
    # Reverted from another thread: never stuck, and the warning says that
    # the value stays where it was set.
    assert backport_tool.apply(manifest, eager=True).by_id("threads").status is Status.APPLIED
    reverted: list[tuple[str, ...]] = []
    worker = threading.Thread(target=lambda: reverted.append(backport_tool.revert()))
    worker.start()
    worker.join()
    assert reverted == [("threads",)]
    assert "torch keeps config options per context" in caplog.text
    assert config.compile_threads == 3
    config.compile_threads = default
    assert backport_tool.apply(manifest, eager=True).by_id("threads").status is Status.APPLIED
    assert backport_tool.revert() == ("threads",)
    assert config.compile_threads == default


def _realize_manifest(tmp_path: Path) -> Path:
    # A backport that applies on 2.13: a replacement of the realize decision
    # with its 2.13 signature.
    (tmp_path / "backports").mkdir()
    (tmp_path / "backports" / "fix.py").write_text(
        "def should_realize_on_reuse(self, users, *, graph_reuse=True):\n    return users > 1\n"
    )
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(
        "version: 1\npackage: torch\nbackports:\n  - id: realize\n    summary: s\n"
        '    applies_to: ">=2.13"\n    module: backports/fix.py\n    targets:\n'
        '      - symbol: "torch._inductor.ir:StorageBox.should_realize_on_reuse"\n'
        "        replacement: should_realize_on_reuse\n"
    )
    return manifest


def test_the_compile_cache_tag_reaches_every_thread_where_torch_keeps_it_per_thread(
    tmp_path: Path,
) -> None:
    # torch 2.13 keeps cache_key_tag per thread and task, and a new thread
    # starts with none set; the patch is in force in every thread, so every
    # thread's compiles must key on it, and none after the revert.
    import threading

    from torch.compiler import config

    manifest = _realize_manifest(tmp_path)

    def tag_elsewhere() -> str:
        seen: list[str] = []
        worker = threading.Thread(target=lambda: seen.append(config.cache_key_tag))
        worker.start()
        worker.join()
        return seen[0]

    assert (config.cache_key_tag, tag_elsewhere()) == ("", "")
    assert backport_tool.apply(manifest, eager=True).by_id("realize").status is Status.APPLIED
    try:
        tag = config.cache_key_tag
        assert tag.startswith("backport-tool:")
        assert tag_elsewhere() == tag
    finally:
        assert backport_tool.revert() == ("realize",)
    assert (config.cache_key_tag, tag_elsewhere()) == ("", "")
    with backport_tool.enabled("realize", manifest=manifest):
        assert tag_elsewhere() == tag
    assert (config.cache_key_tag, tag_elsewhere()) == ("", "")
    # A tag this thread set itself is kept, with ours after it; the others
    # read ours alone.
    config.cache_key_tag = "service"
    try:
        with backport_tool.enabled("realize", manifest=manifest):
            assert config.cache_key_tag == f"service|{tag}"
            assert tag_elsewhere() == tag
        assert (config.cache_key_tag, tag_elsewhere()) == ("service", "")
    finally:
        config.cache_key_tag = ""
