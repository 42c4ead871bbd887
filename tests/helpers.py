"""Builders for throwaway patch sets: a fake distribution, its target module,
backport modules and a manifest, all real files in a temp dir."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import yaml

_counter = itertools.count()

TARGET_SOURCE = """
class Base:
    def inherited(self, x: int) -> int:
        return x + 100


class Widget(Base):
    def compute(self, x: int) -> int:
        return x + 1

    def other(self, x: int) -> int:
        return x + 2

    @staticmethod
    def helper(x: int) -> int:
        return x * 2


def free_function(a, b=2):
    return a + b
"""

BACKPORT_SOURCE = """
def compute(self, x: int) -> int:
    return x + 1000


def other(self, x: int) -> int:
    return x + 2000


def inherited(self, x: int) -> int:
    return x + 3000


def helper(x: int) -> int:
    return x * 20


def free_function(a, b=2):
    return a * b
"""


TESTS_DIR = Path(__file__).resolve().parent


def assert_copies_written(text: str, target_line: str, copies: list[str], after: str) -> None:
    """``lock`` and ``new`` write a target's copies after its recorded keys, in
    this order, before the next target."""
    lines = text.splitlines()
    start = lines.index(target_line)
    assert [line.split(":")[0] for line in lines[start + 1 : start + 5]] == [
        "        replacement",
        "        signature",
        "        fingerprint",
        "        recorded_from",
    ]
    end = start + 7 + len(copies)  # copies:, each copy, the next target
    assert lines[start + 5 : end] == [
        "        copies:",
        *[f'          - "{copy}"' for copy in copies],
        after,
    ]


def python_env(*paths: Path | str, **extra: str) -> dict[str, str]:
    """os.environ with ``paths`` put first on PYTHONPATH, plus ``extra``."""
    env = dict(os.environ)
    inherited = env.get("PYTHONPATH")
    env["PYTHONPATH"] = os.pathsep.join([*map(str, paths), *([inherited] if inherited else [])])
    env.update(extra)
    return env


def write_patch_set(
    directory: Path, backports: list[dict[str, Any]], modules: dict[str, str]
) -> Path:
    """Write a torch patch set into ``directory``: ``backports/`` with ``modules``
    (file name to source), and its ``manifest.yaml``; return the manifest."""
    (directory / "backports").mkdir(parents=True, exist_ok=True)
    for name, source in modules.items():
        (directory / "backports" / name).write_text(textwrap.dedent(source))
    path = directory / "manifest.yaml"
    path.write_text(
        yaml.safe_dump({"version": 1, "package": "torch", "backports": backports}, sort_keys=False)
    )
    return path


def run_two_ranks(
    program: Path, *args: str, cwd: Path, launcher: tuple[str, ...] = (), timeout: int = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``program ARGS`` as 2 torchrun ranks (standalone), after ``launcher``."""
    environ = dict(
        os.environ, TORCHINDUCTOR_CACHE_DIR=str(cwd / "inductor-cache"), OMP_NUM_THREADS="1"
    )
    torchrun = [sys.executable, "-m", "torch.distributed.run"]
    return subprocess.run(
        [*launcher, *torchrun, "--standalone", "--nproc-per-node", "2", str(program), *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=timeout,
        cwd=cwd,
        check=False,
    )


def run_backport_tool(
    *args: str, paths: list[Path | str] | None = None, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m backport_tool ARGS`` in a subprocess.

    The default cwd is the tests directory, not the repository root: ``-m``
    puts the cwd first on sys.path, and the installed package is the one under
    test.
    """
    return subprocess.run(
        [sys.executable, "-m", "backport_tool", *args],
        capture_output=True,
        text=True,
        env=python_env(*(paths or []), **env),
        cwd=cwd or TESTS_DIR,
        check=False,
    )


class PatchSet:
    """A directory with a fake distribution ``fakepkg-N`` and a manifest for it."""

    def __init__(self, root: Path, version: str = "1.5.0") -> None:
        self.root = root
        self.n = next(_counter)
        self.dist = f"fakepkg{self.n}"
        self.module = f"fakepkg{self.n}_mod"
        self.site = root / "site"
        self.site.mkdir(parents=True)
        (self.site / f"{self.module}.py").write_text(TARGET_SOURCE)
        self.set_version(version)
        self.patches = root / "patches"
        (self.patches / "backports").mkdir(parents=True)
        self.write_backport("fix.py", BACKPORT_SOURCE)
        self.backports: list[dict[str, Any]] = []
        sys.path.insert(0, str(self.site))

    def close(self) -> None:
        sys.path.remove(str(self.site))
        sys.modules.pop(self.module, None)

    def set_version(self, version: str) -> None:
        for old in self.site.glob("*.dist-info"):
            for f in old.iterdir():
                f.unlink()
            old.rmdir()
        info = self.site / f"{self.dist}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {self.dist}\nVersion: {version}\n"
        )

    def write_backport(self, name: str, source: str) -> None:
        (self.patches / "backports" / name).write_text(textwrap.dedent(source))

    def env(self, **extra: str) -> dict[str, str]:
        """The environment for a subprocess that must import the fake package."""
        return python_env(self.site, **extra)

    def cli(
        self, *args: str, cwd: Path | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """Run ``python -m backport_tool ARGS`` with the fake package importable."""
        return run_backport_tool(*args, paths=[self.site], cwd=cwd, **env)

    def sym(self, qualname: str) -> str:
        return f"{self.module}:{qualname}"

    def add(self, backport_id: str, *targets: str, **extra: Any) -> dict[str, Any]:
        """Add a backport replacing ``targets`` (qualnames) with same-named functions."""
        entry: dict[str, Any] = {
            "id": backport_id,
            "summary": f"test backport {backport_id}",
            "applies_to": ">=1.0,<2.0",
            "module": "backports/fix.py",
            "targets": [
                {"symbol": self.sym(t), "replacement": t.rsplit(".", 1)[-1]} for t in targets
            ],
        }
        signature = extra.pop("signature", None)
        if signature is not None:
            entry["targets"][0]["signature"] = signature
        entry.update(extra)
        self.backports.append(entry)
        return entry

    def write(self, data: dict[str, Any] | None = None) -> Path:
        if data is None:
            data = {"version": 1, "package": self.dist, "backports": self.backports}
        path = self.patches / "manifest.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    def target(self) -> Any:
        __import__(self.module)
        return sys.modules[self.module]
