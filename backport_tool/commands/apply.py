from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..errors import UsageError
from ..loader import resolve_manifest
from ..startup import BOOT_DIR, MANIFEST_ENV, apply
from . import _output


def run(args: argparse.Namespace) -> int:
    command = list(args.cmd)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        if args.cmd:
            raise UsageError("nothing to run after '--'; usage: backport-tool apply -- CMD [ARGS]")
        # This process exits right after; children are not this command's job.
        report = apply(args.manifest, eager=True, subprocesses=False)
        return _output.emit(report, "json" if args.json else "text", quiet=args.quiet)
    return _exec(args.manifest, command)


def _exec(manifest_arg: str | None, command: list[str]) -> int:
    # Validate here, where a bad manifest can still exit 2 with a message.
    manifest = resolve_manifest(manifest_arg)
    env = dict(os.environ)
    # One boot directory, ours, first: a nested `apply --` (or another
    # install of backport-tool) must not stack a second one.
    paths = [str(BOOT_DIR)]
    paths += [
        p
        for p in env.get("PYTHONPATH", "").split(os.pathsep)
        if p and Path(p).parts[-2:] != BOOT_DIR.parts[-2:]
    ]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env[MANIFEST_ENV] = str(manifest.path.resolve())
    try:
        # exec, not a child: the program's exit status and signals are its own.
        os.execvpe(command[0], command, env)
    except FileNotFoundError:
        raise UsageError(f"command not found: {command[0]}") from None
    except PermissionError:
        raise UsageError(f"cannot execute {command[0]}: permission denied") from None
    return 0  # unreachable: exec replaced this process
