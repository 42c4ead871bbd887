"""pytest plugin: run a test session with the project's patch set applied.

Installed as the ``backport_tool`` plugin (entry point ``pytest11``); it does
nothing unless ``--backports`` is given::

    pytest --backports                        # ./manifest.yaml, else the default one
    pytest --backports-manifest=path/manifest.yaml

Fixtures: ``backport_applied(id)`` asserts that a backport is applied;
``backport_reverted(id)`` is a context manager that runs a block with it
reverted and re-applies it after; ``backport_state`` gives a test the state of
a fresh process (nothing applied, no hooks, no cached modules or plans kept in
memory, the environment exports undone) and restores that after it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest

from .api import apply, current_report, revert
from .config import project_manifest_path
from .errors import BackportToolError
from .patcher import is_applied
from .report import Report, Status
from .state import reset


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("backport-tool")
    # A flag plus a separate path option: an optional value on --backports
    # would swallow the test path that follows it (`pytest --backports tests`).
    group.addoption(
        "--backports",
        action="store_true",
        default=False,
        help="apply the backport patch set for the session (manifest: "
        "--backports-manifest, else $BACKPORT_TOOL_MANIFEST, else manifest.yaml in the "
        "current directory or the rootdir, else the bundled one)",
    )
    group.addoption(
        "--backports-manifest",
        metavar="PATH",
        default=None,
        help="the manifest to apply; implies --backports",
    )


def _enabled(config: pytest.Config) -> bool:
    return bool(config.getoption("backports") or config.getoption("backports_manifest"))


def _manifest(config: pytest.Config) -> str | None:
    value: str | None = config.getoption("backports_manifest")
    if value is not None:
        return value
    found = project_manifest_path(config.invocation_params.dir, config.rootpath)
    return str(found) if found else None


def pytest_configure(config: pytest.Config) -> None:
    if not _enabled(config):
        return
    # Eager: a session that asks for the patch set wants to know at once
    # whether it is in force, not at the first compile.
    try:
        report = apply(_manifest(config), eager=True)
    except BackportToolError as exc:
        # A bad manifest is a usage error: one line, no INTERNALERROR traceback.
        raise pytest.UsageError(f"backport-tool: {exc}") from None
    config.stash[_REPORT] = report


_REPORT = pytest.StashKey[Report]()


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    report = config.stash.get(_REPORT, None)
    if report is None:
        return None
    parts = ", ".join(f"{r.id}: {r.status.value}" for r in report.results) or "no backports"
    return [f"backport-tool: {report.package} {report.version or 'not installed'}: {parts}"]


def pytest_unconfigure(config: pytest.Config) -> None:
    if config.stash.get(_REPORT, None) is not None:
        revert()


@pytest.fixture
def backport_applied() -> Callable[[str], None]:
    """Return a function that fails the test unless the backport ``id`` is applied."""

    def check(backport_id: str) -> None:
        if not is_applied(backport_id):
            report = current_report()
            why = "no patch set was applied (run pytest with --backports)"
            if report is not None:
                try:
                    result = report.by_id(backport_id)
                    why = f"it is {result.status.value}: {result.reason}"
                except KeyError:
                    why = "the manifest has no such backport"
            pytest.fail(f"backport {backport_id!r} is not applied: {why}")

    return check


@pytest.fixture
def backport_reverted(
    pytestconfig: pytest.Config,
) -> Callable[[str], AbstractContextManager[None]]:
    """Return a context manager factory: ``with backport_reverted(id):`` runs the
    block with that backport reverted and applies it again afterwards."""

    @contextmanager
    def reverted(backport_id: str) -> Iterator[None]:
        if not is_applied(backport_id):
            pytest.fail(f"backport {backport_id!r} is not applied; nothing to revert")
        revert(backport_id)
        try:
            yield
        finally:
            result = apply(_manifest(pytestconfig), eager=True).by_id(backport_id)
            if result.status is not Status.APPLIED:
                pytest.fail(f"could not re-apply {backport_id!r}: {result.reason}")

    return reverted


@pytest.fixture
def backport_state() -> Iterator[None]:
    """Run the test as a fresh process would: everything reverted and the
    process state reset, before and after."""
    revert()
    reset()
    yield
    revert()
    reset()
