from __future__ import annotations

import json
from typing import Any

from ..report import Report, Status

_WIDTH = max(len(s.value) for s in Status)


def summary(report: Report) -> str:
    version = report.version or "not installed"
    counts = ", ".join(f"{n} {s.value}" for s, n in report.counts().items()) or "no backports"
    return f"{report.package} {version}: {counts}"


def lines(report: Report) -> list[str]:
    rows = [f"{r.status.value:<{_WIDTH}}  {r.id}: {r.reason}" for r in report.results]
    return [*rows, summary(report)]


def dump(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=False)


def emit(report: Report, as_json: bool) -> int:
    print(dump(report.to_dict()) if as_json else "\n".join(lines(report)))
    return report.exit_code
