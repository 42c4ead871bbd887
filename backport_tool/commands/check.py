from __future__ import annotations

import sys
from pathlib import Path

from ..api import manifest_for
from ..checking import check
from ..errors import UsageError
from ..installed import version_text
from ..retire import Supported, parse_supported, supported_from_pyproject
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
    disable: list[str],
    quiet: bool,
) -> int:
    loaded = manifest_for(manifest)
    _output.checked_switches(loaded, enable, disable)
    if source is None and version_text(loaded.package) is None:
        raise UsageError(
            f"{loaded.package} is not installed in this Python environment "
            f"({sys.executable}), so there is nothing to check: install it, or read a "
            "version without installing it with --source WHEEL|DIR|REPO@REV"
        )
    if supported is not None and supported_from is not None:
        raise UsageError("give --supported or --supported-from, not both")
    supported_range: Supported | None = None
    if supported is not None:
        supported_range = parse_supported(supported, loaded.package)
    elif supported_from is not None:
        supported_range = supported_from_pyproject(Path(supported_from), loaded.package)
    report = check(
        loaded,
        source=source,
        supported=supported_range,
        selftest=selftest,
        enable=enable,
        disable=disable,
    )
    return _output.emit("check", report, fmt, strict=strict, quiet=quiet, manifest=loaded)
