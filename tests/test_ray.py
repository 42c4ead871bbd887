"""backport_tool.ray on a local two-node Ray cluster: every worker process
(fresh ones, actors, the subprocesses they start) of a job given
runtime_env() runs the fix, a job without it does not, a job's own
worker_process_setup_hook still runs, and verify() tells the two apart.

The cluster is one module-scoped fixture on loopback (127.0.0.1), with its own
RAY_TMPDIR; its teardown fails the run if any Ray process outlives it.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import ray_tasks
from helpers import TESTS_DIR, PatchSet
from ray_cluster import TMPDIR_ENV, cluster_processes, environ_restored, wait_gone

import backport_tool
from backport_tool.config import DISABLE_ENV, ENABLE_ENV, LOG_ENV, MANIFEST_ENV
from backport_tool.ray import BOOT_PACKAGE, WorkerMismatchError, in_force, runtime_env, verify

# Small nodes: the tests run on 2-core CI machines.
NODE: dict[str, Any] = {"num_cpus": 1, "object_store_memory": 100 * 1024**2}
PATCHED, UNPATCHED = 1001, 2


@dataclass(frozen=True)
class LocalCluster:
    address: str
    nodes: tuple[str, ...]
    patchset: PatchSet
    manifest: Path
    ray_tmpdir: Path

    @property
    def own_env(self) -> dict[str, Any]:
        """A job's own runtime_env: its code (the fake package and the task
        module) on the workers' path."""
        path = os.pathsep.join([str(self.patchset.site), str(TESTS_DIR)])
        return {"env_vars": {"PYTHONPATH": path}}

    def with_fix(self, **extra: Any) -> dict[str, Any]:
        """The job's own runtime_env with runtime_env() merged in."""
        fragment = runtime_env(self.manifest)
        merged = {**self.own_env, **extra}
        merged["py_modules"] = [*merged.get("py_modules", []), *fragment["py_modules"]]
        merged["env_vars"] = {**merged["env_vars"], **fragment["env_vars"]}
        return merged


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    # Short, under /tmp: Ray's unix sockets live below it, and their paths
    # have a length limit that pytest's temp paths come close to.
    root = Path(tempfile.mkdtemp(prefix="bt-ray-"))
    patchset = PatchSet(tmp_path_factory.mktemp("ray-patchset"))
    patchset.add("fix", "Widget.compute")
    manifest = patchset.write()
    with environ_restored(), pytest.MonkeyPatch.context() as env:
        # What the nodes inherit, and so every worker: nothing of ours (the
        # control job must run without the patch set), a throwaway cache, no
        # usage reports, and loopback only (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
        # makes Ray bind 127.0.0.1; it is read when ray is imported).
        for name in (MANIFEST_ENV, ENABLE_ENV, DISABLE_ENV, LOG_ENV):
            env.delenv(name, raising=False)
        env.setenv("BACKPORT_TOOL_CACHE_DIR", str(root / "cache"))
        env.setenv(TMPDIR_ENV, str(root))
        env.setenv("RAY_USAGE_STATS_ENABLED", "0")
        env.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        import ray
        from ray.cluster_utils import Cluster

        local = None
        try:
            local = Cluster(initialize_head=True, head_node_args=NODE)
            local.add_node(**NODE)
            local.wait_for_nodes()
            with job(local.address, None):
                nodes = tuple(sorted(n["NodeID"] for n in ray.nodes() if n["Alive"]))
            yield LocalCluster(local.address, nodes, patchset, manifest, root)
        finally:
            ray.shutdown()
            if local is not None:
                local.shutdown()
            left = wait_gone(root)
            for pid, _ in left:  # started by this fixture: ours to end
                os.kill(pid, signal.SIGKILL)
            shutil.rmtree(root, ignore_errors=True)
            patchset.close()
    assert not left, f"Ray processes outlived the cluster: {left}"


@contextmanager
def job(address: str, env: dict[str, Any] | None) -> Iterator[Any]:
    """A driver in this process connected to the cluster, as a job with ``env``."""
    import ray

    ray.init(address=address, runtime_env=env, log_to_driver=False, logging_level=logging.WARNING)
    try:
        yield ray
    finally:
        ray.shutdown()


def on(node: str) -> Any:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(node, soft=False)


def probe_fresh_workers(ray: Any, cluster: LocalCluster, per_node: int) -> list[dict[str, Any]]:
    """``per_node`` tasks on each node, each in a fresh worker process."""
    task = ray.remote(max_calls=1, num_cpus=1)(ray_tasks.probe)
    refs = [
        task.options(scheduling_strategy=on(node)).remote(cluster.patchset.module)
        for node in cluster.nodes
        for _ in range(per_node)
    ]
    return list(ray.get(refs))


def test_the_cluster_is_on_loopback(cluster: LocalCluster) -> None:
    import ray

    assert cluster.address.startswith("127.0.0.1:")
    assert len(cluster.nodes) == 2
    with job(cluster.address, None):
        addresses = {n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]}
    assert addresses == {"127.0.0.1"}
    # The teardown's check that no Ray process outlives the tests finds them:
    # a GCS server and a raylet per node at least.
    commands = [command for _, command in cluster_processes(cluster.ray_tmpdir)]
    assert sum("gcs_server" in c for c in commands) == 1
    assert sum("raylet" in c.split(" ", 1)[0] for c in commands) == 2


def test_fresh_workers_and_actors_on_both_nodes_run_the_fix(cluster: LocalCluster) -> None:
    with job(cluster.address, cluster.with_fix()) as ray:
        tasks = probe_fresh_workers(ray, cluster, per_node=2)
        prober = ray.remote(num_cpus=0)(ray_tasks.Prober)
        actors = [prober.options(scheduling_strategy=on(node)).remote() for node in cluster.nodes]
        from_actors = ray.get([a.probe.remote(cluster.patchset.module) for a in actors])
    assert len({t["pid"] for t in tasks}) == 4  # max_calls=1: four fresh processes
    for results in (tasks, from_actors):
        assert sorted({r["node"] for r in results}) == list(cluster.nodes)
        # In the worker itself (applied at interpreter start, lazily: the
        # target's import applied it) and in a subprocess it started.
        assert {(r["value"], r["child"], r["status"]) for r in results} == {
            (PATCHED, PATCHED, "applied")
        }


def test_a_job_without_the_runtime_env_runs_without_the_fix_but_options_give_it(
    cluster: LocalCluster,
) -> None:
    with job(cluster.address, cluster.own_env) as ray:
        tasks = probe_fresh_workers(ray, cluster, per_node=1)
        # ... but a task given it through .options() runs with the fix: in a
        # connected driver, the fragment names the uploaded boot file by URI.
        options = cluster.with_fix()
        assert options["py_modules"][0].startswith("gcs://_ray_pkg_")
        task = ray.remote(max_calls=1, num_cpus=1)(ray_tasks.probe)
        given = [
            task.options(runtime_env=options, scheduling_strategy=on(node)).remote(
                cluster.patchset.module
            )
            for node in cluster.nodes
        ]
        with_options = ray.get(given)
    assert sorted(t["node"] for t in tasks) == list(cluster.nodes)
    assert {(t["value"], t["child"], t["status"]) for t in tasks} == {(UNPATCHED, UNPATCHED, None)}
    assert sorted(t["node"] for t in with_options) == list(cluster.nodes)
    assert {(t["value"], t["child"], t["status"]) for t in with_options} == {
        (PATCHED, PATCHED, "applied")
    }


def test_a_jobs_own_setup_hook_and_sitecustomize_run_with_the_patch_set(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    own = tmp_path / "own"
    own.mkdir()
    (own / "sitecustomize.py").write_text(
        f"import os\nos.environ[{ray_tasks.OWN_SITE_ENV!r}] = 'ran'\n"
    )
    env = cluster.with_fix(worker_process_setup_hook="ray_tasks.setup_hook")
    env["env_vars"]["PYTHONPATH"] += os.pathsep + str(own)
    with job(cluster.address, env) as ray:
        tasks = probe_fresh_workers(ray, cluster, per_node=1)
    assert sorted(t["node"] for t in tasks) == list(cluster.nodes)
    assert {(t["hook"], t["own_site"], t["value"], t["status"]) for t in tasks} == {
        ("ran", "ran", PATCHED, "applied")
    }


def test_a_patch_set_shipped_with_py_modules_applies_without_its_local_copy(
    cluster: LocalCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The synthetic patch set as a package of its own, named by pkg:.
    name = f"{cluster.patchset.module}_patches"
    package = tmp_path / "ship" / name
    shutil.copytree(cluster.patchset.patches, package)
    (package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(package.parent))  # the driver validates it
    spec = f"pkg:{name}/manifest.yaml"
    fragment = runtime_env(spec)
    assert fragment["env_vars"] == {MANIFEST_ENV: spec, ENABLE_ENV: "", DISABLE_ENV: ""}
    env = {
        "py_modules": [str(package), *fragment["py_modules"]],
        "env_vars": {**cluster.own_env["env_vars"], **fragment["env_vars"]},
    }
    with job(cluster.address, env) as ray:
        # ray.init() uploaded it: the nodes unpack their own copies.
        shutil.rmtree(package.parent)
        tasks = probe_fresh_workers(ray, cluster, per_node=1)
    monkeypatch.delitem(sys.modules, name)
    assert sorted(t["node"] for t in tasks) == list(cluster.nodes)
    assert {(t["value"], t["child"], t["status"]) for t in tasks} == {(PATCHED, PATCHED, "applied")}
    for t in tasks:
        # Each node's own copy, in Ray's runtime resources.
        assert f"{os.sep}py_modules_files{os.sep}" in t["applied_from"]
        assert t["applied_from"].endswith(os.path.join(name, "manifest.yaml"))


def test_verify_passes_with_the_runtime_env(cluster: LocalCluster) -> None:
    backport_tool.apply(cluster.manifest)
    with job(cluster.address, cluster.with_fix()):
        reports = verify()
    assert sorted(reports) == list(cluster.nodes)
    assert {in_force(r) for r in reports.values()} == {("fix",)}


def test_verify_names_the_nodes_whose_workers_lack_it(cluster: LocalCluster) -> None:
    backport_tool.apply(cluster.manifest)
    with job(cluster.address, cluster.own_env), pytest.raises(WorkerMismatchError) as caught:
        verify()
    error = caught.value
    assert sorted(error.mismatched) == list(cluster.nodes)
    assert error.reports == dict.fromkeys(cluster.nodes)
    lines = str(error).splitlines()
    assert lines[0] == "Ray workers on 2 of 2 nodes do not apply this driver's patch set (fix):"
    assert lines[1:3] == [
        f"  node {node} (127.0.0.1): its worker has applied no patch set "
        "(started without the runtime_env?)"
        for node in cluster.nodes
    ]
    assert lines[3:] == [
        "Hint: give every job, task and actor backport_tool.ray.runtime_env() (merged into its "
        "own runtime_env), and install backport-tool and the same torch on every node"
    ]


# Without a cluster.


def test_runtime_env_is_a_fragment_of_py_modules_and_env_vars(
    patchset: PatchSet, tmp_path: Path
) -> None:
    patchset.add("fix", "Widget.compute")
    manifest = patchset.write()
    link = tmp_path / "link.yaml"
    link.symlink_to(manifest)
    assert runtime_env(link) == {
        "py_modules": [str(BOOT_PACKAGE)],
        "env_vars": {MANIFEST_ENV: str(manifest.resolve()), ENABLE_ENV: "", DISABLE_ENV: ""},
    }
    assert runtime_env(str(manifest), enable="fix", disable=["fix"])["env_vars"] == {
        MANIFEST_ENV: str(manifest.resolve()),
        ENABLE_ENV: "fix",
        DISABLE_ENV: "fix",
    }


def test_the_bundled_patch_set_is_each_workers_own() -> None:
    # An empty variable: each worker reads the bundled manifest installed next
    # to it, wherever that is on its node.
    assert runtime_env()["env_vars"] == {MANIFEST_ENV: "", ENABLE_ENV: "", DISABLE_ENV: ""}


def test_runtime_env_refuses_what_would_apply_nothing(patchset: PatchSet, tmp_path: Path) -> None:
    patchset.add("fix", "Widget.compute")
    manifest = patchset.write()
    with pytest.raises(backport_tool.UsageError) as unknown:
        runtime_env(manifest, enable=["fxi"])
    assert str(unknown.value) == (
        "runtime_env(enable=...) names 'fxi', which is no backport of the manifest; "
        "did you mean 'fix'?"
    )
    with pytest.raises(backport_tool.ManifestError):
        runtime_env(tmp_path / "none.yaml")


def test_verify_needs_a_patch_set_in_the_driver() -> None:
    with pytest.raises(backport_tool.UsageError, match=r"call backport_tool\.apply\(\) first"):
        verify()


def test_import_backport_tool_never_imports_ray(patchset: PatchSet) -> None:
    patchset.add("fix", "Widget.compute")
    code = (
        "import sys, backport_tool\n"
        f"backport_tool.apply({str(patchset.write())!r}, eager=True)\n"
        "import backport_tool.ray\n"
        "backport_tool.ray.runtime_env()\n"
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=patchset.env()
    )
    assert (proc.returncode, proc.stdout) == (0, "[]\n"), proc.stderr


def test_runtime_env_after_apply_gives_what_the_driver_applied(patchset: PatchSet) -> None:
    # apply() exports the manifest and its switches to this process's
    # environment; the fragment took the manifest from there but the
    # switches from before the export, so Ray workers ran without the opt-in
    # backport the driver had applied, and verify() failed.
    patchset.add("fix", "Widget.compute")
    patchset.add("extra", "Widget.other", opt_in=True)
    manifest = patchset.write()
    backport_tool.apply(manifest, enable=["extra"], disable="fix")
    expected = {MANIFEST_ENV: str(manifest.resolve()), ENABLE_ENV: "extra", DISABLE_ENV: "fix"}
    assert runtime_env()["env_vars"] == expected
    # Given ones add to them; a manifest given is taken as it is given.
    assert runtime_env(enable="fix")["env_vars"][ENABLE_ENV] == "extra,fix"
    assert runtime_env(manifest)["env_vars"] == {**expected, ENABLE_ENV: "", DISABLE_ENV: ""}
    # And a bare apply() in this process means what it meant before: the
    # bundled patch set, not the one exported for the children.
    assert (
        backport_tool.config.default_manifest_path() == backport_tool.config.bundled_manifest_path()
    )
    backport_tool.revert()
    assert runtime_env()["env_vars"][MANIFEST_ENV] == ""
