from __future__ import annotations

import ast
import functools
import importlib
import json
import logging
import os
import subprocess
import sys
import sysconfig
import textwrap
import threading
import time
from pathlib import Path

import pytest
from helpers import BACKPORT_SOURCE, PatchSet

import backport_tool
from backport_tool import Status, applied, check, current_report, revert

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


def test_apply_after_revert_installs_the_same_rebuilt_and_wrapped_objects(
    patchset: PatchSet,
) -> None:
    # A method rebuilt for super(), a staticmethod wrapper and a declared
    # copy's wrapper are built once: a new object per apply made
    # torch.compile's guards fail, and re-ran what decorates the method.
    (patchset.site / "wrapcopy.py").write_text(
        f"from {patchset.module} import Widget\n\n\nclass Holder:\n"
        "    helper = staticmethod(Widget.helper)\n"
    )
    patchset.write_backport(
        "fix.py",
        """
        SEEN = []


        def register(function):
            SEEN.append(function)
            return function


        @register
        def inherited(self, x: int) -> int:
            return super().inherited(x) + 1000


        def helper(x: int) -> int:
            return x * 20
        """,
    )
    patchset.add("fix", "Widget.inherited", "Widget.helper")
    patchset.backports[-1]["targets"][1]["copies"] = ["wrapcopy:Holder.helper"]
    manifest = patchset.write()
    mod = patchset.target()
    copy = importlib.import_module("wrapcopy")
    try:
        installed = []
        for _ in range(3):
            assert statuses(apply(manifest, eager=True)) == {"fix": "applied"}
            assert mod.Widget().inherited(1) == 1101
            installed.append(
                (
                    vars(mod.Widget)["inherited"],
                    vars(mod.Widget)["helper"],
                    vars(copy.Holder)["helper"],
                )
            )
            revert()
        first = installed[0]
        assert all(a is b for later in installed[1:] for a, b in zip(first, later, strict=True))
    finally:
        sys.modules.pop("wrapcopy", None)


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


PROPERTIES = """
import functools


class Base:
    @property
    def value(self):
        return 1

    @functools.cached_property
    def cached(self):
        return 10


class Widget(Base):
    def __init__(self):
        self._stored = 1

    @property
    def value(self):
        return 2

    @functools.cached_property
    def cached(self):
        return 20

    @property
    def stored(self):
        return self._stored

    @stored.setter
    def stored(self, new):
        self._stored = new
"""


def test_property_and_cached_property_targets_take_their_kind(patchset: PatchSet) -> None:
    # Each replacement calls zero-argument super(), so each function of the
    # descriptor is rebuilt for the class; a cached_property is told its name.
    (patchset.site / f"{patchset.module}.py").write_text(PROPERTIES)
    patchset.write_backport(
        "fix.py",
        """
        import functools


        @property
        def value(self):
            return super().value + 100


        @functools.cached_property
        def cached(self):
            return super().cached + 100


        @property
        def stored(self):
            return self._stored * 10


        @stored.setter
        def stored(self, new):
            self._stored = new + 1
        """,
    )
    patchset.add("fix", "Widget.value", "Widget.cached", "Widget.stored")
    mod = patchset.target()
    originals = {name: vars(mod.Widget)[name] for name in ("value", "cached", "stored")}
    manifest = patchset.write()
    assert statuses(check(manifest)) == {"fix": "ready"}
    assert statuses(apply(manifest, eager=True)) == {"fix": "applied"}
    widget = mod.Widget()
    assert (widget.value, widget.cached, widget.stored) == (101, 110, 10)
    widget.stored = 4
    assert widget.stored == 50
    revert()
    assert {name: vars(mod.Widget)[name] for name in originals} == originals
    assert (mod.Widget().value, mod.Widget().cached) == (2, 20)


def test_a_property_setter_may_name_its_parameters_as_it_likes(patchset: PatchSet) -> None:
    # Python calls a property's functions by position only: a setter naming
    # its value otherwise than torch's was refused ("no keyword parameter").
    (patchset.site / f"{patchset.module}.py").write_text(PROPERTIES)
    patchset.write_backport(
        "fix.py",
        """
        @property
        def stored(this):
            return this._stored * 10


        @stored.setter
        def stored(this, value):
            this._stored = value + 1
        """,
    )
    patchset.add("fix", "Widget.stored")
    manifest = patchset.write()
    assert statuses(check(manifest)) == {"fix": "ready"}
    assert statuses(apply(manifest, eager=True)) == {"fix": "applied"}
    widget = patchset.target().Widget()
    widget.stored = 4
    assert widget.stored == 50
    revert()


@pytest.mark.parametrize(
    ("target", "source", "reason"),
    [
        (
            "Widget.value",
            "def value(self):\n    return 3\n",
            "backports/fix.py:value is a function, and the original {mod}:Widget.value is a "
            "property; define the replacement as the original is defined (@property, with "
            "the same setter and deleter)",
        ),
        (
            "Widget.stored",
            "@property\ndef stored(self):\n    return 3\n",
            "backports/fix.py:stored has no setter, and the original {mod}:Widget.stored has "
            "one, so code that uses it would fail; give the replacement a setter too",
        ),
        (
            "Widget.value",
            "@property\ndef value(self, scale):\n    return scale\n",
            "backports/fix.py:value (getter) cannot replace {mod}:Widget.value: ",
        ),
        (
            "Widget.value",
            "class documented(property):\n    def __init__(self, fget):\n"
            "        super().__init__(fget, doc='patched')\n\n\n"
            "@documented\ndef value(self):\n    return super().value + 100\n",
            "backports/fix.py:value uses super(), so its functions are rebuilt for the class, "
            "and a documented cannot be made again from them: TypeError: ",
        ),
        (
            "Widget.cached",
            "@property\ndef cached(self):\n    return 3\n",
            "backports/fix.py:cached is a property, and the original {mod}:Widget.cached is a "
            "cached_property; define the replacement as the original is defined "
            "(@cached_property, with the same setter and deleter)",
        ),
    ],
)
def test_a_property_target_refuses_what_callers_could_not_use(
    patchset: PatchSet, target: str, source: str, reason: str
) -> None:
    (patchset.site / f"{patchset.module}.py").write_text(PROPERTIES)
    patchset.write_backport("fix.py", source)
    patchset.add("fix", target)
    mod = patchset.target()
    original = vars(mod.Widget)[target.partition(".")[2]]
    manifest = patchset.write()
    for report in (check(manifest), apply(manifest, eager=True)):
        result = report.by_id("fix")
        assert result.status is Status.FAILED
        assert result.reason.startswith(reason.format(mod=patchset.module)), result.reason
    assert vars(mod.Widget)[target.partition(".")[2]] is original


@pytest.mark.parametrize("eager", [True, False])
def test_a_later_apply_that_leaves_a_backport_out_reports_it_still_in_force(
    patchset: PatchSet, eager: bool, caplog: pytest.LogCaptureFixture
) -> None:
    patchset.add("fix", "Widget.compute")
    patchset.add("extra", "Widget.other", opt_in=True)
    manifest = patchset.write()
    mod = patchset.target()
    assert statuses(apply(manifest, eager=True, enable=["extra"])) == {
        "fix": "applied",
        "extra": "applied",
    }
    again = apply(manifest, eager=eager, disable=["extra"])
    assert mod.Widget().other(1) == 2001  # nothing reverted it
    result = again.by_id("extra")
    assert result.status is Status.APPLIED
    assert result.reason.startswith("applied earlier in this process; this apply() has it disabled")
    assert result.reason.endswith("and reverts nothing: revert('extra') does")
    assert "extra stays applied" in caplog.text
    assert current_report() == again


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
    # Neither is in force: a conflict stops both, in apply as in check.
    for report in (apply(patchset.write()), check(patchset.write())):
        assert statuses(report) == {"first": "failed", "second": "failed"}
        assert report.by_id("second").reason == (
            f"conflict: backports first and second both change {patchset.sym('Widget.compute')}"
            "; a binding belongs to one backport only: merge them, or disable one"
        )
    assert applied() == ()


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


@pytest.mark.parametrize(
    ("value", "expected"),
    [("fix", "disabled"), ("all", "disabled"), ("ALL", "disabled"), (" All ", "disabled")],
)
def test_disable_env(
    patchset: PatchSet, monkeypatch: pytest.MonkeyPatch, value: str, expected: str
) -> None:
    patchset.add("fix", "Widget.compute")
    patchset.add("other", "Widget.other")
    monkeypatch.setenv("BACKPORT_TOOL_DISABLE", value)
    report = apply(patchset.write())
    assert report.by_id("fix").status.value == expected
    assert (
        report.by_id("fix").reason
        == "disabled by a switch: BACKPORT_TOOL_DISABLE, apply(disable=...) or --disable"
    )
    assert report.by_id("other").status.value == ("applied" if value == "fix" else "disabled")


def test_disable_env_warns_about_unknown_ids(
    patchset: PatchSet, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="backport_tool")
    patchset.add("fix", "Widget.compute")
    monkeypatch.setenv("BACKPORT_TOOL_DISABLE", "fxi")
    report = apply(patchset.write(), enable=["fi"], disable=["zzz"])
    expected = (
        "the BACKPORT_TOOL_DISABLE variable names 'fxi', which is no backport of the "
        "manifest; did you mean 'fix'?",
        "apply(enable=...) names 'fi', which is no backport of the manifest; did you mean 'fix'?",
        "apply(disable=...) names 'zzz', which is no backport of the manifest; known "
        "ids: fix, or 'all'",
    )
    assert report.warnings == expected
    latest = current_report()
    assert latest is not None
    assert latest.warnings == expected
    for message in expected:
        assert f"backport-tool: {message}" in caplog.text
    # A typo never switches anything: the backport is applied.
    assert report.by_id("fix").status is Status.APPLIED


def test_unknown_ids_warn_with_no_logging_configured(patchset: PatchSet) -> None:
    patchset.add("fix", "Widget.compute")
    manifest = patchset.write()
    code = "import backport_tool, sys; backport_tool.apply(sys.argv[1], enable=['fxi'])"
    done = subprocess.run(
        [sys.executable, "-c", code, str(manifest)],
        env=patchset.env(BACKPORT_TOOL_DISABLE="fi"),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "the BACKPORT_TOOL_DISABLE variable names 'fi'" in done.stderr
    assert "apply(enable=...) names 'fxi'" in done.stderr


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


def test_invalid_manifest_is_an_error_in_the_report_and_raises_only_when_strict(
    patchset: PatchSet, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    patchset.add("fix", "Widget.compute", applies_to="nonsense")
    manifest = patchset.write()
    for eager in (False, True):
        report = apply(manifest, eager=eager)
        assert report.results == ()
        assert report.exit_code == 1
        assert report.error is not None
        assert report.error.startswith(f"invalid manifest: {manifest}:")
        assert report.error.endswith("; nothing was applied")
        assert current_report() == report
    assert f"backport-tool: invalid manifest: {manifest}:" in caplog.text
    assert caplog.records[-1].levelno == logging.ERROR
    missing = apply(tmp_path / "nowhere.yaml")
    assert missing.error is not None
    assert str(tmp_path / "nowhere.yaml") in missing.error
    with pytest.raises(backport_tool.ManifestError):
        apply(manifest, strict=True)
    assert patchset.module not in sys.modules


def test_revert_takes_ids(patchset: PatchSet) -> None:
    patchset.add("one", "Widget.compute")
    patchset.add("two", "Widget.other")
    apply(patchset.write())
    assert revert("two") == ("two",)
    assert [a.id for a in applied()] == ["one"]
    assert revert(["missing"]) == ()
    for value, shown in ((5, "int 5"), ([1], "list [1]"), (b"one", "bytes b'one'")):
        with pytest.raises(backport_tool.UsageError) as caught:
            revert(value)  # type: ignore[arg-type]
        assert str(caught.value) == (
            f"revert() takes backport ids: a string or an iterable of strings, got {shown}"
        )
    assert [a.id for a in applied()] == ["one"]


# A second copy of the patch set's backport that a wrong lookup would load.
DECOY_SOURCE = BACKPORT_SOURCE.replace("x + 1000", "x + 5")


def symlinked(patchset: PatchSet, tmp_path: Path) -> Path:
    """A link to the patch set's manifest, from a directory with a decoy backport."""
    manifest = patchset.write()
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "backports").mkdir(parents=True)
    (elsewhere / "backports" / "fix.py").write_text(DECOY_SOURCE)
    link = elsewhere / "manifest.yaml"
    link.symlink_to(manifest)
    return link


def test_a_symlinked_manifest_loads_its_modules_next_to_its_target_in_every_mode(
    patchset: PatchSet, tmp_path: Path
) -> None:
    patchset.add("fix", "Widget.compute")
    link = symlinked(patchset, tmp_path)
    real = patchset.patches / "backports" / "fix.py"
    assert check(link).by_id("fix").status is Status.READY
    module = patchset.target()
    assert apply(link).by_id("fix").status is Status.APPLIED
    assert module.Widget().compute(1) == 1001  # not the decoy's 6
    revert()
    assert backport_tool.apply(link).by_id("fix").status is Status.APPLIED  # lazy, imported
    assert module.Widget().compute(1) == 1001
    assert [a.manifest for a in applied()] == [str(patchset.patches / "manifest.yaml")]
    revert()
    # The children of `apply -- CMD` get the real file too.
    code = f"import {patchset.module} as m; print(m.Widget().compute(1))"
    proc = patchset.cli("apply", "--manifest", str(link), "--", sys.executable, "-c", code)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "1001\n", "")
    assert real.is_file()


def test_the_pin_holds_for_the_bytes_that_run_not_a_matching_pycache_file(
    patchset: PatchSet,
) -> None:
    import hashlib
    import importlib.util
    import py_compile

    # A .pyc compiled from other source of the same size and mtime: the import
    # system's loader would run it instead of the pinned file.
    fix = patchset.patches / "backports" / "fix.py"
    evil = BACKPORT_SOURCE.replace("x + 1000", "x - 1000")
    assert len(evil) == len(BACKPORT_SOURCE)
    fix.write_text(evil)
    stamp = fix.stat().st_mtime_ns
    py_compile.compile(str(fix), cfile=importlib.util.cache_from_source(str(fix)), doraise=True)
    fix.write_text(BACKPORT_SOURCE)
    os.utime(fix, ns=(stamp, stamp))
    pin = hashlib.sha256(BACKPORT_SOURCE.encode()).hexdigest()
    patchset.add("fix", "Widget.compute", sha256=pin)
    module = patchset.target()
    assert apply(patchset.write()).by_id("fix").status is Status.APPLIED
    assert module.Widget().compute(1) == 1001


def plan_file(cache: Path) -> Path:
    (plan,) = cache.glob("plan-*.json")
    return plan


@pytest.mark.parametrize(
    "cached",
    [
        "[]",
        "null",
        "{}",
        '"text"',
        '{"format": 3}',
        "not json at all",
        "drop-an-entry",
        "change-a-status",
        "foreign-manifest",
    ],
)
def test_a_foreign_invalid_or_incomplete_plan_is_rebuilt(
    patchset: PatchSet, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cached: str
) -> None:
    monkeypatch.setenv("BACKPORT_TOOL_CACHE_DIR", str(tmp_path / "cache"))
    patchset.add("fix", "Widget.compute")
    patchset.add("other", "Widget.other")
    patchset.add("old", "Widget.helper", applies_to="<1.0")
    manifest = patchset.write()
    first = backport_tool.apply(manifest)
    revert()
    path = plan_file(tmp_path / "cache")
    data = json.loads(path.read_text())
    if cached == "drop-an-entry":
        data["backports"] = data["backports"][1:]
        text = json.dumps(data)
    elif cached == "change-a-status":
        data["backports"][0]["status"] = "applied"
        text = json.dumps(data)
    elif cached == "foreign-manifest":
        data["manifest_sha256"] = "0" * 64
        text = json.dumps(data)
    else:
        text = cached
    path.write_text(text)
    second = backport_tool.apply(manifest)
    assert [(r.id, r.status) for r in second.results] == [(r.id, r.status) for r in first.results]
    assert statuses(second) == {"fix": "pending", "other": "pending", "old": "not-applicable"}
    module = patchset.target()
    assert module.Widget().compute(1) == 1001
    assert module.Widget().other(1) == 2001
    # The rebuilt plan replaced the bad one.
    assert json.loads(plan_file(tmp_path / "cache").read_text())["backports"][0]["id"] == "fix"


def second_patch_set(patchset: PatchSet, tmp_path: Path) -> Path:
    other = tmp_path / "other-set"
    (other / "backports").mkdir(parents=True)
    (other / "backports" / "fix.py").write_text(DECOY_SOURCE)
    data = {"version": 1, "package": patchset.dist, "backports": patchset.backports}
    path = other / "manifest.yaml"
    path.write_text(json.dumps(data))  # JSON is YAML
    return path


def test_the_same_id_from_another_manifest_is_a_conflict(
    patchset: PatchSet, tmp_path: Path
) -> None:
    patchset.add("fix", "Widget.compute")
    first = patchset.write()
    second = second_patch_set(patchset, tmp_path)
    module = patchset.target()
    assert apply(first).by_id("fix").status is Status.APPLIED
    for result in (apply(second).by_id("fix"), check(second).by_id("fix")):
        assert result.status is Status.FAILED
        assert result.reason == (
            f"backport id 'fix' is already applied in this process from {first}; {second} has "
            "a backport of the same id, which was not applied. Apply one patch set per "
            "process, or give the backports distinct ids"
        )
    lazy = backport_tool.apply(second).by_id("fix")
    assert lazy.status is Status.FAILED
    assert module.Widget().compute(1) == 1001
    assert [a.manifest for a in applied()] == [str(first)]


def test_the_exported_manifest_does_not_switch_under_the_running_process(
    patchset: PatchSet, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="backport_tool")
    patchset.add("fix", "Widget.compute")
    first = patchset.write()
    second = second_patch_set(patchset, tmp_path)
    backport_tool.apply(first)
    assert os.environ["BACKPORT_TOOL_MANIFEST"] == str(first)
    backport_tool.apply(second)
    assert os.environ["BACKPORT_TOOL_MANIFEST"] == str(first)
    assert f"subprocesses keep applying {first}; {second} is applied in this process only" in (
        caplog.text
    )


def test_reverting_everything_stops_exporting_the_patch_set_to_children(
    patchset: PatchSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backport_tool.state import BOOT_DIR

    monkeypatch.delenv("BACKPORT_TOOL_MANIFEST", raising=False)
    monkeypatch.setenv("BACKPORT_TOOL_DISABLE", "users-own")
    patchset.add("fix", "Widget.compute")
    patchset.add("other", "Widget.other")
    manifest = patchset.write()
    backport_tool.apply(manifest, eager=True, disable=["nothing-such"])
    assert os.environ["BACKPORT_TOOL_MANIFEST"] == str(manifest)
    # One backport reverted: this process only, children keep the set.
    backport_tool.revert("fix")
    assert os.environ["BACKPORT_TOOL_MANIFEST"] == str(manifest)
    assert str(BOOT_DIR) in sys.path
    backport_tool.revert()
    assert "BACKPORT_TOOL_MANIFEST" not in os.environ
    assert os.environ["BACKPORT_TOOL_DISABLE"] == "users-own"
    assert str(BOOT_DIR) not in sys.path
    child = subprocess.run(
        [sys.executable, "-c", "import sys; print('backport_tool' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert child.stdout.strip() == "False"
    # Applying again exports it again.
    backport_tool.apply(manifest)
    assert os.environ["BACKPORT_TOOL_MANIFEST"] == str(manifest)


def test_reverting_everything_under_apply_cmd_stops_the_inherited_export(
    patchset: PatchSet,
) -> None:
    # Under `apply -- CMD` the program inherits the export: reverting it must
    # stop its children applying too, and keep the PYTHONPATH entry the
    # program added after apply.
    patchset.add("fix", "Widget.compute")
    code = textwrap.dedent(
        f"""
        import os, subprocess, sys
        import backport_tool
        import {patchset.module} as mod
        assert mod.Widget().compute(1) == 1001
        os.environ["PYTHONPATH"] += os.pathsep + "added-later"
        backport_tool.revert()
        child = subprocess.run(
            [sys.executable, "-c", "import {patchset.module} as m; print(m.Widget().compute(1))"],
            capture_output=True, text=True, check=True,
        )
        print(mod.Widget().compute(1), child.stdout.strip())
        print(os.environ["PYTHONPATH"].split(os.pathsep))
        """
    )
    done = patchset.cli(
        "apply", "--manifest", str(patchset.write()), "--", sys.executable, "-c", code
    )
    assert done.returncode == 0, done.stderr
    numbers, entries = done.stdout.splitlines()
    assert numbers == "2 2"
    kept = ast.literal_eval(entries)
    assert kept[-1] == "added-later"
    assert str(patchset.site) in kept
    assert not any(entry.endswith(os.path.join("backport_tool", "_boot")) for entry in kept)


@pytest.mark.parametrize("flag", ["-E", "-I", "-S"])
def test_a_python_whose_workers_ignore_the_export_says_so(patchset: PatchSet, flag: str) -> None:
    patchset.add("fix", "Widget.compute")
    code = (
        "import sys; sys.path[:0] = sys.argv[1:4]; import backport_tool; "
        f"backport_tool.apply({str(patchset.write())!r})"
    )
    package_root = str(Path(backport_tool.__file__).resolve().parents[1])
    # -S leaves site-packages off sys.path: the child puts it back itself.
    packages = sysconfig.get_paths()["purelib"]
    child = subprocess.run(
        [sys.executable, flag, "-c", code, package_root, str(patchset.site), packages],
        capture_output=True,
        text=True,
        check=True,
    )
    effect = "never import site" if flag == "-S" else "ignore PYTHONPATH"
    assert child.stderr == (
        f"backport-tool: this Python runs with {flag}, which multiprocessing passes on to its "
        f"workers: they {effect} and run without the patch set. Start Python without "
        "it, or apply() in each worker\n"
    )


def test_concurrent_strict_apply_does_not_conflict_with_itself(patchset: PatchSet) -> None:
    patchset.add("fix", "Widget.compute", "Widget.other")
    manifest = patchset.write()
    patchset.target()
    errors: list[BaseException] = []
    reports: list[backport_tool.Report] = []
    barrier = threading.Barrier(4)

    def worker() -> None:
        barrier.wait()
        try:
            reports.append(backport_tool.apply(manifest, strict=True))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert [r.by_id("fix").status for r in reports] == [Status.APPLIED] * 4
    assert [a.id for a in applied()] == ["fix"]


SELFTEST = """

def selftest():
    import {module} as target
    assert target.Widget().compute(1) == 1001, "not patched"
"""


def test_check_after_apply_verifies_the_original_and_runs_the_selftest(
    patchset: PatchSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    patchset.write_backport("fix.py", BACKPORT_SOURCE + SELFTEST.format(module=patchset.module))
    patchset.add("fix", "Widget.compute", signature="(self, x: int) -> int")
    original = check(patchset.write()).by_id("fix").targets[0].actual_fingerprint
    patchset.backports[0]["targets"][0]["fingerprint"] = original
    manifest = patchset.write()
    monkeypatch.setenv("PYTHONPATH", str(patchset.site))  # for the self-test's child
    apply(manifest)
    result = check(manifest, selftest=True).by_id("fix")
    assert result.status is Status.APPLIED
    assert result.reason == (
        "applied in this process; the original targets found, signatures match, fingerprints match"
    )
    assert result.targets[0].actual_fingerprint == original
    assert (result.selftest, result.selftest_message) == (backport_tool.Verdict.PASSED, "passed")


def test_a_backport_without_a_selftest_says_so_under_selftest(patchset: PatchSet) -> None:
    patchset.add("fix", "Widget.compute")
    manifest = patchset.write()
    result = check(manifest, selftest=True).by_id("fix")
    assert result.status is Status.READY
    assert (result.selftest, result.selftest_message) == (
        backport_tool.Verdict.NONE,
        "backports/fix.py defines no selftest(); nothing ran",
    )
    done = patchset.cli("check", "--selftest", "--manifest", str(manifest))
    assert done.returncode == 0, done.stderr
    assert "selftest none: backports/fix.py defines no selftest(); nothing ran" in done.stdout


def test_a_selftest_that_calls_sys_exit_has_failed(
    patchset: PatchSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    # sys.exit(0) ends the self-test's child with status 0 before it could
    # confirm anything: that is not a pass.
    exits = "\n\ndef selftest():\n    import sys\n    sys.exit(0)\n"
    patchset.write_backport("fix.py", BACKPORT_SOURCE + exits)
    patchset.add("fix", "Widget.compute")
    monkeypatch.setenv("PYTHONPATH", str(patchset.site))
    result = check(patchset.write(), selftest=True).by_id("fix")
    assert (result.selftest, result.selftest_message) == (
        backport_tool.Verdict.FAILED,
        "failed: SystemExit: 0",
    )


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        (
            "Version: not-a-version\n",
            "installed {dist} has version 'not-a-version', which is not a PEP 440 version; "
            "backport-tool cannot tell which backports apply. Reinstall {dist} from a proper "
            "wheel, or disable backports with BACKPORT_TOOL_DISABLE=all",
        ),
        (
            "",
            "the metadata of the installed {dist} has no Version; backport-tool cannot tell "
            "which backports apply. Reinstall {dist} from a proper wheel, or disable backports "
            "with BACKPORT_TOOL_DISABLE=all",
        ),
    ],
)
@pytest.mark.parametrize("eager", [False, True])
def test_broken_installed_metadata_is_one_error_in_lazy_and_eager_apply(
    patchset: PatchSet, metadata: str, message: str, eager: bool
) -> None:
    patchset.add("fix", "Widget.compute")
    manifest = patchset.write()
    (info,) = patchset.site.glob("*.dist-info")
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {patchset.dist}\n{metadata}")
    report = backport_tool.apply(manifest, eager=eager)
    assert report.error == message.format(dist=patchset.dist) + "; nothing was applied"
    with pytest.raises(backport_tool.InstalledVersionError) as raised:
        backport_tool.apply(manifest, eager=eager, strict=True)
    assert str(raised.value) == message.format(dist=patchset.dist)


def test_the_version_is_found_after_a_header_block_longer_than_one_read(
    patchset: PatchSet,
) -> None:
    # apply reads the metadata up to the end of its headers only, in chunks.
    patchset.add("fix", "Widget.compute")
    manifest = patchset.write()
    (info,) = patchset.site.glob("*.dist-info")
    extra = "".join(f"Requires-Dist: dep{i} (>=1.0)\n" for i in range(600))
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {patchset.dist}\n{extra}Version: 1.5.0\n\n"
        "Version: 9.0\n" + "A long description.\n" * 2000
    )
    assert len(extra) > 3 * 4096
    report = backport_tool.apply(manifest, eager=True)
    assert str(report.version) == "1.5.0"
    assert report.by_id("fix").status is Status.APPLIED


def test_non_utf8_installed_metadata_is_a_usage_error(patchset: PatchSet) -> None:
    patchset.add("fix", "Widget.compute")
    manifest = patchset.write()
    (info,) = patchset.site.glob("*.dist-info")
    head = f"Metadata-Version: 2.1\nName: {patchset.dist}\nVersion: 1.5.0\nSummary: "
    (info / "METADATA").write_bytes(head.encode() + b"\xff\n")
    for command in ("apply", "check"):
        proc = patchset.cli(command, "--manifest", str(manifest))
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr == (
            f"backport-tool: error: the metadata of the installed {patchset.dist} is not "
            f"UTF-8 text (invalid byte at offset {len(head)}); reinstall "
            f"{patchset.dist}, or disable backports with BACKPORT_TOOL_DISABLE=all\n"
        )
    # Switching everything off is the way out, and needs no version; the
    # output must not say the package is not installed.
    proc = patchset.cli("apply", "--manifest", str(manifest), BACKPORT_TOOL_DISABLE="all")
    assert proc.returncode == 0, proc.stderr
    summary = f"{patchset.dist} version not read (every backport is disabled): 1 disabled"
    assert proc.stdout.splitlines()[-1] == summary
    proc = patchset.cli("status", "--manifest", str(manifest), BACKPORT_TOOL_DISABLE="all")
    assert proc.stdout.splitlines()[1] == (
        f"{patchset.dist}: version not read (every backport is disabled)"
    )


@pytest.mark.parametrize(
    ("eager", "modules"),
    [
        # Lazy, with the plan cached: no validation, no version logic.
        (False, ("yaml", "packaging", "backport_tool.decision")),
        # Eager, with the validated manifest cached: no yaml, no static reader.
        (True, ("yaml", "packaging.utils", "backport_tool.static")),
    ],
)
def test_apply_imports_nothing_heavy_once_its_manifest_is_cached(
    patchset: PatchSet, tmp_path: Path, eager: bool, modules: tuple[str, ...]
) -> None:
    patchset.add("fix", "Widget.compute")
    code = (
        "import sys, backport_tool\n"
        f"report = backport_tool.apply({str(patchset.write())!r}, eager={eager})\n"
        f"print(report.by_id('fix').status.value, sorted(m for m in {modules!r} "
        "if m in sys.modules))\n"
    )
    env = patchset.env(BACKPORT_TOOL_CACHE_DIR=str(tmp_path / "cache"))
    # The first process validates (nothing cached), the second reads the cache.
    runs = [
        subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        for _ in range(2)
    ]
    status = "applied" if eager else "pending"
    # The first imports what validating needs: all of them but the static reader.
    loaded = sorted(m for m in modules if m != "backport_tool.static")
    assert [r.stdout for r in runs] == [f"{status} {loaded}\n", f"{status} []\n"], [
        r.stderr for r in runs
    ]


def selftest_result(
    patchset: PatchSet, monkeypatch: pytest.MonkeyPatch, selftest: str
) -> backport_tool.BackportResult:
    # check --selftest of the fix backport whose module ends with `selftest`.
    patchset.write_backport("fix.py", BACKPORT_SOURCE + "\n\n" + selftest)
    patchset.add("fix", "Widget.compute")
    monkeypatch.setenv("PYTHONPATH", str(patchset.site))
    return check(patchset.write(), selftest=True).by_id("fix")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        # Ended before it could say anything: status 0 is no pass.
        (
            "    print('about to exit', flush=True)\n    import os\n    os._exit(0)\n",
            "the process exited with status 0 before the self-test finished; last output: "
            "about to exit",
        ),
        (
            "    print('all good so far', flush=True)\n    import os, signal\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n",
            "the process was killed by SIGKILL before the self-test finished; last output: "
            "all good so far",
        ),
        # A body that a call does not run.
        ("    raise AssertionError('never ran')\n    yield\n", "is a generator"),
        # Output that is not UTF-8 was an internal error of the whole check.
        (
            "    import os\n    os.write(2, b'caf\\xe9\\n')\n    os._exit(3)\n",
            "the process exited with status 3 before the self-test finished; last output: "
            "caf\ufffd",
        ),
    ],
)
def test_a_selftest_that_does_not_finish_has_failed(
    patchset: PatchSet, monkeypatch: pytest.MonkeyPatch, body: str, message: str
) -> None:
    target = f"    from {patchset.module} import Widget\n    Widget().compute(1)\n"
    result = selftest_result(patchset, monkeypatch, f"def selftest():\n{target}{body}")
    assert result.selftest is backport_tool.Verdict.FAILED
    assert result.selftest_message is not None
    assert message in result.selftest_message


def test_an_async_selftest_runs_its_body(
    patchset: PatchSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = f"    from {patchset.module} import Widget\n    assert Widget().compute(1) == 5\n"
    result = selftest_result(patchset, monkeypatch, f"async def selftest():\n{body}")
    assert (result.selftest, result.selftest_message) == (
        backport_tool.Verdict.FAILED,
        "failed: AssertionError",
    )


def test_a_selftests_child_processes_apply_the_patch_set_as_in_production(
    patchset: PatchSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The self-test's process applied with subprocesses=False: a fix that
    # must reach compile workers or spawn workers failed there, and passed
    # in production.
    child = f"from {patchset.module} import Widget; print(Widget().compute(1))"
    body = (
        f"    from {patchset.module} import Widget\n    assert Widget().compute(1) == 1001\n"
        "    import subprocess, sys\n"
        f"    out = subprocess.run([sys.executable, '-c', {child!r}], capture_output=True, "
        "text=True).stdout\n"
        "    assert out.strip() == '1001', out\n"
    )
    result = selftest_result(patchset, monkeypatch, f"def selftest():\n{body}")
    assert (result.selftest, result.selftest_message) == (backport_tool.Verdict.PASSED, "passed")


def test_a_selftest_leaves_no_process_behind_and_does_not_wait_for_one(
    patchset: PatchSet, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A process the self-test started and left running kept the output pipe
    # open: the run waited for it (up to the 900 s timeout) and left it.
    pid_file = tmp_path / "sleeper.pid"
    body = (
        f"    from {patchset.module} import Widget\n    assert Widget().compute(1) == 1001\n"
        "    import subprocess\n"
        "    sleeper = subprocess.Popen(['sleep', '300'])\n"
        f"    open({str(pid_file)!r}, 'w').write(str(sleeper.pid))\n"
    )
    started = time.monotonic()
    result = selftest_result(patchset, monkeypatch, f"def selftest():\n{body}")
    assert time.monotonic() - started < 60
    assert (result.selftest, result.selftest_message) == (backport_tool.Verdict.PASSED, "passed")
    sleeper = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while _alive(sleeper) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(sleeper)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone but for its parent's wait (init reaps it).
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def test_the_selftest_runs_in_the_state_production_startup_has(
    patchset: PatchSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The child applies lazily, as a server does: a self-test that never
    # imports its target never ran the patch, and says so.
    patchset.write_backport("fix.py", BACKPORT_SOURCE + "\n\ndef selftest():\n    pass\n")
    patchset.add("fix", "Widget.compute")
    monkeypatch.setenv("PYTHONPATH", str(patchset.site))
    result = check(patchset.write(), selftest=True).by_id("fix")
    assert (result.selftest, result.selftest_message) == (
        backport_tool.Verdict.FAILED,
        f"not applied: pending (verified and applied when {patchset.module} is imported)",
    )


def test_the_startup_line_counts_partial_as_in_force(caplog: pytest.LogCaptureFixture) -> None:
    from backport_tool.api import _log_summary
    from backport_tool.report import BackportResult, Report

    caplog.set_level(logging.INFO, logger="backport_tool")
    results = (
        BackportResult("a", Status.APPLIED, ""),
        BackportResult("b", Status.PARTIAL, ""),
        BackportResult("c", Status.PENDING, ""),
        BackportResult("d", Status.DISABLED, ""),
        BackportResult("e", Status.NOT_APPLICABLE, ""),
    )
    _log_summary(Report("torch", "2.11.0", "m.yaml", results))
    assert caplog.messages[-1] == (
        "backport-tool: 1 applied (a), 1 partial (b), 1 pending (c), 2 refused"
    )


def test_switches_and_manifest_of_the_wrong_type_are_usage_errors(patchset: PatchSet) -> None:
    patchset.add("fix", "Widget.compute")
    patchset.add("extra", "Widget.other", opt_in=True)
    manifest = patchset.write()
    patchset.target()
    # A string is an id, as revert() takes it, not a list of its characters.
    assert statuses(apply(manifest, eager=True, enable="extra")) == {
        "fix": "applied",
        "extra": "applied",
    }
    revert()
    assert statuses(check(manifest, disable="fix")) == {"fix": "disabled", "extra": "disabled"}
    wrong = "apply(enable=...) takes backport ids: a string or an iterable of strings, got "
    for value, shown in (
        (5, "int 5"),
        (None, "NoneType None"),
        (["extra", 5], "list ['extra', 5]"),
    ):
        # At startup as any bad input: reported, logged, nothing applied.
        report = apply(manifest, enable=value)  # type: ignore[arg-type]
        assert report.error == f"{wrong}{shown}; nothing was applied"
        assert applied() == ()
        with pytest.raises(backport_tool.UsageError, match=r"^apply\(enable=\.\.\.\) takes"):
            apply(manifest, strict=True, enable=value)  # type: ignore[arg-type]
    with pytest.raises(backport_tool.UsageError, match=r"^check\(disable=\.\.\.\) takes"):
        check(manifest, disable=[1])  # type: ignore[list-item]
    report = apply(5)  # type: ignore[arg-type]
    assert report.error == (
        "the manifest must be a path (str or os.PathLike) or a loaded Manifest, got int 5; "
        "nothing was applied"
    )
    with pytest.raises(backport_tool.UsageError, match=r"^the manifest must be a path"):
        check(5)  # type: ignore[arg-type]


def test_a_manifest_object_unlike_its_file_is_not_exported(
    patchset: PatchSet, caplog: pytest.LogCaptureFixture
) -> None:
    # Children get a file path: for an object edited in memory they applied
    # the file, another patch set than this process's.
    import dataclasses

    from backport_tool.config import MANIFEST_ENV

    patchset.add("fix", "Widget.compute")
    patchset.add("other", "Widget.other")
    manifest = backport_tool.load_manifest(patchset.write())
    apply(manifest, eager=True)
    assert os.environ.get(MANIFEST_ENV) == str(manifest.location)  # as its file says: exported
    revert()
    assert os.environ.get(MANIFEST_ENV) is None
    only_fix = dataclasses.replace(manifest, backports=manifest.backports[:1])
    with caplog.at_level(logging.WARNING, logger="backport_tool"):
        report = apply(only_fix, eager=True)
    assert statuses(report) == {"fix": "applied"}
    assert os.environ.get(MANIFEST_ENV) is None
    assert any("child processes can only be given a file" in m for m in caplog.messages)
