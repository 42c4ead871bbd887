from __future__ import annotations

import logging
from pathlib import Path

import pytest

from backport_tool import config, state
from backport_tool.state import STATE


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


def test_a_log_level_that_is_no_level_is_warned_of_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(config.LOG_ENV, " garbage")
    assert config.bad_log_level_warning() == (
        "backport-tool: ignoring BACKPORT_TOOL_LOG='GARBAGE': not a logging level"
    )
    assert config.bad_log_level_warning() is None
    # What apply() then calls: said already, it says nothing.
    config.configure_logging()
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("value", ["", "off", "info", "DEBUG"])
def test_a_log_level_is_left_to_configure_logging(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(config.LOG_ENV, value)
    assert (config.bad_log_level_warning(), STATE.logging_configured) == (None, False)


@pytest.mark.parametrize("value", ["INFO", "OFF"])
def test_a_state_reset_undoes_what_the_log_variable_configured(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    # Each configuration added a handler that the reset forgot: after three
    # resets every line was printed three times, and caplog saw none.
    logger = logging.getLogger("backport_tool")
    before = (logger.level, list(logger.handlers), logger.propagate)
    monkeypatch.setenv(config.LOG_ENV, value)
    for _ in range(3):
        config.configure_logging()
        assert len(logger.handlers) == len(before[1]) + (value != "OFF")
        state.reset()
        assert (logger.level, logger.handlers, logger.propagate) == before
