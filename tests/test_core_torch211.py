"""The runtime core on the real torch 2.11.0: apply touches exactly what the
manifest names (dtypes, builtins, __main__ and user modules stay as they are),
a function and its re-export are one binding, lazy apply inside `import torch`
keeps torch.compile working, and opt-in switches reach every child process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from helpers import write_patch_set

pytestmark = pytest.mark.torch211

torch = pytest.importorskip("torch")

import backport_tool  # noqa: E402
from backport_tool import Status  # noqa: E402


def entry(backport_id: str, module: str, *targets: tuple[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "id": backport_id,
        "summary": f"test {backport_id}",
        "applies_to": ">=2.11.0,<2.12",
        "module": f"backports/{module}",
        "targets": [{"symbol": s, "replacement": r} for s, r in targets],
        **extra,
    }


def python(tmp_path: Path, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    program = tmp_path / f"prog{len(list(tmp_path.glob('prog*.py')))}.py"
    program.write_text(textwrap.dedent(code))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TORCHINDUCTOR_")}
    environ["TORCHINDUCTOR_CACHE_DIR"] = str(tmp_path / "inductor-cache")
    environ["PYTHONPATH"] = os.pathsep.join(
        [str(tmp_path), *filter(None, [environ.get("PYTHONPATH")])]
    )
    environ.update(env)
    return subprocess.run(
        [sys.executable, str(program)],
        capture_output=True,
        text=True,
        env=environ,
        timeout=600,
        cwd=tmp_path,
    )


def last_json(proc: subprocess.CompletedProcess[str]) -> Any:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


DTYPES = """
import torch

PREFERRED = torch.float16
"""


def test_a_value_target_holding_a_dtype_leaves_torchs_dtypes_alone(tmp_path: Path) -> None:
    (tmp_path / "dtypes_target.py").write_text(DTYPES)
    sys.path.insert(0, str(tmp_path))
    try:
        import dtypes_target  # type: ignore[import-not-found]

        path = write_patch_set(
            tmp_path,
            [entry("prefer-bf16", "bf16.py", ("dtypes_target:PREFERRED", "PREFERRED"))],
            {"bf16.py": "import torch\n\nPREFERRED = torch.bfloat16\n"},
        )
        before = (torch.float16, torch.half, torch.bfloat16)
        checked = backport_tool.check(path).by_id("prefer-bf16")
        # A dtype is shared by design: never looked for by identity.
        assert checked.status is Status.READY, checked.reason
        assert checked.targets[0].stale_references == ()
        result = backport_tool.apply(path, eager=True).by_id("prefer-bf16")
        assert result.status is Status.APPLIED, result.reason
        assert dtypes_target.PREFERRED is torch.bfloat16
        assert (torch.float16, torch.half, torch.bfloat16) == before
        assert torch.float16 is torch.half is not torch.bfloat16
        assert torch.tensor([1.0], dtype=torch.float16).dtype is before[0]
        backport_tool.revert()
        assert dtypes_target.PREFERRED is torch.float16
        assert (torch.float16, torch.half, torch.bfloat16) == before
        assert torch.bfloat16 is not torch.float16
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("dtypes_target", None)


LINEAR = """
import backport_tool

CALLS = []


def linear(input, weight, bias=None):
    # A wrapper of the builtin: it counts and calls the original.
    CALLS.append(tuple(input.shape))
    return backport_tool.original("torch.nn.functional:linear")(input, weight, bias)
"""


def test_a_builtin_target_with_a_wrapper_that_calls_the_original(tmp_path: Path) -> None:
    import torch.nn.functional as F

    builtin = torch._C._nn.linear
    assert F.linear is builtin
    path = write_patch_set(
        tmp_path,
        [entry("count-linear", "linear.py", ("torch.nn.functional:linear", "linear"))],
        {"linear.py": LINEAR},
    )
    checked = backport_tool.check(path).by_id("count-linear")
    assert checked.status is Status.READY, checked.reason
    result = backport_tool.apply(path, eager=True).by_id("count-linear")
    assert result.status is Status.APPLIED, result.reason
    layer = torch.nn.Linear(4, 3)
    x = torch.randn(2, 4)
    expected = builtin(x, layer.weight, layer.bias)
    # nn.Linear calls F.linear: the wrapper runs, and never recurses into itself.
    assert torch.equal(layer(x), expected)
    wrapper = sys.modules["_backport_tool_bp_count_linear"]
    assert wrapper.CALLS == [(2, 4)]
    # torch._C is never changed.
    assert torch._C._nn.linear is builtin
    backport_tool.revert()
    assert F.linear is builtin


def both_fail(path: Path, backport_id: str, reason: str) -> None:
    # check and apply say the same, and nothing is applied.
    for report in (backport_tool.check(path), backport_tool.apply(path, eager=True)):
        assert [r.status for r in report.results] == [Status.FAILED, Status.FAILED]
        assert report.by_id(backport_id).reason == reason
    assert backport_tool.applied() == ()


def test_a_function_and_its_reexport_in_two_backports_conflict(tmp_path: Path) -> None:
    import torch._inductor.async_compile
    from torch._inductor import codecache

    original = codecache.code_hash
    assert vars(torch._inductor.async_compile)["code_hash"] is original
    wrapper = (
        "import backport_tool\n\n\ndef code_hash(code, extra=''):\n"
        "    return backport_tool.original('{}')(code, extra)\n"
    )
    targets = {
        "by-definition": "torch._inductor.codecache:code_hash",
        "by-reexport": "torch._inductor.async_compile:code_hash",
    }
    backports = [
        entry(bid, f"{bid.replace('-', '_')}.py", (symbol, "code_hash"))
        for bid, symbol in targets.items()
    ]
    modules = {f"{b.replace('-', '_')}.py": wrapper.format(s) for b, s in targets.items()}
    both_fail(
        write_patch_set(tmp_path, backports, modules),
        "by-reexport",
        "conflict: torch._inductor.async_compile:code_hash is the same function as a "
        "target of backport 'by-definition' (a re-export or copy of it); backports "
        "by-definition and by-reexport would both replace it: merge them, or declare the "
        "other name under the target's copies:",
    )
    # Declared as a copy, the overlap is known from the manifest alone.
    backports[0]["targets"][0]["copies"] = [targets["by-reexport"]]
    both_fail(
        write_patch_set(tmp_path, backports, modules),
        "by-definition",
        "conflict: backports by-definition and by-reexport both change "
        "torch._inductor.async_compile:code_hash (declared as a copy of "
        "torch._inductor.codecache:code_hash in by-definition); a binding belongs to one "
        "backport only: merge them, or disable one",
    )
    assert codecache.code_hash is original


USER_CODE = """
import json
import backport_tool
import torch._inductor.codecache as codecache
import user_copy
from torch._inductor.codecache import code_hash

ORIGINAL = code_hash
report = backport_tool.apply("manifest.yaml", eager=True)
print(json.dumps([
    report.by_id("wrap-hash").status.value,
    codecache.code_hash is not ORIGINAL,
    code_hash is ORIGINAL,
    user_copy.code_hash is ORIGINAL,
]))
"""


def test_main_and_user_modules_are_never_touched(tmp_path: Path) -> None:
    (tmp_path / "user_copy.py").write_text("from torch._inductor.codecache import code_hash\n")
    write_patch_set(
        tmp_path,
        [
            entry(
                "wrap-hash",
                "wrap.py",
                ("torch._inductor.codecache:code_hash", "code_hash"),
                # A lock would declare torch's own copies; none is declared here.
            )
        ],
        {
            "wrap.py": "import backport_tool\n\n\ndef code_hash(code, extra=''):\n"
            "    return backport_tool.original('torch._inductor.codecache:code_hash')"
            "(code, extra)\n"
        },
    )
    status, patched, main_kept, user_kept = last_json(python(tmp_path, USER_CODE))
    assert (status, patched, main_kept, user_kept) == ("applied", True, True, True)


LAYER_NORM = """
from torch.nn.modules.normalization import LayerNorm as _Base


class LayerNorm(_Base):
    PATCHED = True
"""

LAZY_LAYER_NORM = """
import json
import backport_tool

backport_tool.apply("manifest.yaml")
import torch  # torch.nn is imported, and patched, while this import runs

applied = torch.nn.LayerNorm.__dict__.get("PATCHED", False)


def f(x):
    return torch.nn.functional.relu(x) * 2 + 1


out = torch.compile(f)(torch.ones(3))
report = backport_tool.current_report()
import torch.compiler
print(json.dumps([
    applied,
    report.by_id("layer-norm").status.value,
    out.tolist(),
    "backport-tool:" in torch.compiler.config.cache_key_tag,
    torch.nn.LayerNorm(4)(torch.ones(2, 4)).shape[0],
]))
"""


def test_lazy_apply_of_a_target_imported_inside_import_torch(tmp_path: Path) -> None:
    write_patch_set(
        tmp_path,
        [entry("layer-norm", "layer_norm.py", ("torch.nn:LayerNorm", "LayerNorm"))],
        {"layer_norm.py": LAYER_NORM},
    )
    applied, status, out, tagged, rows = last_json(python(tmp_path, LAZY_LAYER_NORM))
    assert (applied, status, out, tagged, rows) == (True, "applied", [3.0, 3.0, 3.0], True, 2)


COUNTING = """
import os


def should_realize_on_reuse(self, users):
    with open(os.environ["DECISION_LOG"], "a") as log:
        log.write(f"{{os.getpid()}} {tag}\\n")
    return True
"""

REACH = """
import json, os
import backport_tool

backport_tool.apply("manifest.yaml", enable=["opt-in-bp"])
import torch


def f(a, b, c, d):
    x = a + b + c + d
    return x * 2, x - 1, x.sin()


if __name__ == "__main__":
    args = [torch.randn(32, 64) for _ in range(4)]
    torch.compile(f, fullgraph=True)(*args)
    # `import multiprocessing` in __main__ makes torch 2.11's graph pickler
    # look torch objects up on __mp_main__ in the compile subprocess, with or
    # without backport-tool: the pool lives in another module.
    import reach_worker
    print(json.dumps([os.getpid(), reach_worker.in_spawn_worker()]))
"""

WORKER = """
import multiprocessing


def in_spawn_worker():
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(applied_ids)


def applied_ids():
    import os
    import torch._inductor.ir
    import backport_tool
    return [os.getpid(), sorted(a.id for a in backport_tool.applied())]
"""


def test_an_enabled_opt_in_reaches_spawn_workers_and_inductor_subprocesses(
    tmp_path: Path,
) -> None:
    symbol = "torch._inductor.ir:StorageBox.should_realize_on_reuse"
    write_patch_set(
        tmp_path,
        [
            entry("default-bp", "default.py", (symbol, "should_realize_on_reuse")),
            entry("opt-in-bp", "optin.py", (symbol, "should_realize_on_reuse"), opt_in=True),
        ],
        {
            "default.py": COUNTING.format(tag="default"),
            "optin.py": COUNTING.format(tag="opt-in"),
        },
    )
    (tmp_path / "reach_worker.py").write_text(WORKER)
    log = tmp_path / "decisions.log"
    proc = python(
        tmp_path,
        REACH,
        TORCHINDUCTOR_FX_COMPILE_MODE="subprocess",
        DECISION_LOG=str(log),
        TORCHINDUCTOR_COMPILE_THREADS="1",
    )
    parent, (worker_pid, worker_applied) = last_json(proc)
    assert worker_pid != parent
    assert worker_applied == ["opt-in-bp"]
    decisions = [line.split() for line in log.read_text().splitlines()]
    child = {tag for pid, tag in decisions if int(pid) != parent}
    # Inductor's compile subprocess ran the opt-in backport, never the default.
    assert child == {"opt-in"}, decisions


def test_torch_defaults_without_a_source_repr_are_named_as_the_source_names_them() -> None:
    # <function noop_context_fn at 0x...> and <RedOpType.SUM: 0> are no
    # signature, and differ between processes; lock records this text.
    import torch.distributed.distributed_c10d as c10d
    from torch.utils import checkpoint

    from backport_tool.source import normalize_signature
    from backport_tool.symbols import signature_text

    texts = [signature_text(checkpoint.checkpoint), signature_text(c10d.all_reduce)]
    assert texts[1] == "(tensor, op=ReduceOp.SUM, group=None, async_op: bool = False)"
    assert texts[0] is not None
    assert (
        "context_fn: Callable[[], Tuple[ContextManager, ContextManager]] = noop_context_fn"
        in (texts[0])
    )
    assert [normalize_signature(t or "") for t in texts] == texts
