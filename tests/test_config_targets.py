"""Options of torch's config modules as targets, on the real torch (2.11 keeps
a user override in the entry, 2.13 in a ContextVar): set
through the config module and restored exactly (the user-override state
included), found by check, readable through original(), and an alias and its
target are one setting."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import run_backport_tool

torch = pytest.importorskip("torch")

import importlib  # noqa: E402

import backport_tool  # noqa: E402
from backport_tool import Status, configs  # noqa: E402
from backport_tool.errors import ManifestError  # noqa: E402
from backport_tool.manifest import load_manifest  # noqa: E402

# Any: torch types its config modules without the ConfigModule internals read here.
dynamo_config: Any = importlib.import_module("torch._dynamo.config")
inductor_config: Any = importlib.import_module("torch._inductor.config")

apply = functools.partial(backport_tool.apply, eager=True)

THREADS = "torch._inductor.config:compile_threads"
LIMIT = "torch._dynamo.config:recompile_limit"
LIMIT_ALIAS = "torch._dynamo.config:cache_size_limit"


def write(tmp_path: Path, *backports: dict[str, Any], module: str = "") -> Path:
    (tmp_path / "backports").mkdir(exist_ok=True)
    (tmp_path / "backports" / "fix.py").write_text(textwrap.dedent(module))
    path = tmp_path / "manifest.yaml"
    data = {"version": 1, "package": "torch", "backports": list(backports)}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def entry(backport_id: str, *targets: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": backport_id,
        "summary": f"test {backport_id}",
        "applies_to": ">=2.11.0",
        "module": "backports/fix.py",
        "targets": list(targets),
    }


def override(config: Any, key: str) -> object:
    return configs.override(configs.ConfigSite(config, key, config._config[key]))


def unset(config: Any, key: str) -> bool:
    return override(config, key) is _sentinel()


def _sentinel() -> object:
    from torch.utils._config_module import _UNSET_SENTINEL

    return _UNSET_SENTINEL


OPTIONS = (
    (inductor_config, "compile_threads"),
    (inductor_config, "custom_should_partition_ops"),
    (dynamo_config, "recompile_limit"),
)


@pytest.fixture(autouse=True)
def _pristine() -> Iterator[None]:
    # Every test starts and ends with the options as torch installs them.
    # Set, not asserted, at the start: torch itself stores a list option's
    # default as the user's value when a compile reads it, so any earlier
    # test's torch.compile leaves custom_should_partition_ops set. What apply
    # and revert leave behind, each test asserts itself.
    _reset()
    yield
    _reset()


def _reset() -> None:
    backport_tool.revert()
    for config, key in OPTIONS:
        setattr(config, key, _sentinel())


def test_without_the_backport_the_option_has_its_default(tmp_path: Path) -> None:
    # The control: what the other tests change is not already so.
    write(tmp_path, entry("threads", {"symbol": THREADS, "value": 3}))
    assert inductor_config.compile_threads != 3
    assert dynamo_config.recompile_limit == 8
    assert inductor_config._is_default("compile_threads")


def test_apply_sets_the_option_and_revert_restores_unset(tmp_path: Path) -> None:
    manifest = write(tmp_path, entry("threads", {"symbol": THREADS, "value": 3}))
    before = inductor_config.compile_threads

    report = apply(manifest)

    assert report.by_id("threads").status is Status.APPLIED
    assert inductor_config.compile_threads == 3
    assert override(inductor_config, "compile_threads") == 3
    assert backport_tool.original(THREADS) == before
    assert backport_tool.revert() == ("threads",)
    assert inductor_config.compile_threads == before
    assert unset(inductor_config, "compile_threads")
    assert inductor_config._is_default("compile_threads")


def test_a_list_option_comes_back_unset_after_check_apply_and_revert(tmp_path: Path) -> None:
    # torch stores a copy of a list default as the user's value when it is
    # read; neither verifying nor applying may leave that behind.
    key = "custom_should_partition_ops"
    symbol = f"torch._inductor.config:{key}"
    manifest = write(tmp_path, entry("ops", {"symbol": symbol, "value": ["aten::foo"]}))
    assert unset(inductor_config, key)
    assert backport_tool.check(manifest).by_id("ops").status is Status.READY
    assert unset(inductor_config, key)
    assert apply(manifest).by_id("ops").status is Status.APPLIED
    assert inductor_config.custom_should_partition_ops == ["aten::foo"]
    assert backport_tool.original(symbol) == []
    backport_tool.revert()
    assert unset(inductor_config, key)


def test_a_value_the_user_set_before_apply_comes_back(tmp_path: Path) -> None:
    manifest = write(tmp_path, entry("limit", {"symbol": LIMIT, "value": 64}))
    dynamo_config.recompile_limit = 5

    assert apply(manifest).by_id("limit").status is Status.APPLIED
    assert dynamo_config.recompile_limit == 64
    assert dynamo_config.cache_size_limit == 64
    assert backport_tool.original(LIMIT) == 5

    backport_tool.revert()
    assert dynamo_config.recompile_limit == 5
    assert override(dynamo_config, "recompile_limit") == 5


def test_an_alias_target_sets_and_restores_the_option_it_names(tmp_path: Path) -> None:
    manifest = write(tmp_path, entry("limit", {"symbol": LIMIT_ALIAS, "value": 32}))
    assert apply(manifest).by_id("limit").status is Status.APPLIED
    assert dynamo_config.recompile_limit == 32
    assert backport_tool.original(LIMIT_ALIAS) == 8
    backport_tool.revert()
    assert unset(dynamo_config, "recompile_limit")


def test_an_option_of_a_sub_config(tmp_path: Path) -> None:
    symbol = "torch._inductor.config:triton.cudagraphs"
    manifest = write(tmp_path, entry("graphs", {"symbol": symbol, "value": True}))
    assert unset(inductor_config, "triton.cudagraphs")
    assert apply(manifest).by_id("graphs").status is Status.APPLIED
    assert inductor_config.triton.cudagraphs is True
    assert backport_tool.original(symbol) is False
    backport_tool.revert()
    assert unset(inductor_config, "triton.cudagraphs")


def test_replacement_may_name_a_constant_of_the_backport_module(tmp_path: Path) -> None:
    manifest = write(
        tmp_path,
        entry("threads", {"symbol": THREADS, "replacement": "THREADS"}),
        module="THREADS = 2\n",
    )
    assert apply(manifest).by_id("threads").status is Status.APPLIED
    assert inductor_config.compile_threads == 2
    backport_tool.revert()
    assert unset(inductor_config, "compile_threads")


def test_check_finds_the_option_and_reports_its_value_and_default(tmp_path: Path) -> None:
    manifest = write(tmp_path, entry("limit", {"symbol": LIMIT, "value": 64}))

    result = backport_tool.check(manifest).by_id("limit")

    assert result.status is Status.READY, result.reason
    target = result.targets[0]
    assert target.presence.value == "found"
    assert (target.config_value, target.config_default) == ("8", "8")
    assert target.to_dict()["config_default"] == "8"
    assert unset(dynamo_config, "recompile_limit")

    apply(manifest)
    after = backport_tool.check(manifest).by_id("limit")
    assert after.status is Status.APPLIED, after.reason
    assert after.targets[0].config_value == "64"


def test_an_option_that_does_not_exist_is_missing(tmp_path: Path) -> None:
    symbol = "torch._inductor.config:no_such_option"
    manifest = write(tmp_path, entry("gone", {"symbol": symbol, "value": 1}))
    for report in (backport_tool.check(manifest), apply(manifest)):
        result = report.by_id("gone")
        assert result.status is Status.MISSING
        assert "no_such_option" in result.reason
        assert "torch._inductor.config" in result.reason


def test_an_option_whose_type_no_longer_takes_the_value_is_drift(tmp_path: Path) -> None:
    manifest = write(tmp_path, entry("limit", {"symbol": LIMIT, "value": "many"}))
    for report in (backport_tool.check(manifest), apply(manifest)):
        result = report.by_id("limit")
        assert result.status is Status.DRIFT
        assert "declared as int now" in result.reason
    assert unset(dynamo_config, "recompile_limit")


def test_an_option_the_environment_forces_is_failed(tmp_path: Path) -> None:
    manifest = write(tmp_path, entry("limit", {"symbol": LIMIT, "value": 64}))
    config_entry = dynamo_config._config["recompile_limit"]
    config_entry.env_value_force = 4  # as TORCH_... would at import
    try:
        result = apply(manifest).by_id("limit")
    finally:
        config_entry.env_value_force = _sentinel()
    assert result.status is Status.FAILED
    assert "an environment variable forces config option" in result.reason
    assert unset(dynamo_config, "recompile_limit")


def test_revert_leaves_an_option_someone_changed_after_apply(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manifest = write(tmp_path, entry("limit", {"symbol": LIMIT, "value": 64}))
    apply(manifest)
    dynamo_config.recompile_limit = 1000
    backport_tool.revert()
    assert dynamo_config.recompile_limit == 1000
    assert "was replaced by something else" in caplog.text


def test_an_option_a_config_patch_block_set_back_is_not_reported_in_force(
    tmp_path: Path,
) -> None:
    # config.patch() restores what it found when its block ends, undoing an
    # apply() made inside it: check and a second apply() must not say
    # "applied" while torch reads its default again.
    manifest = write(tmp_path, entry("limit", {"symbol": LIMIT_ALIAS, "value": 1024}))
    with dynamo_config.patch(recompile_limit=5):
        assert apply(manifest).by_id("limit").status is Status.APPLIED
        assert backport_tool.check(manifest).by_id("limit").status is Status.APPLIED
    assert dynamo_config.recompile_limit == 8
    for result in (backport_tool.check(manifest).by_id("limit"), apply(manifest).by_id("limit")):
        assert result.status is Status.FAILED
        assert result.reason.startswith(
            "applied in this process, but no longer in force at "
            "torch._dynamo.config:cache_size_limit: something replaced what apply put there"
        )
    # The same value set again by hand is the patch in force.
    dynamo_config.recompile_limit = 1024
    assert backport_tool.check(manifest).by_id("limit").status is Status.APPLIED


def test_status_shows_the_value_and_the_default(tmp_path: Path) -> None:
    manifest = write(tmp_path, entry("limit", {"symbol": LIMIT_ALIAS, "value": 64}))
    done = run_backport_tool("status", "--manifest", str(manifest))
    assert done.returncode == 0, done.stderr
    assert "    config value:       8\n    config default:     8\n" in done.stdout


def test_value_on_something_that_is_not_a_config_option_fails(tmp_path: Path) -> None:
    manifest = write(tmp_path, entry("odd", {"symbol": "torch.nn.functional:linear", "value": 1}))
    result = apply(manifest).by_id("odd")
    assert result.status is Status.FAILED
    assert "is not one" in result.reason
    assert "replacement:" in result.reason


def test_an_alias_and_its_target_in_one_backport_conflict(tmp_path: Path) -> None:
    manifest = write(
        tmp_path,
        entry("both", {"symbol": LIMIT, "value": 16}, {"symbol": LIMIT_ALIAS, "value": 32}),
    )
    for report in (backport_tool.check(manifest), apply(manifest)):
        result = report.by_id("both")
        assert result.status is Status.FAILED
        assert "are one config option (torch._dynamo.config:recompile_limit" in result.reason
    assert unset(dynamo_config, "recompile_limit")


def test_an_alias_and_its_target_in_two_backports_conflict(tmp_path: Path) -> None:
    manifest = write(
        tmp_path,
        entry("one", {"symbol": LIMIT, "value": 16}),
        entry("two", {"symbol": LIMIT_ALIAS, "value": 32}),
    )
    for report in (backport_tool.check(manifest), apply(manifest)):
        assert {r.id: r.status for r in report.results} == {
            "one": Status.FAILED,
            "two": Status.FAILED,
        }
        assert "which backport 'one' sets too" in report.by_id("two").reason
        assert "which backport 'two' sets too" in report.by_id("one").reason
    assert unset(dynamo_config, "recompile_limit")
    assert backport_tool.applied() == ()


def test_lazy_apply_of_an_alias_pair_keeps_the_option_to_one_backport(tmp_path: Path) -> None:
    # Lazily each backport applies when its modules are imported, on its
    # own: the first takes the option and the second is failed, as for a
    # function and its re-export.
    manifest = write(
        tmp_path,
        entry("one", {"symbol": LIMIT, "value": 16}),
        entry("two", {"symbol": LIMIT_ALIAS, "value": 32}),
    )
    report = backport_tool.apply(manifest)
    assert report.by_id("one").status is Status.APPLIED
    two = report.by_id("two")
    assert two.status is Status.FAILED
    assert two.reason == (
        f"conflict: {LIMIT_ALIAS} is the config option {LIMIT}, which backport 'one' sets "
        "already; a setting belongs to one backport only: merge them, or disable one"
    )
    assert dynamo_config.recompile_limit == 16
    backport_tool.revert()
    assert unset(dynamo_config, "recompile_limit")


def test_two_backports_of_one_name_conflict_as_before(tmp_path: Path) -> None:
    manifest = write(
        tmp_path,
        entry("one", {"symbol": LIMIT, "value": 16}),
        entry("two", {"symbol": LIMIT, "value": 32}),
    )
    report = apply(manifest)
    assert [r.status for r in report.results] == [Status.FAILED, Status.FAILED]


def test_a_scope_sets_the_option_and_restores_it(tmp_path: Path) -> None:
    manifest = write(tmp_path, entry("threads", {"symbol": THREADS, "value": 3}))
    dynamo_config.recompile_limit = 5  # untouched by the scope
    with backport_tool.enabled("threads", manifest=manifest):
        assert inductor_config.compile_threads == 3
    assert unset(inductor_config, "compile_threads")
    with backport_tool.enabled("threads", manifest=manifest):
        assert inductor_config.compile_threads == 3
    assert unset(inductor_config, "compile_threads")
    assert dynamo_config.recompile_limit == 5


def test_a_scope_after_the_user_changed_the_option_restores_the_new_value(
    tmp_path: Path,
) -> None:
    manifest = write(tmp_path, entry("threads", {"symbol": THREADS, "value": 3}))
    with backport_tool.enabled("threads", manifest=manifest):
        assert inductor_config.compile_threads == 3
    inductor_config.compile_threads = 5
    with backport_tool.enabled("threads", manifest=manifest):
        assert inductor_config.compile_threads == 3
        assert backport_tool.original(THREADS) == 5
    assert override(inductor_config, "compile_threads") == 5


def test_a_static_read_finds_the_options_in_the_config_modules_source(tmp_path: Path) -> None:
    manifest = write(
        tmp_path,
        entry("threads", {"symbol": THREADS, "value": 3}),
        entry("limit", {"symbol": LIMIT_ALIAS, "value": 32}),
    )
    site = Path(torch.__file__).resolve().parent.parent
    report = backport_tool.check(manifest, source=str(site))
    for result in report.results:
        assert result.status is Status.READY, result.reason
        assert result.targets[0].presence.value == "found"


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (
            {"symbol": THREADS, "value": 3, "replacement": "X"},
            "targets[0].value: give replacement: or value:, not both",
        ),
        (
            {"symbol": THREADS, "value": 3, "signature": "()"},
            "targets[0].signature: signature: does not go with value:",
        ),
        (
            {"symbol": THREADS},
            "targets[0]: missing required key 'replacement' (or 'value', to set a config option, "
            "or 'add' or 'remove', to edit a registry's entries)",
        ),
    ],
)
def test_the_manifest_form_is_validated(
    tmp_path: Path, target: dict[str, Any], message: str
) -> None:
    manifest = write(tmp_path, entry("threads", target))
    with pytest.raises(ManifestError) as caught:
        load_manifest(manifest)
    assert any("manifest.yaml:" in p and message in p for p in caught.value.problems), (
        caught.value.problems
    )


def test_lazy_apply_sets_options_imported_before_and_after_it(tmp_path: Path) -> None:
    # The Dynamo and Inductor configs import each other; torch's comms config
    # is imported by neither, so it is imported after apply().
    comms = "torch._inductor.config_comms:reorder_iterative_use_runtime_estimations"
    manifest = write(
        tmp_path,
        entry("limit", {"symbol": LIMIT_ALIAS, "value": 64}),
        entry("threads", {"symbol": THREADS, "value": 3}),
        entry("comms", {"symbol": comms, "value": True}),
    )
    program = tmp_path / "prog.py"
    program.write_text(
        textwrap.dedent(
            """
            import json, sys
            import torch._dynamo.config as d
            import backport_tool
            backport_tool.apply()  # lazy
            later = "torch._inductor.config_comms" not in sys.modules
            import torch._inductor.config as i
            import torch._inductor.config_comms as c
            name = "reorder_iterative_use_runtime_estimations"
            statuses = {r.id: r.status.value for r in backport_tool.current_report().results}
            values = [d.recompile_limit, i.compile_threads, getattr(c, name)]
            backport_tool.revert()
            after = [d.recompile_limit, i._is_default("compile_threads"), c._is_default(name)]
            print(json.dumps({"later": later, "statuses": statuses, "values": values,
                              "after": after}))
            """
        )
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TORCHINDUCTOR_")}
    environ["BACKPORT_TOOL_MANIFEST"] = str(manifest)
    done = subprocess.run(
        [sys.executable, str(program)],
        capture_output=True,
        text=True,
        env=environ,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out == {
        "later": True,
        "statuses": {"limit": "applied", "threads": "applied", "comms": "applied"},
        "values": [64, 3, True],
        "after": [8, True, True],
    }
