"""``check``: verify a patch set against the installed torch, or another version
read statically, without patching anything. A tool for CI and developers,
never on a server's startup path."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import replace

from packaging.version import Version

from .api import Given, installed, manifest_for, warn_unknown_ids
from .config import Switches, id_set, switches
from .engine import Mode, run
from .errors import UsageError
from .findings import Verdict
from .inspection import LiveInspector, StaticInspector
from .loading import SELFTEST_HOOK, load_backport_module
from .manifest import Manifest
from .report import BackportResult, Report, Status
from .retire import SupportedGiven, retirement, supported_given
from .selftest import run_selftest
from .static import StaticIndex, open_tree


def check(
    manifest: str | os.PathLike[str] | Manifest | None = None,
    *,
    source: str | None = None,
    supported: SupportedGiven | None = None,
    selftest: bool = False,
    enable: Iterable[str] = (),
    disable: Iterable[str] = (),
) -> Report:
    """Verify every backport like :func:`apply` would, without patching anything.

    It imports the target packages and walks the process once for references
    to each original that the manifest does not declare (``partial``).

    With ``source`` (a wheel, a directory, or ``REPO@REV``), check that version of
    the package instead of the installed one, by parsing its sources; nothing of
    it is imported. A backport refused as fixed upstream gets its claim checked
    against the code (``upstream_claim``). A backport already applied in this
    process is verified against its original and reported ``applied``.

    With ``supported`` (a ``packaging`` ``SpecifierSet`` or a string such as
    ``"torch>=2.12,<2.14"``, or a sequence of them for their union), each
    result's ``retire`` says why the backport can never apply to any supported
    version. With ``selftest``, every ``ready`` or applied backport that
    defines a ``selftest()`` runs it in a subprocess with the patch set
    applied.

    ``enable`` and ``disable`` switch backports like ``BACKPORT_TOOL_ENABLE`` and
    ``BACKPORT_TOOL_DISABLE``; an id that names no backport of the manifest is
    logged as a warning and listed in the report's ``warnings``.
    """
    loaded = manifest_for(manifest)
    supported_range = (
        None
        if supported is None
        else supported_given(supported, loaded.package, "check(supported=...)")
    )
    given = Given.of(enable, disable, ("check(enable=...)", "check(disable=...)"))
    switched = switches(given.enable, given.disable)
    warnings = warn_unknown_ids(given, (b.id for b in loaded.backports))
    if source is None:
        version = installed(loaded.package, switched)
        report = run(loaded, Mode.CHECK, LiveInspector(), version, switched)
    else:
        if selftest:
            raise UsageError("--selftest runs the installed package; it cannot run a --source")
        inspector, found = read_source(loaded, source)
        # Another version, read statically: the environment's switches are
        # this process's, so only what the caller switches counts.
        chosen = Switches(id_set(given.disable), switched.enabled)
        report = run(loaded, Mode.STATIC, inspector, found, chosen)
    results = []
    for backport, result in zip(loaded.backports, report.results, strict=True):
        final = result
        if supported_range is not None:
            final = replace(final, retire=retirement(backport, supported_range))
        if selftest and final.status in (Status.READY, Status.APPLIED):
            final = _selftest(loaded, backport.id, final, switched)
        results.append(final)
    return replace(report, results=tuple(results), warnings=warnings)


def read_source(manifest: Manifest, source: str) -> tuple[StaticInspector, Version]:
    # check --source and matrix: the sources of one version, and which it is.
    tree = open_tree(source)
    found = tree.version(manifest.package)
    if found is None:
        raise UsageError(
            f"cannot tell which {manifest.package} version {source} holds: it has no "
            f"{manifest.package} dist-info, version.txt or {manifest.package}/version.py"
        )
    return StaticInspector(StaticIndex(tree)), found


def _selftest(
    manifest: Manifest, backport_id: str, result: BackportResult, switched: Switches
) -> BackportResult:
    backport = manifest.get(backport_id)
    if not hasattr(load_backport_module(backport), SELFTEST_HOOK):
        # Said, not left out: a CI gate that asked for self-tests must see
        # which backports have none rather than take silence for a pass.
        message = f"{backport.module_text} defines no {SELFTEST_HOOK}(); nothing ran"
        return replace(result, selftest=Verdict.NONE, selftest_message=message)
    outcome = run_selftest(manifest.location, backport_id, switched)
    return replace(result, selftest=outcome.verdict, selftest_message=outcome.message)
