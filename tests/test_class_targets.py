"""Class targets on the real torch 2.11.0: torch.nn.LayerNorm replaced by a
subclass, at its definition and its re-export, eager and lazy; its
fingerprint read live and statically; revert; pickling of instances made
while patched; and, on a synthetic package, drift of a class body and the
refusal of a replacement that is not a subclass."""

from __future__ import annotations

import copy
import functools
import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import PatchSet

pytestmark = pytest.mark.torch211

torch = pytest.importorskip("torch")

import backport_tool  # noqa: E402
from backport_tool import Status  # noqa: E402
from backport_tool.inspection import LiveInspector, StaticInspector  # noqa: E402
from backport_tool.manifest import SymbolRef  # noqa: E402
from backport_tool.static import DirTree, StaticIndex  # noqa: E402

apply = functools.partial(backport_tool.apply, eager=True)

ORIGINAL = torch.nn.modules.normalization.LayerNorm
TARGET = "torch.nn.modules.normalization:LayerNorm"

RECORDING = """
# Lazy apply runs this inside `import torch`, before torch.nn is set on torch:
# the original is imported from its own module.
from torch.nn.modules.module import Module
from torch.nn.modules.normalization import LayerNorm

CALLS = []


class RecordingLayerNorm(LayerNorm):
    def forward(self, input):
        CALLS.append(tuple(input.shape))
        return super().forward(input)


def not_a_class(*args, **kwargs):
    return None


class Unrelated(Module):
    pass


class Narrower(LayerNorm):
    def __init__(self, normalized_shape):
        super().__init__(normalized_shape)
"""


def layer_norm_manifest(tmp_path: Path, replacement: str = "RecordingLayerNorm") -> Path:
    (tmp_path / "backports").mkdir(exist_ok=True)
    (tmp_path / "backports" / "ln.py").write_text(RECORDING)
    entry: dict[str, Any] = {
        "id": "ln",
        "summary": "record LayerNorm calls",
        "applies_to": ">=2.11.0,<2.12",
        "module": "backports/ln.py",
        "targets": [
            {"symbol": TARGET, "replacement": replacement, "copies": ["torch.nn:LayerNorm"]}
        ],
    }
    path = tmp_path / "manifest.yaml"
    path.write_text(
        yaml.safe_dump({"version": 1, "package": "torch", "backports": [entry]}, sort_keys=False)
    )
    return path


def python(tmp_path: Path, code: str) -> subprocess.CompletedProcess[str]:
    program = tmp_path / f"prog{len(list(tmp_path.glob('prog*.py')))}.py"
    program.write_text(textwrap.dedent(code))
    # Without the patch set that apply() in this process exports to children.
    unset = ("BACKPORT_TOOL_MANIFEST", "BACKPORT_TOOL_ENABLE", "BACKPORT_TOOL_DISABLE")
    environ = {k: v for k, v in os.environ.items() if k not in unset}
    environ["PYTHONPATH"] = os.pathsep.join(
        [str(tmp_path), *filter(None, [environ.get("PYTHONPATH")])]
    )
    return subprocess.run(
        [sys.executable, str(program)],
        capture_output=True,
        text=True,
        env=environ,
        timeout=300,
        cwd=tmp_path,
        check=False,
    )


def test_eager_apply_replaces_the_class_at_both_sites_and_revert_restores_them(
    tmp_path: Path,
) -> None:
    path = layer_norm_manifest(tmp_path)
    try:
        result = apply(path).by_id("ln")
        assert result.status is Status.APPLIED, result.reason
        replacement = torch.nn.LayerNorm
        assert replacement is torch.nn.modules.normalization.LayerNorm
        assert replacement is not ORIGINAL
        assert issubclass(replacement, ORIGINAL)
        calls = sys.modules[replacement.__module__].CALLS
        module = torch.nn.LayerNorm(4)
        assert isinstance(module, ORIGINAL)
        out = module(torch.ones(2, 4))
        assert out.shape == (2, 4)
        assert calls == [(2, 4)]
        assert backport_tool.original(TARGET) is ORIGINAL
    finally:
        backport_tool.revert()
    assert torch.nn.LayerNorm is ORIGINAL
    assert torch.nn.modules.normalization.LayerNorm is ORIGINAL


def test_lazy_apply_before_import_torch_and_a_control(tmp_path: Path) -> None:
    layer_norm_manifest(tmp_path)
    proc = python(
        tmp_path,
        """
        import sys
        import backport_tool
        backport_tool.apply("manifest.yaml")
        import torch
        import torch.nn.modules.normalization as normalization
        ln = torch.nn.LayerNorm(4)
        ln(torch.ones(3, 4))
        calls = sys.modules[type(ln).__module__].CALLS
        print(type(ln).__name__, normalization.LayerNorm is torch.nn.LayerNorm, calls)
        print(backport_tool.current_report().by_id("ln").status.value)
        """,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-2:] == ["RecordingLayerNorm True [(3, 4)]", "applied"]
    control = python(
        tmp_path,
        """
        import torch
        print(torch.nn.LayerNorm.__module__, torch.nn.LayerNorm.__name__)
        """,
    )
    assert control.returncode == 0, control.stderr
    assert control.stdout.split() == ["torch.nn.modules.normalization", "LayerNorm"]


def test_revert_after_a_lazy_apply_names_the_subclasses_torch_made_meanwhile(
    tmp_path: Path,
) -> None:
    # Lazy apply replaces the class inside `import torch`; torch's quantized
    # LayerNorm, defined later in that import, subclasses the replacement, and
    # the two copies this manifest does not declare (lock would) bind it.
    # Revert changes neither a class's bases nor undeclared names: it says so.
    layer_norm_manifest(tmp_path)
    proc = python(
        tmp_path,
        """
        import backport_tool
        backport_tool.apply("manifest.yaml")
        import torch
        import torch.ao.nn.quantized as quantized
        print(quantized.LayerNorm.__bases__[0].__name__)
        backport_tool.revert()
        print(torch.nn.LayerNorm.__name__, quantized.LayerNorm.__bases__[0].__name__)
        """,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.split() == ["RecordingLayerNorm", "LayerNorm", "RecordingLayerNorm"]
    assert (
        "backport-tool: ln: reverted; what was bound to its replacement while it was in force "
        "keeps it, as revert restores only the target and its declared copies: "
        "torch.ao.nn.quantized.modules.normalization:LayerNorm (a subclass), "
        "torch.nn.modules.transformer:LayerNorm, torch.nn.modules:LayerNorm. Import or build "
        "those again after revert, or restart the process"
    ) in proc.stderr


def test_a_module_imported_inside_an_enabled_scope_is_named_when_it_ends(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # transformers imports a model's module while it builds the model: inside
    # the scope, that module binds the replacement, and keeps it after.
    path = layer_norm_manifest(tmp_path)
    (tmp_path / "usermodel.py").write_text("from torch.nn import LayerNorm\n")
    sys.path.insert(0, str(tmp_path))
    try:
        with backport_tool.enabled("ln", manifest=path):
            import usermodel  # type: ignore[import-not-found]

            inside = usermodel.LayerNorm
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("usermodel", None)
    assert torch.nn.LayerNorm is ORIGINAL
    assert usermodel.LayerNorm is inside  # a user module is never changed
    assert inside is not ORIGINAL
    assert [r.getMessage() for r in caplog.records if "reverted;" in r.getMessage()] == [
        "backport-tool: ln: reverted; what was bound to its replacement while it was in force "
        "keeps it, as revert restores only the target and its declared copies: "
        "usermodel:LayerNorm. Import or build those again after revert, or restart the process"
    ]


def test_check_reports_the_class_and_its_fingerprint_live_and_static_agree(
    tmp_path: Path,
) -> None:
    report = backport_tool.check(layer_norm_manifest(tmp_path)).by_id("ln").targets[0]
    assert report.presence.value == "found"
    assert report.actual_fingerprint is not None
    assert report.actual_fingerprint.startswith("sha256:")
    # Its own methods' __class__ cells are the class itself, not copies; its
    # other module globals and its subclasses are references apply does not reach.
    assert not [p for p in report.stale_references if "__closure__" in p]
    assert "torch.nn.modules:LayerNorm" in report.stale_references
    assert "torch.ao.nn.quantized:LayerNorm.<type>" in report.stale_references
    ref = SymbolRef.parse(TARGET)
    live = LiveInspector().inspect(ref)
    root = Path(torch.__file__).parents[1]
    static = StaticInspector(StaticIndex(DirTree(root))).inspect(ref)
    assert live.function is not None
    assert static.function is not None
    assert static.function.fingerprint == live.function.fingerprint == report.actual_fingerprint
    assert "def forward" in live.function.source
    assert '"""' not in live.function.source  # docstrings dropped


def test_a_replacement_that_is_not_a_subclass_is_refused(tmp_path: Path) -> None:
    result = backport_tool.check(layer_norm_manifest(tmp_path, "not_a_class")).by_id("ln")
    assert result.status is Status.FAILED
    assert "is a function, and the original" in result.reason
    assert "a class target takes a class" in result.reason
    result = backport_tool.check(layer_norm_manifest(tmp_path, "Unrelated")).by_id("ln")
    assert result.status is Status.FAILED
    assert "is not a subclass of the original" in result.reason
    assert apply(layer_norm_manifest(tmp_path, "Unrelated")).by_id("ln").status is Status.FAILED
    # Callers construct it as they construct the original.
    result = backport_tool.check(layer_norm_manifest(tmp_path, "Narrower")).by_id("ln")
    assert result.status is Status.FAILED
    assert "backports/ln.py:Narrower cannot replace" in result.reason
    assert "callers may pass eps=" in result.reason
    assert torch.nn.LayerNorm is ORIGINAL


def test_a_model_saved_while_patched_loads_without_the_patch_set(tmp_path: Path) -> None:
    path = layer_norm_manifest(tmp_path)
    try:
        assert apply(path).by_id("ln").status is Status.APPLIED
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
        assert type(model[1]) is torch.nn.LayerNorm
        torch.save(model, tmp_path / "model.pt")
        torch.save(model.state_dict(), tmp_path / "state.pt")
        expected = model(torch.ones(2, 4)).tolist()
        # Loaded while patched, the path gives the replacement again.
        again = torch.load(tmp_path / "model.pt", weights_only=False)
        assert type(again[1]) is torch.nn.LayerNorm
        assert type(pickle.loads(pickle.dumps(model))[1]) is torch.nn.LayerNorm
        # Copies are not pickling: they stay instances of the replacement.
        assert type(copy.deepcopy(model)[1]) is torch.nn.LayerNorm
        assert type(copy.copy(model[1])) is torch.nn.LayerNorm
        assert copy.deepcopy(model)(torch.ones(2, 4)).tolist() == expected
    finally:
        backport_tool.revert()
    proc = python(
        tmp_path,
        """
        import json
        import backport_tool
        import torch
        model = torch.load("model.pt", weights_only=False)
        plain = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
        plain.load_state_dict(torch.load("state.pt"))
        x = torch.ones(2, 4)
        print(type(model[1]) is torch.nn.LayerNorm, backport_tool.applied())
        print(json.dumps([model(x).tolist(), plain(x).tolist()]))
        """,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    first, second = proc.stdout.splitlines()[-2:]
    assert first == "True ()"

    loaded, from_state = json.loads(second)
    torch.testing.assert_close(torch.tensor(loaded), torch.tensor(expected))
    torch.testing.assert_close(torch.tensor(from_state), torch.tensor(expected))


SUBCLASS = """
from {module} import Widget as _Widget


class Widget(_Widget):
    def compute(self, x: int) -> int:
        return x + 1000
"""


def test_a_changed_class_body_is_drift(patchset: PatchSet) -> None:
    patchset.write_backport("fix.py", SUBCLASS.format(module=patchset.module))
    entry = patchset.add("fix", "Widget")
    fingerprint = backport_tool.check(patchset.write()).by_id("fix").targets[0].actual_fingerprint
    assert fingerprint is not None
    entry["targets"][0]["fingerprint"] = fingerprint
    ready = backport_tool.check(patchset.write()).by_id("fix")
    assert ready.status is Status.READY, (ready.reason, [t.stale_references for t in ready.targets])

    source = patchset.site / f"{patchset.module}.py"
    original = source.read_text()
    # A docstring documents; only the code counts.
    documented = original.replace("class Widget(Base):\n", 'class Widget(Base):\n    """Doc."""\n')
    for run, (text, status) in enumerate(
        (
            (documented, Status.READY),
            (original.replace("return x + 2\n", "return x + 22\n"), Status.DRIFT),
        )
    ):
        source.write_text(text)
        sys.modules.pop(patchset.module, None)
        # A backport module runs once per process: a new one subclasses the new class.
        patchset.write_backport(f"fix{run}.py", SUBCLASS.format(module=patchset.module))
        entry["module"] = f"backports/fix{run}.py"
        result = backport_tool.check(patchset.write()).by_id("fix")
        assert result.status is status, (
            result.reason,
            [t.stale_references for t in result.targets],
        )


@pytest.mark.parametrize("subclass", [True, False])
def test_a_protocol_class_target_is_judged_by_its_mro(patchset: PatchSet, subclass: bool) -> None:
    # issubclass() against a Protocol that is not runtime_checkable raises
    # TypeError: check ended in an internal error.
    source = patchset.site / f"{patchset.module}.py"
    source.write_text(
        "from typing import Protocol\n\n\nclass Shape(Protocol):\n"
        "    def area(self) -> int:\n        ...\n"
    )
    base = "_Shape, " if subclass else ""
    patchset.write_backport(
        "fix.py",
        f"from {patchset.module} import Shape as _Shape\n\n\n"
        f"class Shape({base}object):\n    def area(self) -> int:\n        return 1\n",
    )
    patchset.add("fix", "Shape")
    manifest = patchset.write()
    result = backport_tool.check(manifest).by_id("fix")
    if subclass:
        assert result.status is Status.READY, result.reason
        assert apply(manifest).by_id("fix").status is Status.APPLIED
        assert backport_tool.revert() == ("fix",)
    else:
        assert result.status is Status.FAILED
        assert "is not a subclass of the original" in result.reason
