"""The child side of ``check --selftest``: apply the patch set the way production
startup does (lazily: each backport is applied when its target is first
imported), run one backport's ``selftest()``, then confirm that the backport
was in force. The verdict goes to the file named by the third argument, last
thing of all: a process that ends before it (``os._exit()``, a signal) did not
pass, whatever its exit status."""

from __future__ import annotations

import asyncio
import inspect
import json
import traceback
from pathlib import Path

from .api import apply, current_report, manifest_for
from .errors import FOREIGN_FAILURES, describe
from .loading import SELFTEST_HOOK, load_backport_module
from .report import Status


def main(argv: list[str]) -> int:
    passed, message = _run(argv[0], argv[1])
    print(message)
    Path(argv[2]).write_text(json.dumps({"passed": passed, "message": message}), "utf-8")
    return 0 if passed else 1


def _run(manifest_path: str, backport_id: str) -> tuple[bool, str]:
    manifest = manifest_for(Path(manifest_path))
    backport = manifest.get(backport_id)
    # As a production startup applies: its child processes apply it too.
    apply(manifest)
    hook = getattr(load_backport_module(backport), SELFTEST_HOOK, None)
    if hook is None:
        return False, f"{backport.module_text} defines no {SELFTEST_HOOK}()"
    try:
        outcome = hook()
        if inspect.iscoroutine(outcome):
            asyncio.run(outcome)
        elif inspect.isgenerator(outcome) or inspect.isasyncgen(outcome):
            return False, (
                f"{backport.module_text}:{SELFTEST_HOOK}() is a generator, whose body does not "
                "run when it is called; make it a plain function (or async def)"
            )
    except FOREIGN_FAILURES as exc:
        # The traceback is the useful part for whoever wrote the backport.
        traceback.print_exc()
        return False, f"failed: {describe(exc)}".splitlines()[0]
    # A self-test that passes without the patch in force tested nothing.
    report = current_report()
    result = report.by_id(backport_id) if report is not None else None
    if result is None or result.status is not Status.APPLIED:
        status = result.status.value if result else "unknown"
        reason = result.reason if result else "no report"
        return False, f"not applied: {status} ({reason})"
    return True, "passed"
