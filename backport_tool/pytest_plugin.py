"""pytest plugin: run a test session with the project's patch set applied.

Installed as the ``backport_tool`` plugin (entry point ``pytest11``); it does
nothing unless ``--backports`` (or ``backports = true`` in the pytest
configuration file) is given::

    pytest --backports                        # ./manifest.yaml, else the default one
    pytest --backports-manifest=path/manifest.yaml
    pytest --backports-strict                 # fail at start on a backport not in force

The patch set is applied eagerly when pytest is configured: the target modules
are imported and every backport is verified and applied before collection, so
the header names each backport's status and a problem is known before the
first test runs. Without ``--backports-strict`` a backport that is ``drift``,
``missing``, ``failed`` or ``partial`` (the statuses that make ``apply`` exit
1) is named in the header and in a ``backport-tool`` section of the terminal
summary, and the session runs without it. With ``--backports-strict`` the
session stops at start, before collection, with a usage error (exit status 4)
that names each such backport, its status and the reason; a switch variable
that names no backport of the manifest (a typo in ``BACKPORT_TOOL_ENABLE``)
stops it the same way, and is named in the header without it.

Configuration file options (``[pytest]``, ``[tool.pytest.ini_options]``, ...):

- ``backports`` (bool): same as ``--backports``. Only this option turns the
  plugin on from the configuration file.
- ``backports_manifest`` (path, relative to the configuration file's
  directory, else to the current directory): the manifest to apply when the
  plugin is on. Unlike ``--backports-manifest`` it does not turn it on, so a
  project can name its manifest once and keep ``--backports`` opt-in.
- ``backports_strict`` (bool): strict mode when the plugin is on, like
  ``--backports-strict`` (which also turns it on).

Command-line options win over the configuration file: ``--backports`` and
``--backports-strict`` turn on what it leaves off, ``--backports-manifest``
replaces ``backports_manifest``, and ``-o backports=false`` or ``-o
backports_strict=false`` turn off what it turns on. The manifest is
``--backports-manifest``, else ``backports_manifest``, else
``$BACKPORT_TOOL_MANIFEST``, else ``manifest.yaml`` in the current directory or
the rootdir, else the bundled one.

Fixtures: ``backport_applied(id)`` asserts that a backport is applied;
``backport_reverted(id)`` is a context manager that runs a block with it
reverted and re-applies it after; ``backport_state`` gives a test the state of
a fresh process (nothing applied, no hooks, no cached modules or plans kept in
memory, the environment exports undone) and restores that after it; under
``--backports`` it then applies the session's patch set again.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest

from .api import apply, current_report, revert
from .config import DISABLE_ENV, ENABLE_ENV, project_manifest_path
from .manifest_file import is_package_spec
from .patcher import is_applied
from .report import BackportResult, Report, Status, version_label
from .state import STATE, put_environ, reset

_PROBLEMS = ", ".join(s.value for s in Status if s.is_problem)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("backport-tool")
    # A flag plus a separate path option: an optional value on --backports
    # would swallow the test path that follows it (`pytest --backports tests`).
    group.addoption(
        "--backports",
        action="store_true",
        default=False,
        help="apply the backport patch set for the session, eagerly at startup (manifest: "
        "--backports-manifest, else the backports_manifest ini option, else "
        "$BACKPORT_TOOL_MANIFEST, else manifest.yaml in the current directory or the "
        "rootdir, else the bundled one)",
    )
    group.addoption(
        "--backports-manifest",
        metavar="PATH",
        default=None,
        help="the manifest to apply; implies --backports",
    )
    group.addoption(
        "--backports-strict",
        action="store_true",
        default=False,
        help=f"stop the session at start, before collection, when a backport is {_PROBLEMS}; "
        "the patch set is applied eagerly, so every such backport is known then. "
        "Implies --backports",
    )
    parser.addini(
        "backports",
        type="bool",
        default=False,
        help="apply the backport patch set for the session, like --backports",
    )
    parser.addini(
        "backports_manifest",
        type="string",
        default="",
        help="the manifest to apply when the patch set is applied, relative to the "
        "configuration file's directory (--backports-manifest wins); does not turn the "
        "plugin on by itself",
    )
    parser.addini(
        "backports_strict",
        type="bool",
        default=False,
        help="when the patch set is applied, stop the session at start if a backport is "
        f"{_PROBLEMS}, like --backports-strict",
    )


def _enabled(config: pytest.Config) -> bool:
    return bool(
        config.getoption("backports")
        or config.getoption("backports_manifest")
        or config.getoption("backports_strict")
        or config.getini("backports")
    )


def _strict(config: pytest.Config) -> bool:
    return bool(config.getoption("backports_strict") or config.getini("backports_strict"))


def _manifest(config: pytest.Config) -> str | None:
    # Resolved once, to an absolute path: a test that changes directory must
    # not make backport_reverted re-apply another manifest.
    value: str | None = config.getoption("backports_manifest")
    if value and is_package_spec(value):
        # Named by its package: no directory makes it another file.
        return value
    if value:
        return str(config.invocation_params.dir / value)
    value = config.getini("backports_manifest")
    if value and is_package_spec(value):
        return str(value)
    if value:
        # As pytest resolves its own `paths` options.
        base = config.inipath.parent if config.inipath else config.invocation_params.dir
        return str(base / value)
    found = project_manifest_path(config.invocation_params.dir, config.rootpath)
    return str(found) if found else None


def _reapply_manifest(config: pytest.Config) -> str | None:
    state = config.stash.get(_SESSION, None)
    return state.manifest if state is not None else _manifest(config)


class _Session:
    def __init__(self, manifest: str | None, report: Report, strict: bool) -> None:
        self.manifest = manifest
        self.report = report
        self.strict = strict
        # The switches the session applied with: a test may change the
        # variables (monkeypatch) before backport_state applies again.
        self.switches = {name: os.environ.get(name) for name in (ENABLE_ENV, DISABLE_ENV)}

    @property
    def problems(self) -> list[BackportResult]:
        return [r for r in self.report.results if r.is_problem]


_SESSION = pytest.StashKey[_Session]()


def pytest_configure(config: pytest.Config) -> None:
    # `pytest --help` configures too; a broken manifest must not hide the help.
    if not _enabled(config) or config.getoption("help", False):
        return
    manifest = _manifest(config)
    report = apply(manifest, eager=True)
    if report.error is not None:
        # A bad manifest is a usage error: one line, no INTERNALERROR traceback.
        raise pytest.UsageError(f"backport-tool: {report.error}")
    config.stash[_SESSION] = _Session(manifest, report, _strict(config))


@pytest.hookimpl(wrapper=True)
def pytest_sessionstart(session: pytest.Session) -> Generator[None]:
    # After the terminal reporter has printed the header, so a strict failure
    # comes below the line with every backport's status.
    yield
    state = session.config.stash.get(_SESSION, None)
    if state is None or not state.strict:
        return
    if state.report.warnings:
        # A switch naming no backport (a typo in BACKPORT_TOOL_ENABLE): the
        # CLI exits 2 for it, and the session would test without the fix.
        raise pytest.UsageError(
            f"backport-tool (strict): {'; '.join(state.report.warnings)}; so no test ran"
        )
    if not state.problems:
        return
    problems = state.problems
    # UsageError: pytest prints it as one `ERROR:` line and exits 4, with no
    # traceback and before collection.
    raise pytest.UsageError(
        f"backport-tool (strict): {_not_in_force(problems, state.report)}, so no test ran: "
        + "; ".join(f"{r.id}: {r.status.value} ({r.reason})" for r in problems)
        + ". Run `backport-tool status` for details, or set "
        f"{DISABLE_ENV}={','.join(r.id for r in problems)} to skip them."
    )


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    state = config.stash.get(_SESSION, None)
    if state is None:
        return None
    report = state.report
    parts = ", ".join(f"{r.id}: {r.status.value}" for r in report.results) or "no backports"
    lines = [f"backport-tool: {report.package} {version_label(report)}: {parts}"]
    lines += [f"backport-tool: {r.id} is {r.status.value}: {r.reason}" for r in state.problems]
    lines += [f"backport-tool: {warning}" for warning in report.warnings]
    return lines


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    state = terminalreporter.config.stash.get(_SESSION, None)
    if state is None or not state.problems:
        return
    # A session that passes while a backport is not in force must not look
    # like one that tested the patched code.
    terminalreporter.section("backport-tool", sep="=", yellow=True, bold=True)
    terminalreporter.line(
        f"{_not_in_force(state.problems, state.report)}; the tests ran anyway "
        "(--backports-strict stops the session at start instead):"
    )
    for r in state.problems:
        terminalreporter.line(f"  {r.id}: {r.status.value} ({r.reason})")


def _not_in_force(problems: list[BackportResult], report: Report) -> str:
    if len(problems) == 1:
        return f"1 backport of {report.manifest} is not fully in force"
    return f"{len(problems)} backports of {report.manifest} are not fully in force"


def pytest_unconfigure(config: pytest.Config) -> None:
    if config.stash.get(_SESSION, None) is not None:
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
            result = apply(_reapply_manifest(pytestconfig), eager=True).by_id(backport_id)
            if result.status is not Status.APPLIED:
                pytest.fail(f"could not re-apply {backport_id!r}: {result.reason}")

    return reverted


@contextmanager
def _environ(values: dict[str, str | None]) -> Iterator[None]:
    before = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            put_environ(name, value)
        yield
    finally:
        for name, value in before.items():
            put_environ(name, value)


@pytest.fixture
def backport_state(pytestconfig: pytest.Config) -> Iterator[None]:
    """Run the test as a fresh process would: everything reverted and the
    process state reset, before and after. Under ``--backports`` the session's
    patch set is applied again afterwards, so later tests run with it."""
    # The session's backport modules and the replacements built from them:
    # applying again reuses them rather than running the modules again,
    # which would make a replaced class another class than the one objects
    # built earlier in the session are instances of.
    held = (dict(STATE.modules), dict(STATE.built))
    revert()
    reset()
    yield
    revert()
    reset()
    session = pytestconfig.stash.get(_SESSION, None)
    if session is None:
        return
    STATE.modules.update(held[0])
    STATE.built.update(held[1])
    with _environ(session.switches):
        again = apply(session.manifest, eager=True)
    lost = [
        r.id for r in session.report.results if r.status is Status.APPLIED and not is_applied(r.id)
    ]
    if lost:
        pytest.fail(
            "backport-tool: the session's patch set could not be applied again after "
            "backport_state: "
            + "; ".join(
                f"{i}: {again.by_id(i).status.value} ({again.by_id(i).reason})" for i in lost
            )
        )
