from __future__ import annotations

import json
from typing import Any

from ..report import Report, Status

_WIDTH = max(len(s.value) for s in Status)


def summary(report: Report) -> str:
    version = report.version or "not installed"
    counts = ", ".join(f"{n} {s.value}" for s, n in report.counts().items()) or "no backports"
    where = f" ({report.source})" if report.source else ""
    return f"{report.package} {version}{where}: {counts}"


def lines(report: Report) -> list[str]:
    rows: list[str] = []
    indent = " " * (_WIDTH + 2)
    for result in report.results:
        rows.append(f"{result.status.value:<{_WIDTH}}  {result.id}: {result.reason}")
        if result.selftest:
            rows.append(f"{indent}selftest {result.selftest}: {result.selftest_message}")
        if result.retire:
            rows.append(f"{indent}{result.retire}")
    return [*rows, summary(report)]


def dump(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=False)


def emit(report: Report, as_json: bool, *, strict: bool = False) -> int:
    print(dump(report.to_dict()) if as_json else "\n".join(lines(report)))
    if strict and any(r.retire for r in report.results):
        return 1
    return report.exit_code
