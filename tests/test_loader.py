from __future__ import annotations

import functools
import logging
import sys

import pytest
from helpers import PatchSet

import backport_tool
from backport_tool import Status, applied, check, revert

# These tests are about verifying and patching, so they apply eagerly;
# test_lazy.py covers the deferred default.
apply = functools.partial(backport_tool.apply, eager=True)


def statuses(report: backport_tool.Report) -> dict[str, str]:
    return {r.id: r.status.value for r in report.results}


def test_apply_replaces_and_revert_restores_the_exact_original(patchset: PatchSet) -> None:
    patchset.add("fix", "Widget.compute", signature="(self, x: int) -> int")
    manifest = patchset.write()
    mod = patchset.target()
    original = mod.Widget.__dict__["compute"]

    report = apply(manifest)

    assert statuses(report) == {"fix": "applied"}
    assert report.by_id("fix").reason == f"replaced {patchset.sym('Widget.compute')}"
    assert report.version == "1.5.0"
    assert report.exit_code == 0
    assert mod.Widget().compute(1) == 1001
    assert [a.id for a in applied()] == ["fix"]

    assert revert() == ("fix",)
    assert mod.Widget.__dict__["compute"] is original
    assert mod.Widget().compute(1) == 2
    assert applied() == ()


def test_applying_twice_is_a_no_op(patchset: PatchSet) -> None:
    patchset.add("fix", "Widget.compute")
    manifest = patchset.write()
    apply(manifest)
    patched = patchset.target().Widget.__dict__["compute"]
    report = apply(manifest)
    assert report.by_id("fix").reason == "already applied in this process"
    assert patchset.target().Widget.__dict__["compute"] is patched
    revert()
    assert patchset.target().Widget().compute(1) == 2


def test_apply_after_revert_installs_the_same_replacement(patchset: PatchSet) -> None:
    patchset.add("fix", "Widget.compute")
    manifest = patchset.write()
    apply(manifest)
    first = patchset.target().Widget.__dict__["compute"]
    revert()
    assert statuses(apply(manifest)) == {"fix": "applied"}
    assert patchset.target().Widget.__dict__["compute"] is first


def test_inherited_attribute_is_patched_on_the_subclass_and_removed_on_revert(
    patchset: PatchSet,
) -> None:
    patchset.add("fix", "Widget.inherited")
    mod = patchset.target()
    report = apply(patchset.write())
    assert report.by_id("fix").targets[0].defined_on == f"{patchset.module}:Base"
    assert mod.Widget().inherited(1) == 3001
    assert mod.Base().inherited(1) == 101
    revert()
    assert "inherited" not in mod.Widget.__dict__
    assert mod.Widget().inherited(1) == 101


def test_staticmethod_and_module_function_targets(patchset: PatchSet) -> None:
    patchset.add("fix", "Widget.helper", "free_function")
    mod = patchset.target()
    original = mod.Widget.__dict__["helper"]
    apply(patchset.write())
    assert mod.Widget.helper(2) == 40
    assert mod.Widget().helper(2) == 40
    assert mod.free_function(3) == 6
    revert()
    assert mod.Widget.__dict__["helper"] is original
    assert mod.free_function(3) == 5


def test_check_verifies_without_changing_anything(patchset: PatchSet) -> None:
    patchset.add("fix", "Widget.compute", signature="(self, x: int) -> int")
    mod = patchset.target()
    original = mod.Widget.__dict__["compute"]
    report = check(patchset.write())
    assert statuses(report) == {"fix": "ready"}
    assert report.by_id("fix").reason == "would apply: targets found, signatures match"
    assert mod.Widget.__dict__["compute"] is original
    assert applied() == ()


def test_signature_drift(patchset: PatchSet) -> None:
    patchset.add("fix", "Widget.compute", signature="(self, x: int, *, y: bool = True) -> int")
    result = check(patchset.write()).by_id("fix")
    assert result.status is Status.DRIFT
    assert result.reason == (
        f"target {patchset.sym('Widget.compute')} has signature (self, x: int) -> int, "
        "the backport expects (self, x: int, *, y: bool = True) -> int"
    )
    assert result.targets[0].actual_signature == "(self, x: int) -> int"


@pytest.mark.parametrize(
    ("symbol", "message"),
    [
        ("Widget.gone", "class {mod}:Widget has no attribute 'gone' (own or inherited)"),
        ("Gadget.compute", "{mod} has no attribute 'Gadget'"),
    ],
)
def test_missing_target(patchset: PatchSet, symbol: str, message: str) -> None:
    patchset.add("fix", symbol)
    result = check(patchset.write()).by_id("fix")
    assert result.status is Status.MISSING
    expected = message.format(mod=patchset.module)
    assert result.reason == f"target {patchset.sym(symbol)}: {expected}"


def test_missing_module_and_missing_requires(patchset: PatchSet) -> None:
    entry = patchset.add("fix", "Widget.compute", requires=["no_such_module_xyz:thing"])
    entry["requires"].append(patchset.sym("Widget.nothing"))
    result = check(patchset.write()).by_id("fix")
    assert result.status is Status.MISSING
    assert result.reason == (
        "required symbol no_such_module_xyz:thing: module 'no_such_module_xyz' not found; "
        f"required symbol {patchset.sym('Widget.nothing')}: class {patchset.module}:Widget "
        "has no attribute 'nothing' (own or inherited)"
    )


def test_target_module_that_raises_on_import_is_failed(patchset: PatchSet) -> None:
    (patchset.site / "broken_mod_x.py").write_text("import no_such_dependency_xyz\n")
    patchset.backports.append(
        {
            "id": "fix",
            "summary": "s",
            "applies_to": ">=1",
            "module": "backports/fix.py",
            "targets": [{"symbol": "broken_mod_x:thing", "replacement": "compute"}],
        }
    )
    result = check(patchset.write()).by_id("fix")
    assert result.status is Status.FAILED
    assert result.reason == (
        "target broken_mod_x:thing: import raised ModuleNotFoundError: "
        "No module named 'no_such_dependency_xyz'"
    )


def test_backport_module_that_raises_on_import_is_failed_and_others_still_apply(
    patchset: PatchSet,
) -> None:
    patchset.write_backport("bad.py", "raise RuntimeError('boom')\n")
    patchset.add("bad", "Widget.compute", module="backports/bad.py")
    patchset.add("good", "Widget.other")
    report = apply(patchset.write())
    assert statuses(report) == {"bad": "failed", "good": "applied"}
    assert report.by_id("bad").reason == "backports/bad.py raised RuntimeError: boom on import"
    assert report.exit_code == 1
    mod = patchset.target()
    assert mod.Widget().compute(1) == 2
    assert mod.Widget().other(1) == 2001
    assert "_backport_tool_bp_bad" not in sys.modules


def test_replacement_missing_or_not_callable(patchset: PatchSet) -> None:
    patchset.write_backport("odd.py", "compute = 42\n")
    patchset.add("odd", "Widget.compute", module="backports/odd.py")
    entry = patchset.add("absent", "Widget.other")
    entry["targets"][0]["replacement"] = "nope"
    report = apply(patchset.write())
    assert statuses(report) == {"odd": "failed", "absent": "failed"}
    assert report.by_id("odd").reason == "backports/odd.py:compute is a int, not callable"
    assert report.by_id("absent").reason == (
        f"backports/fix.py has no attribute 'nope' (the replacement for "
        f"{patchset.sym('Widget.other')})"
    )
    assert patchset.target().Widget().compute(1) == 2


def test_a_backport_is_all_or_nothing(patchset: PatchSet) -> None:
    # The second target's signature drifted, so the first must not be patched.
    patchset.add("fix", "Widget.compute", "Widget.other")
    patchset.backports[0]["targets"][1]["signature"] = "(self) -> int"
    report = apply(patchset.write())
    assert statuses(report) == {"fix": "drift"}
    assert patchset.target().Widget().compute(1) == 2


def test_failure_while_patching_the_second_target_rolls_back_the_first(
    patchset: PatchSet,
) -> None:
    (patchset.site / "guarded_mod_x.py").write_text(
        "class Meta(type):\n"
        "    def __setattr__(cls, name, value):\n"
        "        if name == 'other':\n"
        "            raise RuntimeError('read-only attribute')\n"
        "        super().__setattr__(name, value)\n"
        "class Widget(metaclass=Meta):\n"
        "    def compute(self, x): return x + 1\n"
        "    def other(self, x): return x + 2\n"
    )
    patchset.backports.append(
        {
            "id": "fix",
            "summary": "s",
            "applies_to": ">=1",
            "module": "backports/fix.py",
            "targets": [
                {"symbol": "guarded_mod_x:Widget.compute", "replacement": "compute"},
                {"symbol": "guarded_mod_x:Widget.other", "replacement": "other"},
            ],
        }
    )
    original = None
    try:
        import guarded_mod_x  # type: ignore[import-not-found]

        original = guarded_mod_x.Widget.__dict__["compute"]
        result = apply(patchset.write()).by_id("fix")
        assert result.status is Status.FAILED
        assert result.reason == (
            "patching failed, nothing changed: RuntimeError: read-only attribute"
        )
        assert guarded_mod_x.Widget.__dict__["compute"] is original
        assert applied() == ()
    finally:
        sys.modules.pop("guarded_mod_x", None)


def test_two_backports_on_one_target_conflict(patchset: PatchSet) -> None:
    patchset.add("first", "Widget.compute")
    patchset.add("second", "Widget.compute")
    report = apply(patchset.write())
    assert statuses(report) == {"first": "applied", "second": "failed"}
    assert report.by_id("second").reason == (
        "patching failed, nothing changed: PatchConflict: "
        f"{patchset.sym('Widget.compute')} is already patched by backport 'first'"
    )


def test_revert_leaves_a_later_foreign_patch_alone(
    patchset: PatchSet, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="backport_tool")
    patchset.add("fix", "Widget.compute")
    apply(patchset.write())
    mod = patchset.target()

    def foreign(self: object, x: int) -> int:
        return -x

    mod.Widget.compute = foreign
    revert()
    assert mod.Widget.__dict__["compute"] is foreign
    assert "was replaced by something else after backport 'fix' patched it" in caplog.text


@pytest.mark.parametrize(("value", "expected"), [("fix", "disabled"), ("all", "disabled")])
def test_disable_env(
    patchset: PatchSet, monkeypatch: pytest.MonkeyPatch, value: str, expected: str
) -> None:
    patchset.add("fix", "Widget.compute")
    patchset.add("other", "Widget.other")
    monkeypatch.setenv("BACKPORT_TOOL_DISABLE", value)
    report = apply(patchset.write())
    assert report.by_id("fix").status.value == expected
    assert report.by_id("fix").reason == "disabled by BACKPORT_TOOL_DISABLE"
    assert report.by_id("other").status.value == ("applied" if value == "fix" else "disabled")


def test_disable_env_warns_about_unknown_ids(
    patchset: PatchSet, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="backport_tool")
    patchset.add("fix", "Widget.compute")
    monkeypatch.setenv("BACKPORT_TOOL_DISABLE", "fxi")
    apply(patchset.write())
    assert "BACKPORT_TOOL_DISABLE names unknown backport id(s) fxi. Hint: known ids are fix" in (
        caplog.text
    )


def test_version_gates_refuse_without_importing_the_target(patchset: PatchSet) -> None:
    patchset.add("old", "Widget.compute", applies_to=">=0.1,<1.0")
    patchset.add("fixed", "Widget.other", applies_to=">=1.0,<1.5", fixed_in="1.5.0")
    report = apply(patchset.write())
    assert statuses(report) == {"old": "not-applicable", "fixed": "fixed-upstream"}
    assert report.exit_code == 0
    assert patchset.module not in sys.modules


def test_check_verifies_a_fixed_upstream_claim_against_the_code(patchset: PatchSet) -> None:
    # Without a probe the claim stays unverified, but drift is still reported.
    patchset.add(
        "fixed", "Widget.other", applies_to=">=1.0,<1.5", fixed_in="1.5.0", signature="(self)"
    )
    result = check(patchset.write()).by_id("fixed")
    assert result.status is Status.FIXED_UPSTREAM
    assert result.upstream_claim is backport_tool.Claim.UNVERIFIED
    assert result.reason == (
        f"{patchset.dist} 1.5.0 >= fixed_in 1.5.0: upstream is declared to include the fix; "
        "unverified: the backport has no content probe; also: target "
        f"{patchset.sym('Widget.other')} has signature (self, x: int) -> int, the backport "
        "expects (self)"
    )


def test_package_not_installed_is_not_applicable(patchset: PatchSet) -> None:
    patchset.add("fix", "Widget.compute")
    data = {"version": 1, "package": "surely-not-installed-dist", "backports": patchset.backports}
    report = apply(patchset.write(data))
    assert report.version is None
    assert report.by_id("fix").status is Status.NOT_APPLICABLE
    assert report.by_id("fix").reason == "surely-not-installed-dist is not installed"


def test_manifest_env_var_is_the_default(
    patchset: PatchSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    patchset.add("fix", "Widget.compute")
    monkeypatch.setenv("BACKPORT_TOOL_MANIFEST", str(patchset.write()))
    assert statuses(check()) == {"fix": "ready"}


def test_invalid_manifest_raises_before_anything_is_imported(patchset: PatchSet) -> None:
    patchset.add("fix", "Widget.compute", applies_to="nonsense")
    with pytest.raises(backport_tool.ManifestError):
        apply(patchset.write())
    assert patchset.module not in sys.modules


def test_revert_takes_ids(patchset: PatchSet) -> None:
    patchset.add("one", "Widget.compute")
    patchset.add("two", "Widget.other")
    apply(patchset.write())
    assert revert("two") == ("two",)
    assert [a.id for a in applied()] == ["one"]
    assert revert(["missing"]) == ()
    with pytest.raises(backport_tool.UsageError):
        revert([1])  # type: ignore[list-item]
