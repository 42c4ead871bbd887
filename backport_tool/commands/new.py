from __future__ import annotations

import argparse

from ..scaffold import scaffold


def run(args: argparse.Namespace) -> int:
    manifest, module = scaffold(args.manifest, args.id, args.target, package=args.package)
    print(f"wrote {module}")
    print(f"added {args.id} to {manifest} (signature and fingerprint from the installed code)")
    print(
        "next: implement the replacement, upstream_probe and selftest in the module, fill "
        "in summary and upstream, then run `backport-tool check --selftest`"
    )
    return 0
