from __future__ import annotations

import argparse

from ..lock import lock


def run(args: argparse.Namespace) -> int:
    entries = lock(args.manifest, source=args.source)
    for entry in entries:
        where = f"{entry.backport} {entry.symbol}" if entry.symbol else entry.backport
        print(f"{entry.action:<9}  {where}: {entry.detail}")
    return 0
