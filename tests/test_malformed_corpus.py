"""A corpus of hand-written malformed manifests (tests/data/malformed), each with
its exact expected message: exit code 2, one message, no traceback."""

from __future__ import annotations

import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from backport_tool import ManifestError, cli, load_manifest

CORPUS = Path(__file__).resolve().parent / "data" / "malformed"
CASES = sorted(p.name for p in CORPUS.glob("*.yaml"))


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("name", CASES)
def test_each_malformed_manifest_exits_2_with_its_message(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(CORPUS)
    expected = (CORPUS / name).with_suffix(".expected").read_text(encoding="utf-8")
    assert cli.main(["check", "--manifest", name]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", expected)
    assert "Traceback" not in err


@pytest.mark.parametrize("name", ["01-yaml-syntax-error.yaml", "06-python-object-tag.yaml"])
def test_through_a_real_process(name: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "backport_tool", "apply", "--manifest", name],
        cwd=CORPUS,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr == (CORPUS / name).with_suffix(".expected").read_text(encoding="utf-8")


def test_alias_bomb_is_refused_fast_and_in_bounded_memory() -> None:
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(ManifestError):
        load_manifest(CORPUS / "07-alias-bomb.yaml")
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 2.0
    assert peak < 20 * 1024 * 1024  # 9**10 "lol"s would need gigabytes


def test_oversized_manifest(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("# " + "x" * (1024 * 1024) + "\n")
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert str(info.value) == (
        f"invalid manifest: {path}: 1048579 bytes, over the 1048576 byte limit for a manifest; "
        "split the patch set or remove what is not a manifest"
    )


def test_module_symlink_out_of_the_root_and_a_directory(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "backports").mkdir(parents=True)
    (tmp_path / "evil.py").write_text("raise SystemExit('pwned')\n")
    (root / "backports" / "fix.py").symlink_to(tmp_path / "evil.py")
    text = (CORPUS / "09-duplicate-id.yaml").read_text().split("  - id: fix", 2)
    (root / "manifest.yaml").write_text(text[0] + "  - id: fix" + text[1])
    with pytest.raises(ManifestError) as info:
        load_manifest(root / "manifest.yaml")
    assert info.value.problems == (
        f"{root / 'manifest.yaml'}:7: backports[0].module: expected a path inside the "
        f"manifest's directory {root}, got 'backports/fix.py'",
    )
    with pytest.raises(ManifestError) as info:
        load_manifest(root)
    assert info.value.problems == (f"{root}: is a directory, not a manifest file",)
