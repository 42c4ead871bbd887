from __future__ import annotations

import argparse

from ..loader import check
from . import _output


def run(args: argparse.Namespace) -> int:
    return _output.emit(check(args.manifest, source=args.source), args.json)
