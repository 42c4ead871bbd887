"""The one version decision: does this backport apply to this version, with
these switches? The startup plan stores its answer as is."""

from __future__ import annotations

from packaging.version import Version

from .config import DISABLE_ENV, ENABLE_ENV, Switches
from .manifest import Backport, Manifest
from .report import Decision, Status
from .versions import gate


def decide(
    backport: Backport, version: Version | None, switches: Switches, package: str
) -> Decision:
    """Decide from the manifest entry, the installed version and the switches."""
    if backport.retired:
        return Decision(Status.RETIRED, f"retired: {backport.retired_reason}")
    if switches.off(backport.id):
        # The switches merge the variable and the caller's; either may be it.
        return Decision(
            Status.DISABLED,
            f"disabled by a switch: {DISABLE_ENV}, apply(disable=...) or --disable",
        )
    # The version decides before the opt-in switch: an opt-in backport refused as
    # fixed upstream is reported so, enabled or not, and check still tests that
    # claim against the code; the switch only holds back one that would apply.
    if version is None:
        return Decision(Status.NOT_APPLICABLE, f"{package} is not installed")
    decision = gate(
        package, version, backport.applies_to, backport.fixed_in, backport.applies_to_text
    )
    if decision.fixed_upstream:
        return Decision(Status.FIXED_UPSTREAM, decision.reason)
    if not decision.eligible:
        return Decision(Status.NOT_APPLICABLE, decision.reason)
    if backport.opt_in and not switches.on(backport.id):
        return Decision(
            Status.DISABLED,
            f"opt-in: enable it with {ENABLE_ENV}={backport.id}, apply(enable="
            f"[{backport.id!r}]) or --enable {backport.id}",
        )
    return Decision(Status.READY, decision.reason)


def as_applied(decision: Decision) -> Decision:
    """``decision`` as apply reports it: apply refuses a backport declared fixed
    upstream from the version alone, at startup, without reading the code, so
    it says the claim is unverified and which command tests it."""
    if decision.status is not Status.FIXED_UPSTREAM:
        return decision
    return Decision(
        decision.status,
        f"{decision.reason}; not verified: apply does not read the code, "
        "`backport-tool check` tests the claim against it",
    )


def _sites(backport: Backport) -> dict[str, str]:
    # Every binding the backport changes -> the target it belongs to. A
    # registry target changes no binding, but each of its entries: two
    # backports may edit one container, never one entry of it.
    sites: dict[str, str] = {}
    for t in backport.targets:
        if t.edits_registry:
            for label in [str(e.key) for e in t.add] + [str(r) for r in t.remove]:
                sites[f"entry {label} of {t.symbol}"] = f"entry {label} of {t.symbol}"
        else:
            sites |= {str(site): str(t.symbol) for site in t.sites}
    return sites


def _own(backport: Backport) -> set[str]:
    # The sites that are the backport's targets (or their entries), not copies.
    return {site for site, target in _sites(backport).items() if site == target} | {
        str(t.symbol) for t in backport.targets if not t.edits_registry
    }


def decide_all(
    manifest: Manifest, version: Version | None, switches: Switches
) -> dict[str, Decision]:
    """:func:`decide` for every backport, then the rule that two backports never
    change one binding: an enabled opt-in backport takes a target from the
    default ones; any other pair that shares a binding (a target, or a declared
    copy such as a re-export) is a conflict, and neither applies."""
    decisions = {b.id: decide(b, version, switches, manifest.package) for b in manifest.backports}
    owners: dict[str, list[Backport]] = {}
    for backport in manifest.backports:
        if decisions[backport.id].status is Status.READY:
            for site in _sites(backport):
                owners.setdefault(site, []).append(backport)
    # An enabled opt-in backport of a target first takes it from the defaults;
    # two enabled opt-in backports of one target leave it to the defaults.
    for site, backports in owners.items():
        chosen = [b for b in backports if b.opt_in and site in _own(b)]
        if len(chosen) > 1:
            _fail(decisions, chosen, site, opt_in=True)
        elif chosen:
            for backport in backports:
                if not backport.opt_in and decisions[backport.id].status is Status.READY:
                    decisions[backport.id] = Decision(
                        Status.DISABLED,
                        f"opt-in backport {chosen[0].id} is enabled and replaces {site} instead",
                    )
    for site, backports in owners.items():
        live = [b for b in backports if decisions[b.id].status is Status.READY]
        if len(live) > 1:
            _fail(decisions, live, site, opt_in=False)
    return decisions


def _fail(
    decisions: dict[str, Decision], backports: list[Backport], site: str, *, opt_in: bool
) -> None:
    names = " and ".join(b.id for b in backports)
    for backport in backports:
        if opt_in:
            reason = (
                f"opt-in backports {names} are both enabled and both replace {site}; "
                "enable one of them"
            )
        else:
            reason = (
                f"conflict: backports {names} both change {site}{_as_copy(backport, site)}; "
                "a binding belongs to one backport only: merge them, or disable one"
            )
        decisions[backport.id] = Decision(Status.FAILED, reason)


def _as_copy(backport: Backport, site: str) -> str:
    target = _sites(backport)[site]
    return f" (declared as a copy of {target} in {backport.id})" if target != site else ""
