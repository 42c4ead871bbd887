# __backport_tool_boot__
# backport_tool.ray.runtime_env() ships this package to every node of a Ray
# cluster (py_modules) and Ray puts the directory that holds it first on each
# worker's PYTHONPATH, so Python imports it at interpreter start. A package,
# not a file: `ray job submit` ships directories only. It runs the boot file of
# `backport-tool apply -- CMD` from the backport-tool installed on the node:
# one boot file, at whatever path that node has it.
from __future__ import annotations


def _boot() -> None:
    import importlib.util
    import logging
    from pathlib import Path

    spec = importlib.util.find_spec("backport_tool")
    if spec is None or spec.origin is None:
        # Never the reason a worker does not start; verify() names the node.
        logging.getLogger("backport_tool").warning(
            "backport-tool: the patch set was not applied at startup: backport-tool is not "
            "installed on this node"
        )
        return
    boot = Path(spec.origin).parent / "_boot" / "sitecustomize.py"
    # It applies the patch set, then runs the sitecustomize this one shadows.
    exec(compile(boot.read_bytes(), str(boot), "exec", dont_inherit=True), globals())


_boot()
