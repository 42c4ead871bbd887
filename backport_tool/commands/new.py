from __future__ import annotations

from . import _output


def run(
    manifest: str,
    backport_id: str,
    targets: list[str],
    *,
    package: str | None,
    as_json: bool,
    quiet: bool,
) -> int:
    # As in the lock command: only new and lock need ruamel.yaml.
    from ..scaffold import scaffold  # noqa: PLC0415

    written = scaffold(manifest, backport_id, targets, package=package)
    manifest_path, module = written
    if as_json:
        print(_output.dump("new", {"id": backport_id, **written.to_dict()}))
    elif quiet:
        print(f"{manifest_path}\n{module}")
    else:
        print(f"wrote {module}")
        print(
            f"added {backport_id} to {manifest_path} (signature, fingerprint and copies, as "
            "far as the installed code has them)"
        )
        print(
            "next: implement the replacement, upstream_probe and selftest in the module, fill "
            "in summary and upstream, then run `backport-tool check --selftest`"
        )
    return 0
