from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import PatchSet

import backport_tool


def _torch_version() -> str | None:
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return None


# Real-torch tests must not vanish as skips in CI: the test script sets this,
# and a session on any other torch then fails at once.
_REQUIRE = os.environ.get("BACKPORT_TOOL_REQUIRE_TORCH", "")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    version = _torch_version() or ""
    for item in items:
        for marker, prefix in (("torch211", "2.11."), ("torch213", "2.13.")):
            if item.get_closest_marker(marker) and not version.startswith(prefix):
                reason = f"needs torch {prefix}x, found {version or 'none'}"
                item.add_marker(pytest.mark.skip(reason=reason))


def pytest_sessionstart(session: pytest.Session) -> None:
    version = _torch_version() or ""
    if _REQUIRE and not version.startswith(_REQUIRE):
        raise pytest.UsageError(
            f"BACKPORT_TOOL_REQUIRE_TORCH={_REQUIRE} but torch {version or 'is not'} installed"
        )


@pytest.fixture
def patchset(tmp_path: Path) -> Iterator[PatchSet]:
    ps = PatchSet(tmp_path)
    yield ps
    backport_tool.revert()
    ps.close()


@pytest.fixture(autouse=True)
def _clean_env(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
    backport_state: None,
) -> None:
    # apply() exports the manifest for subprocesses; set-then-delete makes
    # monkeypatch restore "unset" after each test.
    for name in (
        "BACKPORT_TOOL_DISABLE",
        "BACKPORT_TOOL_ENABLE",
        "BACKPORT_TOOL_MANIFEST",
        "BACKPORT_TOOL_LOG",
    ):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    # Startup plans go to a throwaway cache, never the user's home.
    monkeypatch.setenv("BACKPORT_TOOL_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


pytest_plugins = ["pytester"]
