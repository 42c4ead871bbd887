from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import sys
import tempfile
import traceback
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO, cast

from . import __version__
from .cache import write_bytes
from .commands._output import Format
from .config import (
    CACHE_ENV,
    DISABLE_ENV,
    ENABLE_ENV,
    LOCAL_MANIFEST,
    LOG_ENV,
    MANIFEST_ENV,
    bad_log_level_warning,
    internal_log_path,
    log_to_stderr,
    project_manifest_path,
    restore_logging,
)
from .errors import BackportToolError

EXIT_USAGE = 2  # BackportToolError.exit_code
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE


QUIET_PROBLEMS = "print nothing when all is well; only problems otherwise"


def _add_common(parser: argparse.ArgumentParser, quiet: str | None) -> None:
    parser.add_argument(
        "--manifest",
        metavar="PATH",
        help="manifest to use: a path, or pkg:PACKAGE/path/manifest.yaml inside an importable "
        f"package (default: ${MANIFEST_ENV}, else {LOCAL_MANIFEST} in the current directory "
        "or a parent up to the repository root, else the bundled patch set)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log details of each step to stderr"
    )
    # Only where quiet means something for that command; its help says what.
    if quiet is not None:
        parser.add_argument("-q", "--quiet", action="store_true", help=quiet)


def _formatter(prog: str) -> argparse.HelpFormatter:
    # A fixed width keeps --help (and docs/cli.md, generated from it) the same
    # on every terminal. Raw: the epilog's tables keep their lines.
    return argparse.RawDescriptionHelpFormatter(prog, width=88)


EPILOG = f"""\
environment variables:
  {MANIFEST_ENV:<24} the manifest to use when --manifest is not given
  {ENABLE_ENV:<24} opt-in backports to apply too (comma-separated ids, or 'all')
  {DISABLE_ENV:<24} backports not to apply (comma-separated ids, or 'all')
  {LOG_ENV:<24} log level of the library on stderr (DEBUG, INFO, WARNING, ERROR, OFF)
  {CACHE_ENV:<24} where startup plans, validated manifests, compiled backport code and
                           the internal-error log go (an absolute path; trusted like code)
                           (default: $XDG_CACHE_HOME/backport-tool or ~/.cache/backport-tool)

exit codes:
  0    every backport is fine, or correctly not applied
  1    a backport is drift, missing, failed or partial; with --strict, also one to
       retire or a contradicted fixed_in claim; matrix: only with --strict, a drift
       where applies_to or --supported allows the version; track: a fixed_in the
       history disagrees with, or an upstream.commit the clone does not have
  2    usage error: bad arguments, unknown backport id, invalid manifest, a file
       that cannot be read or written (a read-only manifest included), output
       that cannot be written, a package that is not installed
  3    internal error (a bug: the message names a log file to report)
  130  interrupted (Ctrl-C)
  141  the reader of the output went away (a closed pipe, e.g. `| head`)
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="backport-tool",
        description="Apply upstream PyTorch fixes as verified, reversible patches.",
        epilog=EPILOG,
        formatter_class=_formatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands = {}
    for name, text, quiet in (
        ("apply", "apply the patch set in this process and report each backport", QUIET_PROBLEMS),
        ("check", "verify every backport without changing anything", QUIET_PROBLEMS),
        (
            "status",
            "show the manifest against the installed version, in detail",
            "show only the backports with a problem; nothing when all is well",
        ),
        (
            "lock",
            "record targets' signatures, fingerprints and copies into the manifest",
            "print only what changed",
        ),
        ("matrix", "backports x versions, read statically from wheels or trees", None),
        (
            "track",
            "which upstream release tags really contain each fix (git)",
            "print only the backports whose fixed_in disagrees with the history, or whose "
            "upstream.commit the clone does not have",
        ),
        (
            "new",
            "start a backport: a module skeleton and its manifest entry",
            "print only the paths written",
        ),
    ):
        command = sub.add_parser(
            name, help=text, description=text, epilog=EPILOG, formatter_class=_formatter
        )
        _add_common(command, quiet)
        commands[name] = command
    for name in ("apply", "check", "status"):
        commands[name].add_argument(
            "--enable",
            metavar="ID",
            action="append",
            default=[],
            help=f"apply this opt-in backport too (repeat, or 'all'); as {ENABLE_ENV}",
        )
        commands[name].add_argument(
            "--disable",
            metavar="ID",
            action="append",
            default=[],
            help=f"do not apply this backport (repeat, or 'all'); as {DISABLE_ENV}, and it "
            "wins over --enable; with --source only this counts (the variable is this "
            "machine's runtime switch)",
        )
    for name in ("check", "status", "lock"):
        commands[name].add_argument(
            "--source",
            metavar="SPEC",
            help="read this version of the package statically instead of the installed one: "
            "a .whl file, a directory, or REPO@REV (a git revision)",
        )
    commands["lock"].add_argument(
        "--acknowledge",
        action="store_true",
        help="also record every reference to an original that check reports (after the "
        "copies are recorded) as reviewed, under the target's acknowledged:",
    )
    commands["apply"].add_argument(
        "cmd",
        nargs=argparse.REMAINDER,
        metavar="-- CMD [ARGS]",
        help="run CMD with the patch set applied at the startup of each of its Python "
        "processes, instead of applying in this process",
    )
    check_cmd_parser = commands["check"]
    check_cmd_parser.add_argument(
        "--supported",
        metavar="REQ",
        help="the versions your project supports, e.g. 'torch>=2.12,<2.14'; backports that "
        "can never apply there are flagged for retirement",
    )
    check_cmd_parser.add_argument(
        "--supported-from",
        metavar="PYPROJECT",
        help="read the supported range from this pyproject.toml's [project] dependencies",
    )
    check_cmd_parser.add_argument(
        "--strict",
        action="store_true",
        help="also exit 1 when the code contradicts a fixed_in claim (upstream is "
        "declared to have the fix, but the installed or --source code does not), and, "
        "with --supported, when a backport should be retired",
    )
    check_cmd_parser.add_argument(
        "--format",
        choices=[f.value for f in (Format.TEXT, Format.JSON, Format.GITHUB)],
        default=Format.TEXT.value,
        help="output format (--json is --format json); github prints workflow annotations "
        "on the manifest lines",
    )
    check_cmd_parser.add_argument(
        "--selftest",
        action="store_true",
        help="run each ready backport's self-test in a subprocess with the patch applied "
        "(a backport without one says 'selftest none')",
    )
    commands["new"].add_argument("id", help="the new backport's id, e.g. inductor-fix-foo")
    commands["new"].add_argument(
        "--target",
        dest="targets",
        action="append",
        required=True,
        metavar="MODULE:QUALNAME",
        help="a function, method or value to replace, read from the installed package; "
        "repeat for a backport of several targets",
    )
    commands["new"].add_argument(
        "--package",
        help="distribution that gates a new manifest (default: the target's top-level "
        "module, e.g. torch)",
    )
    commands["track"].add_argument(
        "--upstream", metavar="PATH", required=True, help="a local clone of the upstream repo"
    )
    commands["matrix"].add_argument(
        "--source",
        dest="sources",
        metavar="SPEC",
        action="append",
        required=True,
        help="a version to read (.whl, directory or REPO@REV); repeat for each version",
    )
    commands["matrix"].add_argument(
        "--format",
        choices=[f.value for f in (Format.TEXT, Format.MARKDOWN)],
        default=Format.TEXT.value,
        help="table format (--json prints every report instead)",
    )
    commands["matrix"].add_argument(
        "--supported",
        metavar="REQ",
        help="the versions your project supports, e.g. 'torch>=2.12,<2.14': with --strict, "
        "a drift on one of them counts as it does inside applies_to",
    )
    commands["matrix"].add_argument(
        "--strict",
        action="store_true",
        help="exit 1 when a backport drifts (a target or required symbol missing, a "
        "signature or fingerprint that differs, a declared copy missing or an undeclared "
        "one) on a version that its applies_to or --supported allows",
    )
    return parser


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    # argparse keeps no public handle on its subparsers; the reference and its
    # test both read them from here.
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def reference() -> str:
    """The CLI reference in Markdown, generated from the argparse definitions
    (docs/cli.md is this text; a test keeps them equal)."""
    parser = build_parser()
    parts = [
        "# CLI reference",
        "",
        "Generated from the argparse definitions by",
        "`python -c 'from backport_tool.cli import reference; print(reference(), end=\"\")'`.",
        "",
        "```",
        parser.format_help().rstrip(),
        "```",
    ]
    for name, command in subcommands(parser).items():
        parts += ["", f"## backport-tool {name}", "", "```", command.format_help().rstrip(), "```"]
    return "\n".join(parts) + "\n"


def _internal_error() -> int:
    details = traceback.format_exc()
    # Through the cache's rules: never through a planted symlink, never into
    # a directory others can write.
    written = write_bytes(internal_log_path(), details.encode("utf-8", errors="replace"))
    if written is None:
        # mkstemp: a fresh private file with an unpredictable name.
        with tempfile.NamedTemporaryFile(
            "w", prefix="backport-tool-", suffix=".log", delete=False
        ) as fallback:
            fallback.write(details)
        written = Path(fallback.name)
    path = written
    last = details.strip().splitlines()[-1]
    print(
        f"backport-tool: internal error: {last}\n"
        f"The traceback is in {path}. Please report it with that file.",
        file=sys.stderr,
    )
    return EXIT_INTERNAL


def _reader_gone() -> int:
    # As git and ruff: no message, and the status a shell shows for SIGPIPE.
    _drop_stdout()
    return EXIT_BROKEN_PIPE


def _drop_stdout() -> None:
    # What is still buffered for stdout must not reach the closed pipe (or
    # full disk) when the interpreter flushes it at exit ("Exception ignored
    # ... BrokenPipeError").
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real file descriptor (captured stdout)
        pass


# Writing stdout or stderr failed: where the output goes is full or broken.
# An OSError still, for the code that already expects one from a write: the
# warnings module drops a warning that stderr cannot take.
class _OutputError(BackportToolError, OSError):
    def __init__(self, stream: str, exc: OSError) -> None:
        self.stream = stream
        super().__init__(
            f"cannot write the output to {stream}: {exc.strerror or exc}; what was printed is "
            f"incomplete. Check where {stream} goes (a full disk?), then run the command again"
        )


class _Checked:
    # sys.stdout or sys.stderr while a command runs. An OSError writing the
    # output (a full disk, an I/O error) is the environment's, exit 2, and
    # must not be taken for an OSError of the command's own work, which is a
    # bug: only here can the two be told apart. A closed pipe stays a
    # BrokenPipeError, which has its own exit status.

    def __init__(self, stream: TextIO, name: str) -> None:
        self._stream = stream
        self._name = name

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        try:
            yield
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _OutputError(self._name, exc) from exc

    def write(self, text: str) -> int:
        with self._writing():
            return self._stream.write(text)

    def writelines(self, lines: Iterable[str]) -> None:
        with self._writing():
            self._stream.writelines(lines)

    def flush(self) -> None:
        with self._writing():
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _tell(text: str) -> None:
    # When stderr cannot be written either, the exit status is all there is.
    with contextlib.suppress(OSError):
        print(text, file=sys.stderr)


def _format(args: argparse.Namespace) -> Format:
    return Format.JSON if args.json else Format(args.format)


def _run(args: argparse.Namespace) -> int:
    # The one place where parsed options become typed parameters. Each verb
    # imports its own module: `apply -- CMD`, the server's launch path, loads
    # none of the tools (check's walk, the static reader, git, ruamel.yaml).
    manifest: str | None = args.manifest
    quiet: bool = getattr(args, "quiet", False)
    if args.command == "apply":
        from .commands import apply as apply_cmd  # noqa: PLC0415

        return apply_cmd.run(
            manifest,
            args.cmd,
            enable=args.enable,
            disable=args.disable,
            as_json=args.json,
            quiet=quiet,
        )
    if args.command == "check":
        from .commands import check as check_cmd  # noqa: PLC0415

        return check_cmd.run(
            manifest,
            source=args.source,
            supported=args.supported,
            supported_from=args.supported_from,
            strict=args.strict,
            fmt=_format(args),
            selftest=args.selftest,
            enable=args.enable,
            disable=args.disable,
            quiet=quiet,
        )
    if args.command == "status":
        from .commands import status as status_cmd  # noqa: PLC0415

        return status_cmd.run(
            manifest,
            source=args.source,
            enable=args.enable,
            disable=args.disable,
            as_json=args.json,
            quiet=quiet,
        )
    if args.command == "lock":
        from .commands import lock as lock_cmd  # noqa: PLC0415

        return lock_cmd.run(
            manifest,
            source=args.source,
            as_json=args.json,
            quiet=quiet,
            acknowledging=args.acknowledge,
        )
    if args.command == "matrix":
        from .commands import matrix as matrix_cmd  # noqa: PLC0415

        return matrix_cmd.run(
            manifest, args.sources, fmt=_format(args), supported=args.supported, strict=args.strict
        )
    if args.command == "track":
        from .commands import track as track_cmd  # noqa: PLC0415

        return track_cmd.run(manifest, args.upstream, as_json=args.json, quiet=quiet)
    assert args.command == "new"
    from .commands import new as new_cmd  # noqa: PLC0415

    return new_cmd.run(
        manifest or LOCAL_MANIFEST,
        args.id,
        args.targets,
        package=args.package,
        as_json=args.json,
        quiet=quiet,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    if args.manifest is None:
        # The current directory is where a project keeps its patch set, and
        # where `new` starts one.
        found = project_manifest_path(Path())
        if found is not None:
            # Named as short as it is unambiguous: "manifest.yaml" when it is
            # the current directory's, its full path when found above.
            here = found.parent == Path(os.path.abspath(os.curdir))
            args.manifest = found.name if here else str(found)
    # The report already shows every problem; the log is for --verbose.
    previous = log_to_stderr(logging.DEBUG if args.verbose else logging.ERROR)
    # main() may run inside a larger program (tests, the pytest plugin): its
    # logging and warning filters are left as they were.
    try:
        with warnings.catch_warnings():
            if not args.verbose:
                # torch warns on import when NumPy is missing, which changes
                # nothing backport-tool checks: only this one warning goes.
                warnings.filterwarnings(
                    "ignore",
                    message="Failed to initialize NumPy",
                    category=UserWarning,
                    module="torch",
                )
            return _guarded(args)
    finally:
        restore_logging(previous)


def _guarded(args: argparse.Namespace) -> int:
    stdout, stderr = sys.stdout, sys.stderr
    if stdout is None:
        # Started with stdout closed (`>&-`): refused before anything is
        # done, rather than after `lock` or `new` have written their files.
        _tell(
            "backport-tool: error: stdout is closed, so nothing can be printed; run it "
            "with stdout open (>/dev/null to drop the output)"
        )
        return EXIT_USAGE
    # cast: the wrapper has what print() and the commands use, and passes
    # anything else on to the stream. Closed stderr: messages go nowhere.
    sys.stdout = cast(TextIO, _Checked(stdout, "stdout"))
    sys.stderr = cast(TextIO, _Checked(stderr or io.StringIO(), "stderr"))
    try:
        return _handled(args)
    finally:
        sys.stdout, sys.stderr = stdout, stderr


def _handled(args: argparse.Namespace) -> int:
    try:
        # The cap on the log would hide it: seeing that the variable is
        # ignored must not need --verbose.
        warning = bad_log_level_warning()
        if warning is not None:
            _tell(warning)
        code = _run(args)
        # Inside the try: a reader that went away (`status | head -1`) shows
        # up at the flush as often as at a print.
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        return _reader_gone()
    except _OutputError as exc:
        if exc.stream == "stdout":
            _drop_stdout()
        _tell(f"backport-tool: error: {exc}")
        return exc.exit_code
    except BackportToolError as exc:
        _tell(f"backport-tool: error: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        _tell("backport-tool: interrupted")
        return EXIT_INTERRUPTED
    except Exception:
        return _internal_error()
