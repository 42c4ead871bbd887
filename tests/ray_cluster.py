"""A local two-node Ray cluster on loopback for the Ray tests, and the check
that none of its processes outlives them."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Every process of the cluster inherits RAY_TMPDIR from the nodes the fixture
# starts: that value, unique per cluster, finds them all, the workers Ray
# started under a raylet included (their command line is rewritten to
# `ray::...`, their environment is not).
TMPDIR_ENV = "RAY_TMPDIR"


def cluster_processes(ray_tmpdir: Path) -> list[tuple[int, str]]:
    """The live (not zombie) processes started with this RAY_TMPDIR, other than
    this one: pid and command line."""
    marker = f"{TMPDIR_ENV}={ray_tmpdir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if state != "Z":
            found.append((int(entry.name), command.strip()))
    return found


def wait_gone(ray_tmpdir: Path, timeout: float = 30.0) -> list[tuple[int, str]]:
    """Wait until no process of the cluster is left; return those still alive
    after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        left = cluster_processes(ray_tmpdir)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


@contextmanager
def environ_restored() -> Iterator[None]:
    """Give this process its environment back as it was: ray.init() sets
    variables of its own in the driver (RAY_AUTH_MODE, PYTHONBREAKPOINT, ...),
    which the rest of the test session must not inherit."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        for name in set(os.environ) - set(saved):
            del os.environ[name]
        os.environ.update(saved)
