from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UsageError
from ..loader import check, resolve_manifest
from ..retire import parse_supported, supported_from_pyproject
from . import _output


def run(args: argparse.Namespace) -> int:
    manifest = resolve_manifest(args.manifest)
    supported = None
    if args.supported and args.supported_from:
        raise UsageError("give --supported or --supported-from, not both")
    if args.supported:
        supported = parse_supported(args.supported, manifest.package)
    elif args.supported_from:
        supported = supported_from_pyproject(Path(args.supported_from), manifest.package)
    if args.strict and supported is None:
        raise UsageError("--strict needs --supported or --supported-from")
    report = check(manifest, source=args.source, supported=supported, selftest=args.selftest)
    fmt = "json" if args.json else args.format
    return _output.emit(report, fmt, strict=args.strict, quiet=args.quiet, manifest=manifest)
