"""The example patch set (examples/library-patches): runtime patches that
vLLM, unsloth, accelerate and DeepSpeed carry for torch 2.11, re-expressed as
backports. For each one, the torch code path its users call runs the fix
when the set is applied lazily (before ``import torch``), eagerly, late (after
the target's module was imported and used) and for one ``enabled()`` block;
and the same probe fails without it (the control).

Each mode runs once, in a fresh interpreter (tests/examples_probes.py), for
all eight backports: a process-wide patch cannot be taken back from torch's
caches in this one. A model saved there while a class target was in force is
loaded in another interpreter, without the patch set.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import TESTS_DIR, python_env, run_backport_tool

from backport_tool import Status, check, lock

pytestmark = pytest.mark.torch211

ROOT = TESTS_DIR.parent
EXAMPLES = ROOT / "examples"
MANIFEST = EXAMPLES / "library-patches" / "manifest.yaml"
PROBES = TESTS_DIR / "examples_probes.py"
IDS = [entry["id"] for entry in yaml.safe_load(MANIFEST.read_text())["backports"]]
APPLY_MODES = ["lazy", "eager", "late", "scoped"]

_runs: dict[str, dict[str, Any]] = {}


def run_mode(mode: str, scratch: Path) -> dict[str, Any]:
    """The probes' JSON for ``mode``, run once per test session."""
    if mode not in _runs:
        proc = subprocess.run(
            [sys.executable, str(PROBES), mode, str(MANIFEST)],
            capture_output=True,
            text=True,
            # The default of compile_threads follows this variable: 4 makes
            # it differ from the fix's 1 on any machine, one core included.
            env=python_env(
                TORCHINDUCTOR_COMPILE_THREADS="4",
                TORCHINDUCTOR_CACHE_DIR=str(scratch / "inductor-cache"),
            ),
            cwd=scratch,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-4000:]
        _runs[mode] = json.loads(proc.stdout.splitlines()[-1])
    return _runs[mode]


def installed_sources() -> Path:
    # Where torch is installed, found without importing it.
    spec = importlib.util.find_spec("torch")
    assert spec is not None
    assert spec.origin is not None
    return Path(spec.origin).parent.parent


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("examples")


def test_the_manifest_is_locked_and_check_passes() -> None:
    for entry in yaml.safe_load(MANIFEST.read_text())["backports"]:
        assert entry.get("sha256"), f"{entry['id']} is not pinned: run backport-tool lock"
    proc = run_backport_tool("check", "--manifest", str(MANIFEST), "--enable", "all")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1] == "torch 2.11.0: 8 ready"


def test_a_static_read_of_the_installed_torch_reports_no_signature_drift() -> None:
    # The manifest records the live spelling of register_parameter's
    # signature (torch.nn.parameter.Parameter | None); its source says
    # Parameter | None.
    report = check(
        MANIFEST, source=str(installed_sources()), enable=["accelerate-init-empty-weights"]
    )
    result = report.by_id("accelerate-init-empty-weights")
    (target,) = result.targets
    assert target.expected_signature != target.actual_signature
    assert target.signature_matches is True
    assert result.status is Status.READY
    assert result.reason == "would apply: targets found, signatures match, fingerprints match"


def test_lock_from_the_installed_sources_keeps_the_live_signature(tmp_path: Path) -> None:
    copy = tmp_path / "library-patches"
    shutil.copytree(MANIFEST.parent, copy)
    manifest = copy / "manifest.yaml"
    lock(manifest, source=str(installed_sources()))
    assert manifest.read_text() == MANIFEST.read_text()


def test_opt_in_backports_stay_out_of_a_plain_apply() -> None:
    proc = run_backport_tool("check", "--manifest", str(MANIFEST), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    statuses = {b["id"]: b["status"] for b in json.loads(proc.stdout)["backports"]}
    assert statuses == {
        "vllm-dynamo-runtime-env-builtins": "ready",
        "vllm-inductor-compile-threads": "ready",
        "vllm-skip-pre-grad-passes": "disabled",
        "unsloth-dynamo-recompile-limit": "ready",
        "accelerate-init-empty-weights": "disabled",
        "deepspeed-zero3-linear": "disabled",
        "deepspeed-fx-dce-keeps-offload-calls": "ready",
        "unsloth-layernorm-fp32": "disabled",
    }


@pytest.mark.parametrize("backport_id", IDS)
def test_control_the_probe_fails_without_the_backport(backport_id: str, scratch: Path) -> None:
    assert run_mode("control", scratch)["after"][backport_id] is False


@pytest.mark.parametrize("mode", APPLY_MODES)
@pytest.mark.parametrize("backport_id", IDS)
def test_the_path_torch_calls_runs_the_fix(backport_id: str, mode: str, scratch: Path) -> None:
    result = run_mode(mode, scratch)
    assert result["after"][backport_id] is True
    if mode == "scoped":
        # Each block restored what it changed: the probe fails again after it.
        assert result["outside"][backport_id] is False
    else:
        assert result["statuses"][backport_id] == "applied"
    if mode == "lazy":
        assert result["torch_imported_at_apply"] is False
    if mode == "late":
        # The target's module was imported and used before apply, without the fix.
        assert result["before"][backport_id] is False


# Run without backport-tool or the patch set: nothing but torch unpickles it.
LOAD_SAVED = """
import json, sys
import torch

layer = torch.load(sys.argv[1], weights_only=False)
norm = type(layer.norm1)
out = layer(torch.randn(3, 8, dtype=torch.bfloat16))
print(json.dumps({
    "class": f"{norm.__module__}:{norm.__qualname__}",
    "is_torchs": norm is torch.nn.LayerNorm,
    "computes_in_fp32": hasattr(layer.norm1, "computes_in_fp32"),
    "shape": list(out.shape),
    "backport_tool_imported": "backport_tool" in sys.modules,
}))
"""


def test_a_model_saved_while_patched_loads_without_the_patch_set(scratch: Path) -> None:
    saved = run_mode("scoped", scratch)["saved"]
    # Its norms were built by the replacement, inside the enabled() block.
    assert saved["computes_in_fp32"] is True
    proc = subprocess.run(
        [sys.executable, "-c", LOAD_SAVED, saved["path"]],
        capture_output=True,
        text=True,
        cwd=scratch,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert json.loads(proc.stdout) == {
        "class": "torch.nn.modules.normalization:LayerNorm",
        "is_torchs": True,
        "computes_in_fp32": False,
        "shape": [3, 8],
        "backport_tool_imported": False,
    }


def test_the_readme_table_lists_every_backport() -> None:
    readme = (EXAMPLES / "README.md").read_text()
    for backport_id in IDS:
        assert f"`{backport_id}`" in readme
