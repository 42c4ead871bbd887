"""The child side of ``check --selftest``: apply the patch set eagerly in this
fresh interpreter, then run one backport's ``selftest()``. Exit 0 means passed;
the last line printed is the verdict's message."""

from __future__ import annotations

import traceback
from pathlib import Path

from .api import apply, manifest_for
from .engine import SELFTEST_HOOK, load_backport_module
from .report import Status


def main(argv: list[str]) -> int:
    manifest = manifest_for(Path(argv[0]))
    backport_id = argv[1]
    backport = manifest.get(backport_id)
    result = apply(manifest, eager=True, subprocesses=False).by_id(backport_id)
    if result.status is not Status.APPLIED:
        print(f"not applied: {result.status.value} ({result.reason})")
        return 1
    hook = getattr(load_backport_module(backport), SELFTEST_HOOK, None)
    if hook is None:
        print(f"{backport.module_text} defines no {SELFTEST_HOOK}()")
        return 1
    try:
        hook()
    except Exception as exc:
        # The traceback is the useful part for whoever wrote the backport.
        traceback.print_exc()
        print(f"failed: {type(exc).__name__}: {exc}".splitlines()[0])
        return 1
    print("passed")
    return 0
