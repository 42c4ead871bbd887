from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .report import Report


# What code backport-tool does not own (a backport module and its hooks, a
# target module it imports) may raise, and what is then reported as that
# code's failure. sys.exit() on import is a bug of the module that calls it,
# never the wish of the server or of `check` to end with its code;
# KeyboardInterrupt still goes through.
FOREIGN_FAILURES: tuple[type[BaseException], ...] = (Exception, SystemExit)


class ForeignSignal(Exception):
    """Not public: a backport's code raised a BaseException that is no
    Exception (asyncio.CancelledError, a class of its own). Carried as an
    Exception so that it is that backport's failure, as any other."""


@contextmanager
def foreign_code() -> Iterator[None]:
    # Around the code of a backport module (its body, its hooks): its
    # failures are its own, whatever class they are. Ctrl-C, sys.exit() and
    # generator closing keep their meaning.
    try:
        yield
    except (Exception, KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:
        raise ForeignSignal(describe(exc)) from exc


# An exception as every message names it: its type, and its text if any.
def describe(exc: BaseException) -> str:
    if isinstance(exc, ForeignSignal):
        return str(exc)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class BackportToolError(Exception):
    """Base class of every error a user of backport-tool can cause.

    The message says what is wrong and what to do about it. The CLI prints it
    without a traceback and exits with :attr:`exit_code`.
    """

    exit_code: int = 2


class ManifestError(BackportToolError):
    """The manifest cannot be read or does not follow the schema.

    ``problems`` holds one line per problem, each naming the file, the key path,
    what was expected and what was found.
    """

    def __init__(self, path: str, problems: Sequence[str]) -> None:
        self.path = path
        self.problems = tuple(problems)
        # Each problem already starts with the file name (and line).
        if len(self.problems) == 1:
            message = f"invalid manifest: {self.problems[0]}"
        else:
            lines = "\n".join(f"  - {p}" for p in self.problems)
            message = f"invalid manifest ({len(self.problems)} problems):\n{lines}"
        super().__init__(message)


class InstalledVersionError(BackportToolError):
    """The installed version of the gating package cannot be parsed."""


class UsageError(BackportToolError):
    """The library or CLI was called in a way that cannot work."""


# What needs ruamel.yaml, as MissingDependencyError names it.
WRITING_MANIFEST = "writing the manifest (`lock`, `new`)"


class MissingDependencyError(BackportToolError, ImportError):
    """A command needs a third-party package that cannot be imported.

    ``apply`` and ``check`` need only packaging and pyyaml (and the patched
    package). ``track``, ``lock``, ``new`` and reading a git revision import
    more, only when they run, and raise this when it is missing. It is also an
    :class:`ImportError`, as the import of a module that needs it fails.
    """

    def __init__(self, needed_by: str, distribution: str, module: str, cause: ImportError) -> None:
        self.needed_by = needed_by
        self.distribution = distribution
        missing = cause.name if isinstance(cause, ModuleNotFoundError) else None
        if missing is not None and (module == missing or module.startswith(f"{missing}.")):
            message = f"{needed_by} needs {distribution}: pip install {distribution}"
        else:
            # Installed but broken (a dependency of its own missing, GitPython
            # without a git executable): reinstalling is not the fix, its
            # error is. Its first line only: the CLI prints one line.
            why = str(cause).strip().partition("\n")[0] or type(cause).__name__
            message = f"{needed_by} needs {distribution}, which failed to import: {why}"
        super().__init__(message, name=module)


class VerificationError(BackportToolError):
    """``apply(strict=True)`` found a backport that is drift, missing, failed or partial."""

    exit_code = 1

    def __init__(self, report: Report) -> None:
        self.report = report
        bad = [f"{r.id}: {r.status.value} ({r.reason})" for r in report.results if r.is_problem]
        super().__init__(
            "backport verification failed:\n  " + "\n  ".join(bad) + "\nHint: run "
            "`backport-tool status` for details, or set BACKPORT_TOOL_DISABLE to skip a backport"
        )


class ScopeError(VerificationError):
    """``enabled(ID)`` cannot put the backport in force for its block: it is
    ``drift``, ``missing`` or ``failed`` here, its ``after_apply`` raised,
    another backport (or the same id from another manifest) holds one of its
    bindings, or something else replaced a target since it was verified (the
    next scope verifies it again). Nothing was changed and the block did not
    run.

    ``report`` holds the one backport's result.
    """

    def __init__(self, report: Report) -> None:
        self.report = report
        result = report.results[0]
        BackportToolError.__init__(
            self,
            f"enabled({result.id!r}): backport {result.id} cannot be put in force: "
            f"{result.status.value} ({result.reason}); nothing was changed. Hint: run "
            "`backport-tool status` for details",
        )
