"""The child side of ``check --selftest``: apply the patch set the way production
startup does (lazily: each backport is applied when its target is first
imported), run one backport's ``selftest()``, then confirm that the backport
was in force. Exit 0 means passed; the last line printed is the verdict's
message."""

from __future__ import annotations

import traceback
from pathlib import Path

from .api import apply, current_report, manifest_for
from .errors import FOREIGN_FAILURES, describe
from .loading import SELFTEST_HOOK, load_backport_module
from .report import Status


def main(argv: list[str]) -> int:
    manifest = manifest_for(Path(argv[0]))
    backport_id = argv[1]
    backport = manifest.get(backport_id)
    apply(manifest, subprocesses=False)
    hook = getattr(load_backport_module(backport), SELFTEST_HOOK, None)
    if hook is None:
        print(f"{backport.module_text} defines no {SELFTEST_HOOK}()")
        return 1
    failure = None
    try:
        hook()
    except FOREIGN_FAILURES as exc:
        # The traceback is the useful part for whoever wrote the backport.
        traceback.print_exc()
        failure = f"failed: {describe(exc)}".splitlines()[0]
    if failure is not None:
        print(failure)
        return 1
    # A self-test that passes without the patch in force tested nothing.
    report = current_report()
    result = report.by_id(backport_id) if report is not None else None
    if result is None or result.status is not Status.APPLIED:
        status = result.status.value if result else "unknown"
        reason = result.reason if result else "no report"
        print(f"not applied: {status} ({reason})")
        return 1
    print("passed")
    return 0
