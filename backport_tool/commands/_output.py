from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Any

from ..manifest import Manifest
from ..report import BackportResult, Claim, Report, Status, Verdict


class Format(str, enum.Enum):
    TEXT = "text"
    JSON = "json"
    GITHUB = "github"  # workflow annotations
    MARKDOWN = "markdown"


_WIDTH = max(len(s.value) for s in Status)


def summary(report: Report) -> str:
    version = report.version or "not installed"
    counts = ", ".join(f"{n} {s.value}" for s, n in report.counts().items()) or "no backports"
    where = f" ({report.source})" if report.source else ""
    return f"{report.package} {version}{where}: {counts}"


def selftest_text(result: BackportResult) -> str:
    """``selftest passed`` or ``selftest failed: why``, without saying it twice."""
    detail = result.selftest_message or ""
    detail = detail.removeprefix(f"{result.selftest}").removeprefix(": ")
    return f"selftest {result.selftest}" + (f": {detail}" if detail else "")


def _line(result: BackportResult) -> str:
    return f"{result.status.value:<{_WIDTH}}  {result.id}: {result.reason}"


def lines(report: Report) -> list[str]:
    rows: list[str] = []
    indent = " " * (_WIDTH + 2)
    for result in report.results:
        rows.append(_line(result))
        if result.selftest:
            rows.append(indent + selftest_text(result))
        if result.retire:
            rows.append(f"{indent}{result.retire}")
    return [*rows, summary(report)]


def dump(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=False)


def _escape(text: str, *, prop: bool = False) -> str:
    # GitHub's workflow-command escaping; properties also escape ':' and ','.
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text


def github(report: Report, manifest: Manifest, *, strict: bool = False) -> list[str]:
    """Workflow annotations pointing at each offending backport's manifest line."""
    try:
        path = str(manifest.path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        path = str(manifest.path)
    out: list[str] = []
    for result in report.results:
        backport = manifest.get(result.id)
        where = f"file={_escape(path, prop=True)},line={backport.line or 1}"
        if result.is_problem:
            level, title = "error", f"backport {result.id}: {result.status.value}"
            text = result.reason
            if result.selftest is Verdict.FAILED:
                text = selftest_text(result)
        elif result.retire:
            # Under --strict a backport to retire fails the job: say so.
            level = "error" if strict else "warning"
            title, text = f"backport {result.id}: retire", result.retire
        elif result.upstream_claim is Claim.CONTRADICTED:
            level, title = "warning", f"backport {result.id}: fixed_in contradicted"
            text = result.reason
        else:
            continue
        out.append(f"::{level} {where},title={_escape(title, prop=True)}::{_escape(text)}")
    return [*out, summary(report)]


def emit(
    report: Report,
    fmt: Format,
    *,
    strict: bool = False,
    quiet: bool = False,
    manifest: Manifest | None = None,
) -> int:
    code = report.exit_code
    if strict and any(r.retire for r in report.results):
        code = 1
    if fmt is Format.JSON:
        print(dump(report.to_dict()))
    elif fmt is Format.GITHUB:
        assert manifest is not None
        print("\n".join(github(report, manifest, strict=strict)))
    elif quiet:
        # Shell-friendly: silent when all is well, the problems otherwise.
        bad = [_line(r) for r in report.results if r.is_problem or r.retire]
        if bad or code:
            print("\n".join(bad or lines(report)))
    else:
        print("\n".join(lines(report)))
    return code
