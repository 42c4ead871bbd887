"""Reading a manifest: only regular files, a byte limit, and the symlink rule."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from backport_tool import ManifestError, load_manifest
from backport_tool.manifest_file import MAX_MANIFEST_BYTES, read_manifest_file


def problems(path: Path) -> tuple[str, ...]:
    with pytest.raises(ManifestError) as raised:
        read_manifest_file(path)
    return raised.value.problems


def test_a_device_is_refused_without_reading_it() -> None:
    assert problems(Path("/dev/zero")) == (
        "/dev/zero: is not a regular file (a device, FIFO or socket); give a manifest file",
    )


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "manifest.yaml"
    os.mkfifo(fifo)
    # In a child with a deadline: a hang must fail the test, not stall the suite.
    code = (
        "import sys\n"
        "from backport_tool import ManifestError, load_manifest\n"
        "try:\n"
        f"    load_manifest({str(fifo)!r})\n"
        "except ManifestError as exc:\n"
        "    print(exc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.stdout == (
        f"invalid manifest: {fifo}: is not a regular file (a device, FIFO or socket); "
        "give a manifest file\n"
    )


def test_the_cli_refuses_dev_zero_with_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "backport_tool", "check", "--manifest", "/dev/zero"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == (
        "backport-tool: error: invalid manifest: /dev/zero: is not a regular file (a device, "
        "FIFO or socket); give a manifest file\n"
    )


def test_size_limit_directory_dangling_link_and_loop(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (MAX_MANIFEST_BYTES + 1))
    assert problems(big) == (
        f"{big}: {MAX_MANIFEST_BYTES + 1} bytes, over the {MAX_MANIFEST_BYTES} byte limit "
        "for a manifest; split the patch set or remove what is not a manifest",
    )
    assert problems(tmp_path) == (f"{tmp_path}: is a directory, not a manifest file",)
    dangling = tmp_path / "dangling.yaml"
    dangling.symlink_to(tmp_path / "gone.yaml")
    assert problems(dangling) == (f"{dangling}: a symlink to a missing file",)
    loop = tmp_path / "loop.yaml"
    loop.symlink_to(loop)
    (message,) = problems(loop)
    assert message.startswith(f"{loop}: cannot resolve the path: ")


def test_a_link_is_read_as_the_file_it_points_to(tmp_path: Path) -> None:
    real = tmp_path / "set" / "manifest.yaml"
    real.parent.mkdir()
    real.write_text("version: 1\npackage: torch\nbackports: []\n")
    link = tmp_path / "link.yaml"
    link.symlink_to(real)
    file = read_manifest_file(link)
    assert (file.path, file.location, file.raw) == (link, real, real.read_bytes())
    manifest = load_manifest(link)
    assert (manifest.path, manifest.location) == (link, real)
