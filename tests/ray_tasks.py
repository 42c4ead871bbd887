"""What the Ray tests run in workers. Ray pickles these functions by reference,
so the workers import this module: the tests put its directory on their
PYTHONPATH, as a user's runtime_env carries their own code."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from typing import Any

HOOK_ENV = "BACKPORT_TOOL_TEST_RAY_HOOK"
# Set by a job's own sitecustomize, which ours shadows and must still run.
OWN_SITE_ENV = "BACKPORT_TOOL_TEST_RAY_OWN_SITE"


def setup_hook() -> None:
    """A job's own worker_process_setup_hook: it leaves a mark to find."""
    os.environ[HOOK_ENV] = "ran"


def probe(module: str) -> dict[str, Any]:
    """The fix as this worker sees it: what the target returns, here and in a
    subprocess this worker starts, and this worker's report."""
    import ray

    import backport_tool

    target = importlib.import_module(module)
    report = backport_tool.current_report()
    code = f"import {module}; print({module}.Widget().compute(1))"
    child = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    return {
        "node": ray.get_runtime_context().get_node_id(),
        "pid": os.getpid(),
        "value": target.Widget().compute(1),
        "child": int(child),
        "status": report.by_id("fix").status.value if report else None,
        # The real path of the manifest its applied fix came from.
        "applied_from": next((a.manifest for a in backport_tool.applied() if a.id == "fix"), None),
        "hook": os.environ.get(HOOK_ENV),
        "own_site": os.environ.get(OWN_SITE_ENV),
    }


class Prober:
    """An actor that reports the fix as its worker sees it."""

    def probe(self, module: str) -> dict[str, Any]:
        return probe(module)
