from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from helpers import PatchSet

from backport_tool import ManifestError, Status, apply, check, load_manifest
from backport_tool.lock import lock

MANIFEST = """\
# The patch set (comment kept by lock)
version: 1
package: {dist}
backports:
  # first entry
  - id: fix
    summary: s   # trailing comment
    applies_to: ">=1.0,<2.0"
    module: backports/fix.py
    targets:
      - symbol: "{mod}:Widget.compute"
        replacement: compute   # the new one
      - replacement: other
        symbol: "{mod}:Widget.other"
  - id: later
    summary: not for this version
    applies_to: ">=2.0"
    module: backports/fix.py
    targets:
      - symbol: "{mod}:Widget.compute"
        replacement: compute
"""


@pytest.fixture
def manifest(patchset: PatchSet) -> Path:
    path = patchset.patches / "manifest.yaml"
    path.write_text(MANIFEST.format(dist=patchset.dist, mod=patchset.module))
    return path


def test_lock_records_signatures_and_fingerprints_keeping_comments_and_order(
    patchset: PatchSet, manifest: Path
) -> None:
    entries = lock(manifest)
    assert [(e.backport, e.symbol is None, e.action) for e in entries] == [
        ("fix", True, "updated"),  # the module's sha256 pin
        ("fix", False, "updated"),
        ("fix", False, "updated"),
        ("later", True, "skipped"),
    ]
    text = manifest.read_text()
    locked = load_manifest(manifest).get("fix")
    fp = locked.targets[0].fingerprints[0]
    assert locked.sha256 == hashlib.sha256(locked.module.read_bytes()).hexdigest()
    assert text.splitlines()[:17] == [
        "# The patch set (comment kept by lock)",
        "version: 1",
        f"package: {patchset.dist}",
        "backports:",
        "  # first entry",
        "  - id: fix",
        "    summary: s   # trailing comment",
        '    applies_to: ">=1.0,<2.0"',
        "    module: backports/fix.py",
        f"    sha256: {locked.sha256}",
        "    targets:",
        f'      - symbol: "{patchset.module}:Widget.compute"',
        "        replacement: compute   # the new one",
        '        signature: "(self, x: int) -> int"',
        f'        fingerprint: "{fp}"',
        '        recorded_from: ["1.5.0"]',
        "      - replacement: other",
    ]
    assert check(manifest).by_id("fix").reason == (
        "would apply: targets found, signatures match, fingerprints match"
    )


def test_lock_again_is_unchanged_and_a_new_version_is_added(
    patchset: PatchSet, manifest: Path
) -> None:
    lock(manifest)
    before = manifest.read_text()
    assert {e.action for e in lock(manifest) if e.backport == "fix"} == {"unchanged"}
    assert manifest.read_text() == before
    patchset.set_version("1.5.1")
    lock(manifest)
    assert load_manifest(manifest).get("fix").targets[0].recorded_from == ("1.5.0", "1.5.1")


def test_lock_replaces_a_changed_fingerprint(patchset: PatchSet, manifest: Path) -> None:
    lock(manifest)
    old = load_manifest(manifest).get("fix").targets[0].fingerprints
    source = patchset.site / f"{patchset.module}.py"
    source.write_text(source.read_text().replace("return x + 1\n", "return x + 10\n"))
    patchset.set_version("1.6.0")
    result = check(manifest).by_id("fix")
    assert result.status is Status.DRIFT
    entries = lock(manifest)
    assert entries[0].detail.startswith("fingerprint sha256:")
    target = load_manifest(manifest).get("fix").targets[0]
    assert target.fingerprints != old
    assert target.recorded_from == ("1.6.0",)


def test_lock_from_a_source_tree(patchset: PatchSet, manifest: Path) -> None:
    entries = lock(manifest, source=str(patchset.site))
    assert [e.action for e in entries] == ["updated", "updated", "updated", "skipped"]
    assert patchset.module not in __import__("sys").modules


def test_lock_refuses_an_invalid_manifest_and_leaves_it_alone(
    patchset: PatchSet, manifest: Path
) -> None:
    manifest.write_text(manifest.read_text().replace("version: 1", "version: 7"))
    before = manifest.read_text()
    with pytest.raises(ManifestError):
        lock(manifest)
    assert manifest.read_text() == before


def test_lock_reads_the_original_even_while_the_patch_is_applied(
    patchset: PatchSet, manifest: Path
) -> None:
    lock(manifest)
    before = manifest.read_text()
    apply(manifest, eager=True)
    assert patchset.target().Widget().compute(1) == 1001
    assert {e.action for e in lock(manifest) if e.backport == "fix"} == {"unchanged"}
    assert manifest.read_text() == before


def test_a_pinned_module_that_was_modified_is_not_run(patchset: PatchSet, manifest: Path) -> None:
    lock(manifest)
    module = patchset.patches / "backports" / "fix.py"
    marker = patchset.root / "ran"
    module.write_text(module.read_text() + f"\nopen({str(marker)!r}, 'w').close()\n")
    result = apply(manifest, eager=True).by_id("fix")
    assert result.status is Status.FAILED
    assert result.reason.startswith("backports/fix.py has sha256 ")
    assert result.reason.endswith(
        "; it was modified, so it was not run. If the change is yours, run "
        "`backport-tool lock` to pin the new file"
    )
    assert not marker.exists()
    assert patchset.target().Widget().compute(1) == 2
