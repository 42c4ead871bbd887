"""Process settings read from the environment: which manifest, which backports are
switched off, where the cache and the internal-error log go, and logging.

Stdlib only: ``apply()`` at server startup reads all of this.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

from .state import BOOT_DIR, STATE, without_boot

MANIFEST_ENV = "BACKPORT_TOOL_MANIFEST"
DISABLE_ENV = "BACKPORT_TOOL_DISABLE"
ENABLE_ENV = "BACKPORT_TOOL_ENABLE"
LOG_ENV = "BACKPORT_TOOL_LOG"
CACHE_ENV = "BACKPORT_TOOL_CACHE_DIR"

# The word in BACKPORT_TOOL_DISABLE (or _ENABLE) that means every backport.
ALL = "all"
LOCAL_MANIFEST = "manifest.yaml"

PACKAGE_DIR = Path(__file__).resolve().parent

logger = logging.getLogger("backport_tool")


def bundled_manifest_path() -> Path:
    """Return the manifest shipped with the package.

    A wheel carries it as ``backport_tool/_bundled/manifest.yaml``; a source
    checkout has it at the repository root.
    """
    installed = PACKAGE_DIR / "_bundled" / "manifest.yaml"
    if installed.is_file():
        return installed
    return PACKAGE_DIR.parent / "manifest.yaml"


def default_manifest_path() -> Path:
    """``$BACKPORT_TOOL_MANIFEST`` if set, else the bundled manifest."""
    from_env = _started_with(MANIFEST_ENV)
    return Path(from_env) if from_env else bundled_manifest_path()


# Tools run inside a project (the CLI, the pytest plugin) look for its
# manifest.yaml before falling back to the bundled one, as pytest, ruff and
# pre-commit find their configuration: in the directory, then each one above
# it, up to the repository root (a directory with .git) or the filesystem's.
# The library's apply() does not: a server's working directory must not decide
# what gets patched.
def project_manifest_path(*directories: Path) -> Path | None:
    from_env = _started_with(MANIFEST_ENV)
    if from_env:
        return Path(from_env)
    for directory in directories:
        start = Path(os.path.abspath(directory))
        for place in (start, *start.parents):
            if (place / LOCAL_MANIFEST).is_file():
                return place / LOCAL_MANIFEST
            if (place / ".git").exists():
                break
    return None


def cache_dir() -> Path:
    # Every cache read names its file through here, several times per apply:
    # the Path is built once per value of the variables it depends on.
    given = (os.environ.get(CACHE_ENV), os.environ.get("XDG_CACHE_HOME"), os.environ.get("HOME"))
    found = _CACHE_DIRS.get(given)
    if found is None:
        if given[0]:
            found = Path(given[0])
            if not found.is_absolute():
                # It would name another directory in each working directory:
                # a worker's, or a checkout's with files planted in it.
                logger.warning(
                    "backport-tool: %s=%r is a relative path; nothing is cached. Set it to an "
                    "absolute path",
                    CACHE_ENV,
                    given[0],
                )
        else:
            # A relative XDG_CACHE_HOME is invalid and ignored, as the XDG
            # base directory specification says.
            xdg = given[1] if given[1] and os.path.isabs(given[1]) else None
            base = xdg or os.path.join(os.path.expanduser("~"), ".cache")
            found = Path(base) / "backport-tool"
        _CACHE_DIRS[given] = found
    return found


_CACHE_DIRS: dict[tuple[str | None, str | None, str | None], Path] = {}


def internal_log_path() -> Path:
    return cache_dir() / "backport-tool.log"


def _ids(raw: str) -> frozenset[str]:
    # Ids are lowercase by schema, so folding case loses nothing and makes
    # `ALL` and `All` mean what the user meant.
    return frozenset(part.strip().lower() for part in raw.split(",") if part.strip())


def _started_with(name: str) -> str:
    # The manifest and switches this process was started with: what apply()
    # exported for its children (STATE.environ_before keeps the values it
    # replaced) must not change what this process itself applies, nor what
    # runtime_env() hands Ray workers.
    if name in STATE.environ_before:
        return STATE.environ_before[name] or ""
    return os.environ.get(name, "")


def disabled_ids() -> frozenset[str]:
    return _ids(_started_with(DISABLE_ENV))


def is_disabled(backport_id: str, disabled: frozenset[str]) -> bool:
    return ALL in disabled or backport_id in disabled


class Switches(NamedTuple):
    """The backports switched off, and the opt-in backports switched on."""

    disabled: frozenset[str] = frozenset()
    enabled: frozenset[str] = frozenset()

    @property
    def all_off(self) -> bool:
        return ALL in self.disabled

    def off(self, backport_id: str) -> bool:
        return is_disabled(backport_id, self.disabled)

    def on(self, backport_id: str) -> bool:
        return ALL in self.enabled or backport_id in self.enabled


def id_set(ids: str | Iterable[str]) -> frozenset[str]:
    """The ids a caller passed (an id, several, or a comma-separated string)."""
    return _ids(ids if isinstance(ids, str) else ",".join(ids))


def switches(enable: str | Iterable[str] = (), disable: str | Iterable[str] = ()) -> Switches:
    """``BACKPORT_TOOL_DISABLE`` plus ``disable``, and ``BACKPORT_TOOL_ENABLE`` plus
    ``enable`` (each an id or several)."""
    return Switches(
        disabled_ids() | id_set(disable), _ids(_started_with(ENABLE_ENV)) | id_set(enable)
    )


def unknown_switches(
    known: Iterable[str],
    enable: str | Iterable[str] = (),
    disable: str | Iterable[str] = (),
    *,
    given_as: tuple[str, str] = ("the enable argument", "the disable argument"),
) -> list[str]:
    """One message per id that names no backport of the manifest, saying where it
    was given (``given_as`` names the ``enable`` and ``disable`` sources) and the
    closest known id."""
    names = frozenset(known)
    sources = (
        (f"the {ENABLE_ENV} variable", _ids(_started_with(ENABLE_ENV))),
        (f"the {DISABLE_ENV} variable", disabled_ids()),
        (given_as[0], id_set(enable)),
        (given_as[1], id_set(disable)),
    )
    return [
        _unknown(unknown, source, names)
        for source, ids in sources
        for unknown in sorted(ids - names - {ALL})
    ]


def _unknown(backport_id: str, source: str, known: frozenset[str]) -> str:
    import difflib  # noqa: PLC0415 - only for a mistake, never at a clean startup

    close = difflib.get_close_matches(backport_id, sorted(known), n=1)
    hint = (
        f"did you mean {close[0]!r}?"
        if close
        else f"known ids: {', '.join(sorted(known)) or '(none)'}, or {ALL!r}"
    )
    return f"{source} names {backport_id!r}, which is no backport of the manifest; {hint}"


def _handler() -> logging.Handler:
    # The one handler backport-tool ever adds, kept in the process state so that
    # the CLI and BACKPORT_TOOL_LOG never print a line twice.
    if STATE.log_handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        STATE.log_handler = handler
    return STATE.log_handler


def log_to_stderr(level: int) -> tuple[int, bool]:
    """Print the ``backport_tool`` log at ``level`` on stderr; return what to pass
    to :func:`restore_logging` to undo it."""
    handler = _handler()
    before = (logger.level, handler in logger.handlers)
    if handler not in logger.handlers:
        logger.addHandler(handler)
    logger.setLevel(level)
    # Our handler prints already; the root logger would print it twice.
    logger.propagate = False
    return before


def restore_logging(before: tuple[int, bool]) -> None:
    level, had = before
    logger.setLevel(level)
    if not had:
        logger.removeHandler(_handler())
        logger.propagate = True


def _log_env() -> tuple[str, int | None]:
    # The value as written (folded to upper case) and the level it names;
    # None for OFF, an unset variable or a value that is no level.
    level_name = os.environ.get(LOG_ENV, "").strip().upper()
    level = logging.getLevelName(level_name) if level_name not in ("", "OFF") else None
    return level_name, level if isinstance(level, int) else None


def _not_a_level(level_name: str) -> str:
    return f"backport-tool: ignoring {LOG_ENV}={level_name!r}: not a logging level"


def configure_logging() -> None:
    """Honour ``BACKPORT_TOOL_LOG=DEBUG|INFO|WARNING|ERROR|OFF`` (once per process)."""
    level_name, level = _log_env()
    if not level_name or STATE.logging_configured:
        return
    STATE.logging_configured = True
    STATE.log_level_before = logger.level
    if level_name == "OFF":
        logger.setLevel(logging.CRITICAL + 1)
        return
    if level is None:
        logger.warning("%s", _not_a_level(level_name))
        return
    log_to_stderr(level)


def bad_log_level_warning() -> str | None:
    """The warning :func:`configure_logging` logs for a ``BACKPORT_TOOL_LOG``
    that names no level, for a caller that shows it whatever the log's level
    (the CLI); None if there is none. Once per process, as that one is."""
    level_name, level = _log_env()
    if STATE.logging_configured or level_name in ("", "OFF") or level is not None:
        return None
    # All configure_logging would do for this value is warn: marked done, it
    # does not say it a second time (under the CLI's --verbose).
    STATE.logging_configured = True
    return _not_a_level(level_name)


def child_environment(
    manifest: Path, switched: Switches, base: Mapping[str, str], *, boot: bool
) -> dict[str, str]:
    """The environment that makes a child Python process apply the same patch
    set with the same switches: the one exporter for spawn workers,
    ``apply -- CMD``, Inductor's compile subprocesses and the self-test child.

    ``boot`` puts our ``sitecustomize`` first on ``PYTHONPATH``, so that the
    child applies at interpreter startup.
    """
    env = dict(base)
    if boot:
        # Every entry the user gave stays, in order, empty ones included (an
        # empty entry is the current directory); only a boot directory of ours
        # goes, so that a nested `apply --` does not stack a second one.
        given = env.get("PYTHONPATH")
        kept = without_boot(given.split(os.pathsep) if given else [])
        env["PYTHONPATH"] = os.pathsep.join([str(BOOT_DIR), *kept])
    env[MANIFEST_ENV] = str(manifest)
    for name, ids in ((ENABLE_ENV, switched.enabled), (DISABLE_ENV, switched.disabled)):
        if ids:
            env[name] = ",".join(sorted(ids))
        else:
            env.pop(name, None)
    return env
