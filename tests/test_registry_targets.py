"""Registry targets: entries added to, and removed from, a set, dict or list
in place, restored exactly on revert; entries of modules imported later
(lazy apply); check's view of each entry; conflicts; validation; and the real
torch 2.11 registry FX's dead-code elimination reads."""

from __future__ import annotations

import importlib
import logging
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from helpers import PatchSet, write_patch_set

import backport_tool
from backport_tool import Status
from backport_tool.errors import ManifestError, ScopeError
from backport_tool.manifest import load_manifest

REGISTRY_SOURCE = """
def keep():
    return "keep"


def drop():
    return "drop"


def last():
    return "last"


SIDE = {keep, drop}
TABLE = {keep: "keep-impl", drop: "drop-impl"}
ORDER = [keep, drop, last]
FROZEN = frozenset({keep})
"""

OPS_SOURCE = """
def gather():
    return "gather"


def scatter():
    return "scatter"


def lower_gather():
    return "lowered"
"""

BACKPORT_SOURCE = """
def local_op():
    return "local"


NEW_IMPL = "new-impl"
"""


class Reg:
    """A patch set whose package has a registry module and an ops module."""

    def __init__(self, patchset: PatchSet) -> None:
        self.ps = patchset
        self.reg = f"{patchset.module}_reg"
        self.ops = f"{patchset.module}_ops"
        (patchset.site / f"{self.reg}.py").write_text(REGISTRY_SOURCE)
        (patchset.site / f"{self.ops}.py").write_text(OPS_SOURCE)
        patchset.write_backport("fix.py", BACKPORT_SOURCE)

    def op(self, name: str) -> str:
        return f"{self.ops}:{name}"

    def at(self, name: str) -> str:
        return f"{self.reg}:{name}"

    def add(self, backport_id: str, *targets: dict[str, Any]) -> Path:
        self.ps.backports.append(
            {
                "id": backport_id,
                "summary": f"test {backport_id}",
                "applies_to": ">=1.0,<2.0",
                "module": "backports/fix.py",
                "targets": list(targets),
            }
        )
        return self.ps.write()

    def module(self) -> ModuleType:
        return importlib.import_module(self.reg)

    def ops_module(self) -> ModuleType:
        return importlib.import_module(self.ops)

    def close(self) -> None:
        for name in (self.reg, self.ops):
            sys.modules.pop(name, None)


@pytest.fixture
def reg(patchset: PatchSet) -> Any:
    made = Reg(patchset)
    yield made
    backport_tool.revert()
    made.close()


def names(container: Any) -> list[str]:
    return [f() for f in container]


def test_a_set_gets_its_entries_in_place_and_revert_restores_it_exactly(reg: Reg) -> None:
    manifest = reg.add(
        "side",
        {
            "symbol": reg.at("SIDE"),
            "add": [reg.op("gather"), "local_op"],
            "remove": [reg.at("drop")],
        },
    )
    module = reg.module()
    side = module.SIDE
    before = set(side)

    report = backport_tool.apply(manifest, eager=True)

    result = report.by_id("side")
    assert result.status is Status.APPLIED, result.reason
    assert result.reason == f"edited the entries of {reg.at('SIDE')} (2 added, 1 removed)"
    assert module.SIDE is side  # never replaced: every holder sees the entries
    assert sorted(names(side)) == ["gather", "keep", "local"]
    assert reg.ops_module().gather in side  # eager apply imported the ops module
    assert backport_tool.revert() == ("side",)
    assert module.SIDE is side
    assert side == before


def test_an_entry_present_before_apply_stays_after_revert(reg: Reg) -> None:
    manifest = reg.add("side", {"symbol": reg.at("SIDE"), "add": [reg.at("keep")]})
    module = reg.module()

    check = backport_tool.check(manifest).by_id("side")
    assert check.status is Status.READY, check.reason
    assert [e.to_dict() for e in check.targets[0].entries] == [
        {"entry": reg.at("keep"), "action": "add", "state": "present"}
    ]
    assert "1 present already (left as they are, and kept on revert)" in check.reason
    assert backport_tool.apply(manifest, eager=True).by_id("side").status is Status.APPLIED
    backport_tool.revert()
    assert module.keep in module.SIDE


def test_changes_others_made_meanwhile_are_left_with_a_warning(
    reg: Reg, caplog: pytest.LogCaptureFixture
) -> None:
    manifest = reg.add(
        "side",
        {"symbol": reg.at("SIDE"), "add": [reg.op("gather")], "remove": [reg.at("drop")]},
    )
    module = reg.module()
    backport_tool.apply(manifest, eager=True)
    gather = reg.ops_module().gather
    # Someone else removes our entry and adds their own.
    module.SIDE.discard(gather)
    module.SIDE.add(module.last)

    with caplog.at_level(logging.WARNING, logger="backport_tool"):
        backport_tool.revert()

    assert {module.keep, module.drop, module.last} == module.SIDE
    assert [r.getMessage() for r in caplog.records] == [
        f"backport-tool: {reg.at('SIDE')}: entry {reg.op('gather')} was removed by something "
        f"else after backport 'side' edited {reg.at('SIDE')}; left as it is"
    ]


def test_a_dict_gets_keys_replaced_and_removed_and_revert_restores_every_value(
    reg: Reg,
) -> None:
    manifest = reg.add(
        "table",
        {
            "symbol": reg.at("TABLE"),
            "add": {reg.op("gather"): reg.op("lower_gather"), reg.at("keep"): "NEW_IMPL"},
            "remove": [reg.at("drop")],
        },
    )
    module = reg.module()
    table = module.TABLE
    before = dict(table)

    check = backport_tool.check(manifest).by_id("table")
    assert check.status is Status.READY, check.reason
    assert check.targets[0].container == "dict"
    assert [(e.entry, e.action, e.state.value) for e in check.targets[0].entries] == [
        (f"{reg.op('gather')} -> {reg.op('lower_gather')}", "add", "will-add"),
        (f"{reg.at('keep')} -> NEW_IMPL", "add", "will-replace"),
        (reg.at("drop"), "remove", "will-remove"),
    ]
    result = backport_tool.apply(manifest, eager=True).by_id("table")
    assert result.status is Status.APPLIED, result.reason
    ops = reg.ops_module()
    assert table == {module.keep: "new-impl", ops.gather: ops.lower_gather}
    backport_tool.revert()
    assert module.TABLE is table
    assert table == before


def test_a_list_gets_its_removed_element_back_at_its_position(reg: Reg) -> None:
    manifest = reg.add(
        "order",
        {"symbol": reg.at("ORDER"), "add": ["local_op"], "remove": [reg.at("drop")]},
    )
    module = reg.module()
    order = module.ORDER
    before = list(order)

    backport_tool.apply(manifest, eager=True)
    assert names(order) == ["keep", "last", "local"]
    backport_tool.revert()
    assert order == before


def test_check_after_apply_reports_what_apply_did(reg: Reg) -> None:
    manifest = reg.add(
        "side",
        {"symbol": reg.at("SIDE"), "add": [reg.op("gather")], "remove": [reg.at("drop")]},
    )
    backport_tool.apply(manifest, eager=True)
    result = backport_tool.check(manifest).by_id("side")
    assert result.status is Status.APPLIED, result.reason
    assert [(e.action, e.state.value) for e in result.targets[0].entries] == [
        ("add", "added"),
        ("remove", "removed"),
    ]


def test_lazy_apply_adds_an_entry_when_its_module_is_imported(reg: Reg) -> None:
    manifest = reg.add(
        "side",
        {"symbol": reg.at("SIDE"), "add": [reg.op("gather"), "local_op"]},
    )
    report = backport_tool.apply(manifest)
    assert report.by_id("side").status is Status.PENDING

    module = reg.module()  # the registry's module: the backport applies

    current = backport_tool.current_report()
    assert current is not None
    result = current.by_id("side")
    assert result.status is Status.APPLIED, result.reason
    assert result.reason == (
        f"edited the entries of {reg.at('SIDE')} (1 added, 1 waiting for their module); "
        f"registry entries added when {reg.ops} is imported"
    )
    assert reg.ops not in sys.modules  # the hook imported nothing
    assert sorted(names(module.SIDE)) == ["drop", "keep", "local"]
    states = [(e.entry, e.state.value) for e in result.targets[0].entries]
    assert states == [(reg.op("gather"), "awaited"), ("local_op", "added")]

    ops = reg.ops_module()  # the user's own import, later

    assert ops.gather in module.SIDE
    current = backport_tool.current_report()
    assert current is not None
    assert current.by_id("side").reason == f"edited the entries of {reg.at('SIDE')} (2 added)"
    # The report's entries too: awaited was left in them after the add.
    states = [(e.entry, e.state.value) for e in current.by_id("side").targets[0].entries]
    assert states == [(reg.op("gather"), "added"), ("local_op", "added")]
    backport_tool.revert()
    assert {module.keep, module.drop} == module.SIDE


def test_an_entry_to_remove_that_is_gone_is_drift(reg: Reg) -> None:
    manifest = reg.add("side", {"symbol": reg.at("SIDE"), "remove": [reg.at("last")]})
    result = backport_tool.check(manifest).by_id("side")
    assert result.status is Status.DRIFT
    assert result.reason == (
        f"entry {reg.at('last')} to remove from {reg.at('SIDE')} is not there; the registry "
        "has changed: check whether the backport is still needed"
    )
    module = reg.module()
    assert backport_tool.apply(manifest, eager=True).by_id("side").status is Status.DRIFT
    assert {module.keep, module.drop} == module.SIDE


@pytest.mark.parametrize(
    ("container", "entry", "status", "reason"),
    [
        # An entry that names nothing.
        ("SIDE", "nope", Status.MISSING, "entry {op} of {at}: {ops} has no attribute 'nope'"),
        # A container that is not a set, dict or list.
        (
            "FROZEN",
            "gather",
            Status.FAILED,
            "target {at} is a frozenset, and add: and remove: edit a set, dict or list in "
            "place; replace it with replacement: instead",
        ),
        # add: must have the shape of the container.
        (
            "TABLE",
            "gather",
            Status.FAILED,
            "target {at} is a dict, and add: lists entries; write add: as a mapping of key -> "
            "value",
        ),
    ],
)
def test_a_registry_target_check_refuses(
    reg: Reg, container: str, entry: str, status: Status, reason: str
) -> None:
    manifest = reg.add("reg", {"symbol": reg.at(container), "add": [reg.op(entry)]})
    result = backport_tool.check(manifest).by_id("reg")
    assert result.status is status
    assert result.reason == reason.format(op=reg.op(entry), at=reg.at(container), ops=reg.ops)


def test_two_backports_of_one_entry_are_a_conflict(reg: Reg) -> None:
    reg.add("one", {"symbol": reg.at("SIDE"), "add": [reg.op("gather")]})
    manifest = reg.add(
        "two", {"symbol": reg.at("SIDE"), "add": [reg.op("scatter"), reg.op("gather")]}
    )
    module = reg.module()
    for report in (backport_tool.check(manifest), backport_tool.apply(manifest, eager=True)):
        assert report.by_id("one").status is Status.FAILED
        assert report.by_id("two").reason == (
            f"conflict: backports one and two both change entry {reg.op('gather')} of "
            f"{reg.at('SIDE')}; a binding belongs to one backport only: merge them, or disable one"
        )
    assert {module.keep, module.drop} == module.SIDE


def test_one_object_under_two_names_in_two_backports_is_a_conflict(reg: Reg) -> None:
    # The decision compares entries as written; the engine compares objects.
    (reg.ps.site / f"{reg.ops}_again.py").write_text(f"from {reg.ops} import gather\n")
    reg.add("one", {"symbol": reg.at("SIDE"), "add": [reg.op("gather")]})
    manifest = reg.add("two", {"symbol": reg.at("SIDE"), "add": [f"{reg.ops}_again:gather"]})
    module = reg.module()
    try:
        for report in (backport_tool.check(manifest), backport_tool.apply(manifest, eager=True)):
            assert report.by_id("one").status is Status.FAILED
            assert report.by_id("two").reason == (
                f"conflict: entry {reg.ops}_again:gather of {reg.at('SIDE')} is added or "
                "removed by backport 'one' too; an entry belongs to one backport only: merge "
                "them, or disable one"
            )
        assert {module.keep, module.drop} == module.SIDE
    finally:
        sys.modules.pop(f"{reg.ops}_again", None)


def test_two_backports_of_other_entries_share_the_container(reg: Reg) -> None:
    reg.add("one", {"symbol": reg.at("SIDE"), "add": [reg.op("gather")]})
    manifest = reg.add("two", {"symbol": reg.at("SIDE"), "add": [reg.op("scatter")]})
    module = reg.module()
    report = backport_tool.apply(manifest, eager=True)
    assert [r.status for r in report.results] == [Status.APPLIED, Status.APPLIED]
    backport_tool.revert("one")
    assert reg.ops_module().scatter in module.SIDE
    backport_tool.revert()
    assert {module.keep, module.drop} == module.SIDE


def test_an_enabled_scope_adds_the_entries_for_its_block(reg: Reg) -> None:
    manifest = reg.add("side", {"symbol": reg.at("SIDE"), "add": ["local_op"]})
    module = reg.module()
    for _ in range(2):
        with backport_tool.enabled("side", manifest=manifest) as result:
            assert result.status is Status.APPLIED
            assert sorted(names(module.SIDE)) == ["drop", "keep", "local"]
        assert {module.keep, module.drop} == module.SIDE


def test_a_scope_of_a_drifted_registry_raises(reg: Reg) -> None:
    manifest = reg.add("side", {"symbol": reg.at("SIDE"), "remove": [reg.at("last")]})
    with pytest.raises(ScopeError), backport_tool.enabled("side", manifest=manifest):
        pass


def _manifest_error(tmp_path: Path, target: dict[str, Any]) -> list[str]:
    body = {
        "id": "reg",
        "summary": "s",
        "applies_to": ">=1.0",
        "module": "backports/fix.py",
        "targets": [target],
    }
    path = write_patch_set(tmp_path, [body], {"fix.py": ""})
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    return [p.split(": ", 1)[1] for p in caught.value.problems]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            {"add": ["m:f"], "replacement": "f"},
            "backports[0].targets[0].replacement: replacement: does not go with add: or "
            "remove: (a registry target edits the set, dict or list at symbol in place); "
            "remove it",
        ),
        (
            {"add": ["m:f"], "copies": ["m:g"]},
            "backports[0].targets[0].copies: copies: does not go with add: or remove: (a "
            "registry target edits the set, dict or list at symbol in place); remove it",
        ),
        (
            {"add": ["m:f", "m:f"]},
            "backports[0].targets[0].add[1]: 'm:f' is listed already at "
            "backports[0].targets[0].add[0]; keep one",
        ),
        (
            {"add": ["m:f"], "remove": ["m:f"]},
            "backports[0].targets[0].remove[0]: 'm:f' is added by this target too (add: entry "
            "0); keep it in one of add: or remove:",
        ),
        (
            {"add": []},
            "backports[0].targets[0].add: expected a non-empty list, got a list",
        ),
        (
            {"remove": ["not an entry"]},
            "backports[0].targets[0].remove[0]: expected an entry 'dotted.module:Dotted.qualname' "
            "(an object of that module) or the name of an attribute of the backport module, "
            "got 'not an entry'",
        ),
        (
            {"add": 3},
            "backports[0].targets[0].add: expected a list of entries (a set or list registry) "
            "or a mapping of key -> value (a dict registry), got an integer 3",
        ),
    ],
)
def test_validation_names_the_line_and_key(
    tmp_path: Path, extra: dict[str, Any], expected: str
) -> None:
    problems = _manifest_error(
        tmp_path, {"symbol": "torch.fx.node:_side_effectful_functions"} | extra
    )
    assert problems == [expected]


def test_a_registry_target_is_parsed_into_entries(tmp_path: Path) -> None:
    (tmp_path / "backports").mkdir()
    (tmp_path / "backports" / "fix.py").write_text("")
    path = tmp_path / "manifest.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            version: 1
            package: torch
            backports:
              - id: reg
                summary: s
                applies_to: ">=1.0"
                module: backports/fix.py
                targets:
                  - symbol: "torch._inductor.lowering:lowerings"
                    add: {"mypkg.ops:my_op": "lower_my_op"}
                    remove: ["torch._ops:ops.aten.add.Tensor"]
            """
        )
    )
    target = load_manifest(path).backports[0].targets[0]
    assert target.edits_registry
    assert target.adds_mapping
    assert [str(e) for e in target.add] == ["mypkg.ops:my_op -> lower_my_op"]
    assert [str(r) for r in target.remove] == ["torch._ops:ops.aten.add.Tensor"]
    assert target.replacement == ""


TORCH_OPS_SOURCE = """
import torch


@torch.library.custom_op("backport_tool_test::log_it", mutates_args=())
def log_it(x: torch.Tensor) -> torch.Tensor:
    return x.clone()


log_it_default = torch.ops.backport_tool_test.log_it.default
"""

SIDE_EFFECTFUL = "torch.fx.node:_side_effectful_functions"
RECORD_EXIT = "torch._ops:ops.profiler._record_function_exit"


@pytest.fixture(scope="module")
def torch_ops(tmp_path_factory: pytest.TempPathFactory) -> Any:
    # One module for the whole file: a custom op is defined once per process.
    pytest.importorskip("torch")
    site = tmp_path_factory.mktemp("torch-ops")
    (site / "backport_tool_test_ops.py").write_text(TORCH_OPS_SOURCE)
    sys.path.insert(0, str(site))
    try:
        yield importlib.import_module("backport_tool_test_ops")
    finally:
        sys.path.remove(str(site))


def _survives_dce(op: Any) -> bool:
    import torch

    graph = torch.fx.Graph()
    x = graph.placeholder("x")
    graph.call_function(op, (x,))  # its result is unused: dead unless side-effectful
    graph.output(x)
    module = torch.fx.GraphModule(torch.nn.Module(), graph)
    module.graph.eliminate_dead_code()
    return any(node.target is op for node in module.graph.nodes)


@pytest.mark.torch211
def test_fx_dead_code_elimination_keeps_an_op_added_to_torchs_side_effect_set(
    tmp_path: Path, torch_ops: Any
) -> None:
    from torch.fx import node as fx_node

    backport = {
        "id": "keep-log-it",
        "summary": "FX DCE keeps backport_tool_test::log_it",
        "applies_to": ">=2.11.0,<2.12",
        "module": "backports/fix.py",
        "targets": [
            {
                "symbol": SIDE_EFFECTFUL,
                "add": ["backport_tool_test_ops:log_it_default"],
                "remove": [RECORD_EXIT],
            }
        ],
    }
    path = write_patch_set(tmp_path, [backport], {"fix.py": ""})
    side = fx_node._side_effectful_functions
    before = set(side)
    op = torch_ops.log_it_default
    record_exit = sys.modules["torch._ops"].ops.profiler._record_function_exit
    # The control: without the backport the unused call is eliminated.
    assert not _survives_dce(op)
    assert record_exit in side

    check = backport_tool.check(path).by_id("keep-log-it")
    assert check.status is Status.READY, check.reason
    assert [(e.action, e.state.value) for e in check.targets[0].entries] == [
        ("add", "will-add"),
        ("remove", "will-remove"),
    ]
    result = backport_tool.apply(path, eager=True).by_id("keep-log-it")
    try:
        assert result.status is Status.APPLIED, result.reason
        assert fx_node._side_effectful_functions is side
        assert _survives_dce(op)
        assert record_exit not in side
    finally:
        backport_tool.revert()
    assert fx_node._side_effectful_functions is side
    assert side == before
    assert not _survives_dce(op)


def test_a_static_read_compares_the_container_and_says_the_entries_are_not_read(
    reg: Reg,
) -> None:
    manifest = reg.add(
        "side",
        {"symbol": reg.at("SIDE"), "add": [reg.op("gather")], "fingerprint": "sha256:" + "0" * 16},
    )
    result = backport_tool.check(manifest, source=str(reg.ps.site)).by_id("side")
    assert result.status is Status.DRIFT
    target = result.targets[0]
    assert target.presence.value == "found"
    assert target.actual_fingerprint is not None
    assert target.entries == ()
    assert target.note == (
        f"the entries of {reg.at('SIDE')} are not read from source: its presence and "
        "fingerprint are compared"
    )
    assert reg.reg not in sys.modules


def test_a_static_read_does_not_ask_for_copies_of_a_registry(reg: Reg) -> None:
    # Every binding of a container sees an edit made in place, so lock
    # declares none: check --source asked for them, and stayed partial.
    source = reg.ps.site / f"{reg.reg}.py"
    source.write_text(source.read_text() + "\nSIDE_TOO = SIDE\n")
    manifest = reg.add("side", {"symbol": reg.at("SIDE"), "add": [reg.op("gather")]})
    done = reg.ps.cli("lock", "--manifest", str(manifest))
    assert done.returncode == 0, done.stderr
    result = backport_tool.check(manifest, source=str(reg.ps.site)).by_id("side")
    assert result.status is Status.READY, result.reason


def test_an_awaited_entry_that_names_nothing_makes_the_backport_partial(reg: Reg) -> None:
    manifest = reg.add("side", {"symbol": reg.at("SIDE"), "add": [reg.op("nope")]})
    backport_tool.apply(manifest)
    module = reg.module()
    reg.ops_module()
    current = backport_tool.current_report()
    assert current is not None
    result = current.by_id("side")
    assert result.status is Status.PARTIAL
    assert result.reason == (
        f"entry {reg.op('nope')} of {reg.at('SIDE')}: LookupError: {reg.ops} has no attribute "
        "'nope': the registry does not have it as the backport says. Run `backport-tool check` "
        "once that module is imported to see why"
    )
    assert {module.keep, module.drop} == module.SIDE


def test_lock_records_the_containers_fingerprint_and_no_copies(reg: Reg) -> None:
    manifest = reg.add("side", {"symbol": reg.at("SIDE"), "add": [reg.op("gather")]})
    done = reg.ps.cli("lock", "--manifest", str(manifest))
    assert done.returncode == 0, done.stderr
    target = load_manifest(manifest).backports[0].targets[0]
    assert target.fingerprints
    assert target.copies == ()
    assert target.edits_registry


def test_status_shows_the_registry_and_each_entry(reg: Reg) -> None:
    manifest = reg.add(
        "side",
        {"symbol": reg.at("SIDE"), "add": [reg.op("gather")], "remove": [reg.at("drop")]},
    )
    done = reg.ps.cli("status", "--manifest", str(manifest))
    assert done.returncode == 0, done.stderr
    assert (
        f"  target:     {reg.at('SIDE')}\n"
        f"    defined on:         {reg.reg}\n"
        "    registry:           a set\n"
        f"    add:                {reg.op('gather')} (will-add)\n"
        f"    remove:             {reg.at('drop')} (will-remove)\n"
    ) in done.stdout
