from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Any

from ..config import unknown_switches
from ..errors import UsageError
from ..findings import Claim, Verdict
from ..manifest import Manifest
from ..report import BackportResult, Report, Status, version_label


class Format(str, enum.Enum):
    TEXT = "text"
    JSON = "json"
    GITHUB = "github"  # workflow annotations
    MARKDOWN = "markdown"


_WIDTH = max(len(s.value) for s in Status)


def checked_switches(manifest: Manifest, enable: list[str], disable: list[str]) -> None:
    """Exit 2 for a switched id that names no backport of ``manifest``: a typo in
    a kill switch must not leave the backport applied with exit 0."""
    problems = unknown_switches(
        (b.id for b in manifest.backports), enable, disable, given_as=("--enable", "--disable")
    )
    if problems:
        raise UsageError("\n".join(problems))


def summary(report: Report) -> str:
    version = version_label(report)
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


def contradicted(result: BackportResult) -> bool:
    """The code contradicts the ``fixed_in`` claim that refused ``result``."""
    return result.upstream_claim is Claim.CONTRADICTED


CONTRADICTED = (
    "warning: fixed_in is contradicted: upstream is declared to have the fix, but the "
    "code does not; correct fixed_in, or make CI fail on it with --strict"
)


def _notes(result: BackportResult) -> list[str]:
    indent = " " * (_WIDTH + 2)
    rows = []
    if result.selftest:
        rows.append(indent + selftest_text(result))
    if result.retire:
        rows.append(f"{indent}{result.retire}")
    if contradicted(result):
        rows.append(f"{indent}{CONTRADICTED}")
    return rows


def lines(report: Report) -> list[str]:
    rows = [f"manifest: {report.manifest}"]
    for result in report.results:
        rows += [_line(result), *_notes(result)]
    return [*rows, summary(report)]


# The shape of every --json output: one object, its "format" first. Raised when
# a field is renamed or removed, never for a field added.
JSON_FORMAT = 1


def dump(command: str, data: dict[str, Any]) -> str:
    """``data`` as the JSON output of ``command``. The same thing has the same
    name in every command: "id" for a backport's id, "manifest" for the path
    of the manifest used, "backports" for the per-backport entries."""
    return json.dumps({"format": JSON_FORMAT, "command": command, **data}, indent=2)


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
            # Under --strict a contradicted claim fails the job too.
            level = "error" if strict else "warning"
            title, text = f"backport {result.id}: fixed_in contradicted", result.reason
        else:
            continue
        out.append(f"::{level} {where},title={_escape(title, prop=True)}::{_escape(text)}")
    return [*out, summary(report)]


def emit(
    command: str,
    report: Report,
    fmt: Format,
    *,
    strict: bool = False,
    quiet: bool = False,
    manifest: Manifest | None = None,
) -> int:
    code = report.exit_code
    if strict and any(r.retire or contradicted(r) for r in report.results):
        code = 1
    if fmt is Format.JSON:
        print(dump(command, report.to_dict()))
    elif fmt is Format.GITHUB:
        assert manifest is not None
        print("\n".join(github(report, manifest, strict=strict)))
    elif quiet:
        # Shell-friendly: silent when all is well, the problems otherwise.
        bad = [
            row
            for r in report.results
            if r.is_problem or r.retire or contradicted(r)
            for row in (_line(r), *_notes(r))
        ]
        if bad or code:
            print("\n".join([f"manifest: {report.manifest}", *(bad or lines(report)[1:])]))
    else:
        print("\n".join(lines(report)))
    return code
