from __future__ import annotations

from pathlib import Path

from ..api import manifest_for
from ..checking import check
from ..errors import UsageError
from ..retire import parse_supported, supported_from_pyproject
from . import _output


def run(
    manifest: str | None,
    *,
    source: str | None,
    supported: str | None,
    supported_from: str | None,
    strict: bool,
    fmt: _output.Format,
    selftest: bool,
    enable: list[str],
    quiet: bool,
) -> int:
    loaded = manifest_for(manifest)
    if supported and supported_from:
        raise UsageError("give --supported or --supported-from, not both")
    supported_range = None
    if supported:
        supported_range = parse_supported(supported, loaded.package)
    elif supported_from:
        supported_range = supported_from_pyproject(Path(supported_from), loaded.package)
    if strict and supported_range is None:
        raise UsageError("--strict needs --supported or --supported-from")
    report = check(
        loaded, source=source, supported=supported_range, selftest=selftest, enable=enable
    )
    return _output.emit(report, fmt, strict=strict, quiet=quiet, manifest=loaded)
