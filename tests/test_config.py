from __future__ import annotations

from pathlib import Path

import pytest

from backport_tool import config


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", frozenset()),
        ("ALL", frozenset({"all"})),
        (" fix , Other-Fix,,", frozenset({"fix", "other-fix"})),
    ],
)
def test_disabled_ids_fold_case(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: frozenset[str]
) -> None:
    monkeypatch.setenv(config.DISABLE_ENV, value)
    assert config.disabled_ids() == expected
    assert config.is_disabled("fix", config.disabled_ids()) == (
        "fix" in expected or "all" in expected
    )


def test_cache_dir_and_the_internal_error_log_follow_the_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(config.CACHE_ENV, str(tmp_path / "c"))
    assert config.internal_log_path() == tmp_path / "c" / "backport-tool.log"
    monkeypatch.delenv(config.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert config.internal_log_path() == tmp_path / "xdg" / "backport-tool" / "backport-tool.log"


def test_project_manifest_lookup(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert config.project_manifest_path(tmp_path) is None
    (tmp_path / "manifest.yaml").write_text("")
    assert config.project_manifest_path(tmp_path) == tmp_path / "manifest.yaml"
    monkeypatch.setenv(config.MANIFEST_ENV, "/elsewhere.yaml")
    assert config.project_manifest_path(tmp_path) == Path("/elsewhere.yaml")
    assert config.default_manifest_path() == Path("/elsewhere.yaml")
