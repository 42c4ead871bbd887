"""Process reach on the real torch 2.11.0: lazy apply, `apply -- CMD` into
spawned workers and torchrun ranks, Inductor's subprocess compile mode, and
compile caches keyed by the patch set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import run_two_ranks

pytestmark = pytest.mark.torch211

torch = pytest.importorskip("torch")

import backport_tool  # noqa: E402

# The bundled default on torch 2.11.
BACKPORT = "inductor-realize-on-reuse-refined"
MODULE = "_backport_tool_bp_inductor_realize_on_reuse_refined"
# The opt-in faithful port: at these small sizes it flips a decision that the
# refined model leaves to 2.11, so a recorded flip proves it decided.
FAITHFUL = "inductor-realize-on-reuse"

GRAPH = """
def f(a, b, c, d):
    # 4 reads, 3 pointwise users: the decision the faithful port flips
    x = a + b + c + d
    return x * 2, x - 1, x.sin()
"""


def python(
    tmp_path: Path, code: str, *args: str, env: dict[str, str] | None = None, via_cli: bool = False
) -> subprocess.CompletedProcess[str]:
    program = tmp_path / f"prog{len(list(tmp_path.glob('prog*.py')))}.py"
    program.write_text(textwrap.dedent(code))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TORCHINDUCTOR_")}
    environ["TORCHINDUCTOR_CACHE_DIR"] = str(tmp_path / "inductor-cache")
    environ.update(env or {})
    command = [sys.executable, str(program), *args]
    if via_cli:
        command = [sys.executable, "-m", "backport_tool", "apply", "--", *command]
    return subprocess.run(
        command, capture_output=True, text=True, env=environ, timeout=600, cwd=tmp_path
    )


def last_json(proc: subprocess.CompletedProcess[str]) -> Any:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_lazy_apply_does_not_import_inductor_and_applies_on_first_compile(tmp_path: Path) -> None:
    code = f"""
    import json, sys, torch, backport_tool
    first = backport_tool.apply().by_id("{BACKPORT}").status.value
    imported = "torch._inductor.ir" in sys.modules
    {textwrap.indent(GRAPH, "    ").strip()}
    args = [torch.randn(32, 64) for _ in range(4)]
    out = torch.compile(f, fullgraph=True)(*args)
    from torch._inductor.ir import StorageBox
    print(json.dumps([first, imported, StorageBox.should_realize_on_reuse.__module__,
                      backport_tool.current_report().by_id("{BACKPORT}").status.value,
                      all(torch.allclose(o, r) for o, r in zip(out, f(*args)))]))
    """
    assert last_json(python(tmp_path, code)) == ["pending", False, MODULE, "applied", True]


def test_spawn_pool_workers_under_apply_cmd(tmp_path: Path) -> None:
    code = """
    import json, multiprocessing

    def worker(_):
        from torch._inductor.ir import StorageBox
        return StorageBox.should_realize_on_reuse.__module__

    if __name__ == "__main__":
        with multiprocessing.get_context("spawn").Pool(2) as pool:
            print(json.dumps(pool.map(worker, range(2))))
    """
    assert last_json(python(tmp_path, code, via_cli=True)) == [MODULE, MODULE]


def test_torchrun_ranks_apply_and_compile(tmp_path: Path) -> None:
    code = f"""
    import json, os, torch, torch.distributed as dist
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)
    {textwrap.indent(GRAPH, "    ").strip()}
    args = [torch.randn(32, 64) for _ in range(4)]
    out = torch.compile(f, fullgraph=True)(*args)
    ok = torch.tensor([float(all(torch.allclose(o, r) for o, r in zip(out, f(*args))))])
    dist.all_reduce(ok)
    from torch._inductor.ir import StorageBox
    patched = StorageBox.should_realize_on_reuse.__module__ == "{MODULE}"
    # One file per rank: both ranks share one stdout pipe, where print's text and
    # its newline are separate writes that the other rank can land between.
    with open(f"rank{{rank}}.json", "w") as out:
        json.dump({{"rank": rank, "patched": patched, "ranks_ok": ok.item()}}, out)
    # Both ranks leave together: gloo can abort a rank whose peer tears down first.
    dist.barrier()
    dist.destroy_process_group()
    """
    program = tmp_path / "ranks.py"
    program.write_text(textwrap.dedent(code))
    # `apply --` execs torchrun, so every rank starts with the patch set.
    proc = run_two_ranks(
        program, cwd=tmp_path, launcher=(sys.executable, "-m", "backport_tool", "apply", "--")
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ranks = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(2)]
    assert ranks == [
        {"rank": 0, "patched": True, "ranks_ok": 2.0},
        {"rank": 1, "patched": True, "ranks_ok": 2.0},
    ]


COUNTING = """
import importlib.util, os

_spec = importlib.util.spec_from_file_location("_real_realize_bp", os.environ["REAL_BACKPORT"])
_real = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_real)


def should_realize_on_reuse(self, users):
    result = _real.should_realize_on_reuse(self, users)
    with open(os.environ["DECISION_LOG"], "a") as log:
        log.write(f"{os.getpid()} {users} {int(result)}\\n")
    return result
"""


@pytest.mark.parametrize("own_sitecustomize", [False, True])
@pytest.mark.parametrize("how", ["library", "cli"])
def test_inductor_subprocess_compile_mode_gets_the_patch(
    tmp_path: Path, how: str, own_sitecustomize: bool
) -> None:
    # The shipped faithful port, wrapped to record each decision with its pid;
    # it stays opt-in, so the enable switch must reach the compile subprocess.
    # torch gives that subprocess the parent's sys.path as PYTHONPATH: a
    # sitecustomize in the program's directory came first there, and the
    # subprocess ran it instead of ours. Both must run, ours first.
    ran = tmp_path / "sitecustomize.log"
    if own_sitecustomize:
        (tmp_path / "sitecustomize.py").write_text(
            "import os, sys\n"
            f"with open({str(ran)!r}, 'a') as log:\n"
            "    log.write(f\"{os.getpid()} {'backport_tool' in sys.modules}\\n\")\n"
        )
    bundled = backport_tool.default_manifest_path()
    data = yaml.safe_load(bundled.read_text())
    data["backports"] = [e for e in data["backports"] if e["id"] == FAITHFUL]
    assert data["backports"][0]["opt_in"] is True
    data["backports"][0]["module"] = "backports/counting.py"
    data["backports"][0].pop("sha256", None)  # the pin is the real module's
    (tmp_path / "backports").mkdir()
    (tmp_path / "backports" / "counting.py").write_text(COUNTING)
    (tmp_path / "manifest.yaml").write_text(yaml.safe_dump(data))
    log = tmp_path / "decisions.log"
    code = f"""
    import json, os, sys, torch, backport_tool
    if sys.argv[2] == "library":
        backport_tool.apply(sys.argv[1])  # the library call, no `apply -- CMD`
    {textwrap.indent(GRAPH, "    ").strip()}
    args = [torch.randn(32, 64) for _ in range(4)]
    out = torch.compile(f, fullgraph=True)(*args)
    print(json.dumps([os.getpid(), all(torch.allclose(o, r) for o, r in zip(out, f(*args)))]))
    """
    env = {
        "BACKPORT_TOOL_ENABLE": FAITHFUL,
        "TORCHINDUCTOR_FX_COMPILE_MODE": "subprocess",
        "DECISION_LOG": str(log),
        "REAL_BACKPORT": str(bundled.parent / "backports" / "inductor_realize_on_reuse.py"),
    }
    manifest = str(tmp_path / "manifest.yaml")
    if how == "cli":
        env["BACKPORT_TOOL_MANIFEST"] = manifest
    proc = python(tmp_path, code, manifest, how, env=env, via_cli=how == "cli")
    parent, ok = last_json(proc)
    assert ok is True
    decisions = [line.split() for line in log.read_text().splitlines()]
    child = [d for d in decisions if int(d[0]) != parent]
    assert child, decisions  # the heuristic ran, patched, in Inductor's child
    assert all(d[0] == child[0][0] for d in child)
    assert ["3", "1"] in [d[1:] for d in child]  # 3 users, realized: the flipped decision
    if own_sitecustomize:
        # After ours (backport_tool already imported), in that very process.
        assert f"{child[0][0]} True" in ran.read_text().splitlines()


def test_compile_cache_is_keyed_by_the_patch_set(tmp_path: Path) -> None:
    code = f"""
    import json, sys, torch, backport_tool
    from torch._dynamo.utils import counters
    if sys.argv[1] == "patched":
        backport_tool.apply(eager=True)
    {textwrap.indent(GRAPH, "    ").strip()}
    args = [torch.ones(16, 32) for _ in range(4)]
    torch.compile(f, fullgraph=True)(*args)
    c = counters["inductor"]
    print(json.dumps([c["fxgraph_cache_miss"], c["fxgraph_cache_hit"],
                      torch.compiler.config.cache_key_tag]))
    """
    env = {"TORCH_COMPILE_CACHE_KEY_TAG": "users-tag"}
    plain = last_json(python(tmp_path, code, "plain", env=env))
    patched = last_json(python(tmp_path, code, "patched", env=env))
    again = last_json(python(tmp_path, code, "patched", env=env))
    plain_again = last_json(python(tmp_path, code, "plain", env=env))
    assert plain == [1, 0, "users-tag"]
    assert patched[:2] == [1, 0]  # must not reuse the unpatched artifact
    assert str(patched[2]).startswith("users-tag|backport-tool:")
    assert again[:2] == [0, 1]
    assert plain_again == [0, 1, "users-tag"]


def test_revert_restores_the_users_cache_key_tag() -> None:
    with torch.compiler.config.patch(cache_key_tag="mine"):
        backport_tool.apply(eager=True)
        try:
            assert torch.compiler.config.cache_key_tag.startswith("mine|backport-tool:")
        finally:
            backport_tool.revert()
        assert torch.compiler.config.cache_key_tag == "mine"
