from __future__ import annotations

from ..api import manifest_for
from ..tracking import track
from ._output import dump


def run(manifest: str | None, upstream: str, *, as_json: bool, quiet: bool) -> int:
    # Quiet keeps the backports whose fixed_in the history contradicts, and
    # those whose upstream.commit the clone does not have.
    loaded = manifest_for(manifest)
    results = [r for r in track(upstream, loaded) if r.failed or not quiet]
    if as_json:
        backports = [
            {
                "id": r.backport,
                "commit": r.commit,
                "fixed_in": str(r.fixed_in) if r.fixed_in else None,
                "found": r.found,
                "first_release": str(r.first_release) if r.first_release else None,
                "fixed_from": str(r.fixed_from) if r.fixed_from else None,
                "disagrees": r.disagrees,
                "message": r.message,
                "tags": [
                    {
                        "tag": t.tag,
                        "state": t.state.value,
                        "applied_by": t.applied_by,
                        "reverted_by": t.reverted_by,
                    }
                    for t in r.tags
                ],
            }
            for r in results
        ]
        print(dump("track", {"manifest": str(loaded.path), "backports": backports}))
    else:
        for result in results:
            print(f"{result.backport}: {result.commit or '-'}")
            for tag in result.tags:
                how = ""
                if tag.applied_by:
                    how = f" ({tag.applied_by[:12]})"
                elif tag.reverted_by:
                    how = f" (by {tag.reverted_by[:12]})"
                print(f"  {tag.tag:<20} {tag.state}{how}")
            print(f"  {result.message}")
    return 1 if any(r.failed for r in results) else 0
