# __backport_tool_boot__
# `backport-tool apply -- CMD` puts this directory first on PYTHONPATH, so that
# every Python process of CMD (spawned workers, subprocesses, torchrun ranks,
# Inductor's compile workers) applies the patch set at interpreter startup.
# It then runs the sitecustomize this one shadows, if there is one.
from __future__ import annotations


def _apply_patch_set() -> None:
    try:
        import backport_tool

        backport_tool.apply()
    except Exception as exc:  # never the reason a program does not start
        import logging

        logging.getLogger("backport_tool").warning(
            "backport-tool: the patch set was not applied at startup: %s: %s",
            type(exc).__name__,
            exc,
        )


def _chain_to_the_shadowed_sitecustomize() -> None:
    import importlib.machinery
    import importlib.util
    import sys

    for entry in sys.path:
        spec = importlib.machinery.PathFinder.find_spec("sitecustomize", [entry])
        if spec is None or spec.origin is None or spec.loader is None:
            continue
        try:
            with open(spec.origin, "rb") as handle:
                # This file, or another copy of it (a second install on the
                # path): skip it, or the patch set would apply twice.
                if b"__backport_tool_boot__" in handle.read(200):
                    continue
        except OSError:
            continue
        module = importlib.util.module_from_spec(spec)
        sys.modules["sitecustomize"] = module
        spec.loader.exec_module(module)
        return


_apply_patch_set()
_chain_to_the_shadowed_sitecustomize()
