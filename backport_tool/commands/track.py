from __future__ import annotations

import json

from ..track import track


def run(manifest: str | None, upstream: str, *, as_json: bool, quiet: bool) -> int:
    # Quiet keeps the backports whose fixed_in the history contradicts.
    results = [r for r in track(upstream, manifest) if r.disagrees or not quiet]
    if as_json:
        data = [
            {
                "id": r.backport,
                "commit": r.commit,
                "fixed_in": str(r.fixed_in) if r.fixed_in else None,
                "first_release": str(r.first_release) if r.first_release else None,
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
        print(json.dumps(data, indent=2))
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
    return 1 if any(r.disagrees for r in results) else 0
