from __future__ import annotations

import argparse

from ..loader import apply
from . import _output


def run(args: argparse.Namespace) -> int:
    return _output.emit(apply(args.manifest), args.json)
