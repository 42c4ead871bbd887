"""Builders for throwaway patch sets: a fake distribution, its target module,
backport modules and a manifest, all real files in a temp dir."""

from __future__ import annotations

import itertools
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
