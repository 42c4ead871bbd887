"""The patch set in every Ray worker process: :func:`runtime_env` and :func:`verify`.

``runtime_env()`` returns a Ray ``runtime_env`` fragment. It reaches workers the
way ``backport-tool apply -- CMD`` reaches a process tree, through the
interpreter's startup: Ray ships a ``sitecustomize`` package of ours
(``py_modules``) to every node and puts the directory that holds it first on
each worker's ``PYTHONPATH``; it runs the boot file of ``apply -- CMD`` from the
backport-tool installed on the node. ``env_vars`` carry the manifest and the
switches. Every worker process then applies the patch set lazily at
interpreter start, before Ray runs any task or actor code in it; the
subprocesses a task starts inherit it from the worker's own ``apply()``.

It leaves ``worker_process_setup_hook`` alone: Ray allows one per job, and it
is the user's. Ray is an optional dependency: ``import backport_tool`` never
imports this module, this module imports ``ray`` only inside :func:`verify`,
and :func:`runtime_env` uses it only when this process has imported it and is
connected to a cluster.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..api import current_report, manifest_for
from ..config import (
    DISABLE_ENV,
    ENABLE_ENV,
    MANIFEST_ENV,
    Switches,
    bundled_manifest_path,
    child_environment,
    default_manifest_path,
    switches,
    unknown_switches,
)
from ..errors import BackportToolError, MissingDependencyError, UsageError, describe
from ..manifest_file import is_package_spec, real_location
from ..report import Report, Status
from ..state import STATE

__all__ = ["WorkerMismatchError", "in_force", "runtime_env", "verify"]

logger = logging.getLogger("backport_tool")

# The statuses that count as the patch set of a process: in force now, or put
# in force the moment its target module is imported (a worker that has not
# imported torch yet has its backports pending).
_IN_FORCE = (Status.APPLIED, Status.PARTIAL, Status.PENDING)

# The `sitecustomize` package Ray ships to the workers. A directory, not our
# boot file itself: `ray job submit` uploads py_modules directories only.
BOOT_PACKAGE = Path(__file__).resolve().parent / "_boot" / "sitecustomize"


class WorkerMismatchError(BackportToolError):
    """:func:`verify` found Ray workers whose patch set differs from the driver's.

    ``mismatched`` maps each such node id to why: what its worker has in force
    instead, or that it could not report. ``reports`` holds every node's
    report, keyed by node id (None where the worker applied no patch set or
    did not answer). ``expected`` is the driver's patch set.
    """

    exit_code = 1

    def __init__(
        self,
        expected: tuple[str, ...],
        mismatched: Mapping[str, str],
        reports: Mapping[str, Report | None],
        addresses: Mapping[str, str] | None = None,
    ) -> None:
        self.expected = expected
        self.mismatched = dict(mismatched)
        self.reports = dict(reports)
        where = addresses or {}
        lines = "\n".join(
            f"  node {node}" + (f" ({where[node]})" if node in where else "") + f": {why}"
            for node, why in sorted(mismatched.items())
        )
        super().__init__(
            f"Ray workers on {len(mismatched)} of {len(reports)} nodes do not apply this driver's "
            f"patch set ({_describe(expected)}):\n{lines}\nHint: give every job, task and actor "
            "backport_tool.ray.runtime_env() (merged into its own runtime_env), and install "
            "backport-tool and the same torch on every node"
        )


def runtime_env(
    manifest: str | os.PathLike[str] | None = None,
    *,
    enable: str | Iterable[str] = (),
    disable: str | Iterable[str] = (),
) -> dict[str, Any]:
    """Return a Ray ``runtime_env`` fragment that makes every worker process apply
    the patch set of ``manifest`` at interpreter start, lazily, as
    ``backport-tool apply -- CMD`` does: tasks, actors and the subprocesses they
    start.

    Merge it into your own runtime_env and pass that to ``ray.init(runtime_env=...)``,
    ``.options(runtime_env=...)`` or ``ray job submit --runtime-env-json``. It
    has two keys: ``py_modules`` (our ``sitecustomize`` package; append your own
    modules to the list) and ``env_vars`` (the manifest and the switches;
    add yours to the dict). Ray replaces, not merges, a ``py_modules`` list
    that a task or actor gives in ``.options()``: merge the fragment there
    too. ``worker_process_setup_hook`` stays yours.

    Before ``ray.init()`` the ``py_modules`` entry is the local path of our
    ``sitecustomize`` package, which ``ray.init()`` and ``ray job submit`` upload.
    ``.options()`` takes only URIs, so in a connected driver (after
    ``ray.init()``) this uploads it to the cluster, as ``ray.init()``
    would, and returns its ``gcs://`` URI instead; that fragment works in
    ``.options()`` and for the rest of the job.

    ``manifest`` is what :func:`backport_tool.apply` takes (default: the
    patch set that ``apply()`` in this process applied, with its switches;
    before any apply, ``$BACKPORT_TOOL_MANIFEST``, else the bundled patch
    set). A file is
    exported as its real path, which every node must have; the bundled patch
    set is exported as "the bundled one", so each worker reads the one
    installed next to it; a ``pkg:PACKAGE/path`` manifest is exported as
    given, so each worker reads it from its own copy of that package (ship it
    with ``py_modules``). ``enable`` and ``disable`` add to
    ``BACKPORT_TOOL_ENABLE`` and ``BACKPORT_TOOL_DISABLE`` of this process, as
    for ``apply()``.

    The manifest is validated here, on the driver. Raises
    :class:`~backport_tool.ManifestError` when it is invalid, and
    :class:`~backport_tool.UsageError` when a switch names no backport of it
    (a typo would otherwise go unnoticed on every node).
    """
    applied = _exported() if manifest is None else None
    given = manifest if manifest is not None else applied[0] if applied else default_manifest_path()
    exported: str
    if is_package_spec(given):
        # A file inside an importable package: each worker finds it in its own
        # copy of that package (installed, or shipped with py_modules).
        exported = os.fspath(given)
        checked = manifest_for(given)
    else:
        location = real_location(Path(given))
        checked = manifest_for(location)
        exported = "" if location == _bundled() else str(location)
    switched = switches(enable, disable)
    if applied is not None:
        # What this driver applies: the switches apply() exported with it.
        switched = Switches(switched.disabled | applied[2], switched.enabled | applied[1])
    problems = unknown_switches(
        (b.id for b in checked.backports),
        enable,
        disable,
        given_as=("runtime_env(enable=...)", "runtime_env(disable=...)"),
    )
    if problems:
        raise UsageError("; ".join(problems))
    # The one exporter of the manifest and switches (boot=False: Ray puts the
    # shipped sitecustomize on PYTHONPATH, at a path only the node knows).
    env_vars = child_environment(Path(), switched, {}, boot=False)
    # Both switches, empty ones too: a node started with its own (in its image,
    # or under `apply -- ray start`) must not select other backports than the
    # driver did, which verify() would then find.
    for name in (ENABLE_ENV, DISABLE_ENV):
        env_vars.setdefault(name, "")
    # An empty manifest variable means the bundled patch set of the process
    # that reads it; a path would name a file of this machine.
    env_vars[MANIFEST_ENV] = exported
    return {"py_modules": [_boot_module()], "env_vars": env_vars}


def _exported() -> tuple[Path, frozenset[str], frozenset[str]] | None:
    # The manifest and the switches (enabled, disabled) that apply() in this
    # process exported to its children, if it did.
    exported = STATE.exported
    if exported is None:
        return None
    split = exported.index("|")
    return Path(exported[0]), frozenset(exported[1:split]), frozenset(exported[split + 1 :])


def _boot_module() -> str:
    # Ray ships a py_modules directory to every node and puts the directory it
    # unpacked it in first on the worker's PYTHONPATH: our `sitecustomize`
    # package, at whatever path the node has it.
    boot = str(BOOT_PACKAGE)
    ray = sys.modules.get("ray")  # never imported here: Ray is optional
    if ray is None or not ray.is_initialized():
        return boot
    # A connected driver may pass the fragment to .options(), which takes
    # URIs only: Ray uploads local paths at the job level alone (ray.init, ray
    # job submit). Upload it as those do, and name it by its content's URI.
    try:
        from ray._private.runtime_env.py_modules import (  # noqa: PLC0415
            upload_py_modules_if_needed,
        )

        with tempfile.TemporaryDirectory(prefix="backport-tool-ray-") as scratch:
            uploaded = upload_py_modules_if_needed(
                {"py_modules": [boot]}, include_gitignore=True, scratch_dir=scratch
            )
        return str(uploaded["py_modules"][0])
    except Exception as exc:  # another Ray's internals: the job-level form still works
        logger.warning(
            "backport-tool: could not upload %s to the Ray cluster (%s: %s); this runtime_env "
            "works in ray.init() and ray job submit, not in .options()",
            boot,
            type(exc).__name__,
            exc,
        )
        return boot


def _bundled() -> Path | None:
    try:
        return real_location(bundled_manifest_path())
    except BackportToolError:
        return None


def in_force(report: Report | None) -> tuple[str, ...]:
    """The patch set of a process, as :func:`verify` compares it: the sorted ids
    of the backports its report has applied, partial or pending (pending: put
    in force when its target module is imported). Empty for no report, or for
    a patch set that could not be applied at all."""
    if report is None or report.error is not None:
        return ()
    return tuple(sorted(r.id for r in report.results if r.status in _IN_FORCE))


def _worker_report() -> Report | None:
    # Runs in a Ray worker: the report of the patch set its interpreter applied
    # at startup, if any. Importing backport_tool here applies nothing.
    import backport_tool  # noqa: PLC0415 - the worker has it once it reports

    return backport_tool.current_report()


def verify(
    *, runtime_env: Mapping[str, Any] | None = None, timeout: float | None = 300
) -> dict[str, Report | None]:
    """Run one task on every alive node of the connected Ray cluster and return
    each worker's report (None where it has applied no patch set), keyed by
    node id.

    Raises :class:`WorkerMismatchError` naming the nodes whose worker's patch
    set (:func:`in_force`) differs from this driver's, or that did not answer
    within ``timeout`` seconds. The tasks run with the job's runtime_env, or
    with ``runtime_env`` when given (the one your tasks and actors get through
    ``.options()``). Needs ``ray.init()`` and a patch set applied in this
    process first (a job submitted with :func:`runtime_env` applies it at
    startup; otherwise call :func:`backport_tool.apply`); raises
    :class:`~backport_tool.UsageError` when there is none, and
    :class:`~backport_tool.MissingDependencyError` without Ray.
    """
    try:
        import ray  # noqa: PLC0415 - an optional dependency
        from ray.util.scheduling_strategies import (  # noqa: PLC0415
            NodeAffinitySchedulingStrategy,
        )
    except ImportError as exc:
        raise MissingDependencyError("backport_tool.ray.verify()", "ray", "ray", exc) from exc
    driver = current_report()
    if driver is None:
        raise UsageError(
            "verify() compares the Ray workers' patch set with this driver's, and this process "
            "has applied none: call backport_tool.apply() first, with the manifest and switches "
            "you gave runtime_env()"
        )
    if not ray.is_initialized():
        raise UsageError("verify() runs a task on every node: call ray.init() first")
    expected = in_force(driver)
    options: dict[str, Any] = {"num_cpus": 0}
    if runtime_env is not None:
        options["runtime_env"] = dict(runtime_env)
    probe = ray.remote(_worker_report)
    # The address too, for the message: a node id alone tells a person little.
    nodes = {n["NodeID"]: n.get("NodeManagerAddress", "?") for n in ray.nodes() if n["Alive"]}
    pending = {
        node: probe.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False), **options
        ).remote()
        for node in sorted(nodes)
    }
    ready, _ = ray.wait(list(pending.values()), num_returns=len(pending), timeout=timeout)
    reports: dict[str, Report | None] = {}
    mismatched: dict[str, str] = {}
    for node, ref in pending.items():
        if ref not in ready:
            ray.cancel(ref, force=True)
            reports[node] = None
            mismatched[node] = f"no answer within {timeout} s"
            continue
        try:
            report = ray.get(ref)
        except Exception as exc:  # a task error names the node; the others still count
            reports[node] = None
            mismatched[node] = f"the probe task failed: {describe(exc)}"
            continue
        reports[node] = report
        found = in_force(report)
        if found != expected:
            mismatched[node] = _mismatch(report, found)
    logger.debug("backport-tool: verify(): %d nodes, %d differ", len(nodes), len(mismatched))
    if mismatched:
        raise WorkerMismatchError(expected, mismatched, reports, nodes)
    return reports


def _describe(ids: tuple[str, ...]) -> str:
    return ", ".join(ids) if ids else "nothing in force"


def _mismatch(report: Report | None, found: tuple[str, ...]) -> str:
    if report is None:
        return "its worker has applied no patch set (started without the runtime_env?)"
    if report.error is not None:
        return f"its worker's patch set failed: {report.error}"
    problems = [f"{r.id}: {r.status.value} ({r.reason})" for r in report.results if r.is_problem]
    extra = f"; {'; '.join(problems)}" if problems else ""
    return f"{_describe(found)} from {report.manifest}{extra}"
