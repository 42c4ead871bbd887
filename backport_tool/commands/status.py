from __future__ import annotations

from typing import Any

from ..api import manifest_for
from ..checking import check
from ..manifest import Backport
from ..manifest_file import installed_patch_sets
from ..report import BackportResult, version_label
from . import _output


def _details(backport: Backport) -> dict[str, Any]:
    return {
        "summary": backport.summary,
        "applies_to": backport.applies_to_text,
        "fixed_in": str(backport.fixed_in) if backport.fixed_in else None,
        "module": backport.module_text,
        "upstream": {k: v for k, v in vars(backport.upstream).items() if v is not None},
    }


def _text(backport: Backport, result: BackportResult) -> list[str]:
    rows = [
        f"{backport.id}: {result.status.value}",
        f"  summary:    {backport.summary}",
        f"  applies_to: {backport.applies_to_text}",
        f"  fixed_in:   {backport.fixed_in or '-'}",
        f"  module:     {backport.module_text}",
    ]
    for target in result.targets or ():
        rows.append(f"  target:     {target.symbol}")
        if target.defined_on:
            rows.append(f"    defined on:         {target.defined_on}")
        if target.expected_signature:
            rows.append(f"    signature expected: {target.expected_signature}")
        if target.actual_signature:
            rows.append(f"    signature found:    {target.actual_signature}")
        if target.config_value is not None:
            rows.append(f"    config value:       {target.config_value}")
            rows.append(f"    config default:     {target.config_default}")
        if target.container is not None:
            rows.append(f"    registry:           a {target.container}")
        for entry in target.entries:
            rows.append(f"    {entry.action + ':':<20}{entry.entry} ({entry.state.value})")
    rows.append(f"  reason:     {result.reason}")
    return rows


def run(
    manifest: str | None,
    *,
    source: str | None,
    enable: list[str],
    disable: list[str],
    as_json: bool,
    quiet: bool,
) -> int:
    loaded = manifest_for(manifest)
    _output.checked_switches(loaded, enable, disable)
    report = check(loaded, source=source, enable=enable, disable=disable)
    # Quiet keeps only the backports with a problem, in either format.
    shown = [
        (backport, result)
        for backport, result in zip(loaded.backports, report.results, strict=True)
        if result.is_problem or not quiet
    ]
    sets = installed_patch_sets()
    if as_json:
        data = report.to_dict(details=True)
        entries = {entry["id"]: entry for entry in data["backports"]}
        data["backports"] = [entries[b.id] | _details(b) for b, _ in shown]
        data["patch_sets"] = [
            {"name": s.name, "manifest": s.spec, "distribution": s.distribution} for s in sets
        ]
        print(_output.dump("status", data))
        return report.exit_code
    if quiet and not shown:
        return report.exit_code
    out = [f"manifest: {report.manifest}", f"{report.package}: {version_label(report)}"]
    # The patch sets installed distributions announce, to name with --manifest.
    for found in sets:
        by = f" (from {found.distribution})" if found.distribution else ""
        out.append(f"installed patch set: {found.name}: {found.spec}{by}")
    for backport, result in shown:
        out += ["", *_text(backport, result)]
    print("\n".join(out))
    return report.exit_code
