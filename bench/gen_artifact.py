"""Synthetic artifacts with Nx the activities of ``artifact.json``, for the scale rows of the benchmark.

``python bench/gen_artifact.py --factor 100 --out /tmp/artifact-100x.json``

Copy k (1 ≤ k < N) of every activity gets a new activity id (``id + k * 10_000_000``), new rule keys and
event tokens, and a location of its own: an mbox activity on ``name`` moves to the new mbox ``name~k``
(listed in ``localMboxes``), a view activity on ``v`` to the new view ``v~k`` (in ``localViews``). Global-mbox
(pageLoad) activities stay on the global mbox, as a bigger account's would. So the original rules, and so
every benchmark request, are unchanged: an engine that indexes rules by location decides ``execute 1 mbox``
in the same time at any size, and the artifact grows about Nx in activities, rules and bytes.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path
from typing import Any

ID_STRIDE = 10_000_000


def _clone_rule(rule: dict[str, Any], k: int, location: str | None) -> dict[str, Any]:
    new = copy.deepcopy(rule)
    new["activityId"] = rule["activityId"] + k * ID_STRIDE
    new["ruleKey"] = f"{rule['ruleKey']}~{k}"
    meta = new.setdefault("meta", {})
    if "activity.id" in meta:
        meta["activity.id"] = new["activityId"]
    if "activity.name" in meta:
        meta["activity.name"] = f"{meta['activity.name']} ~{k}"
    consequence = new.get("consequence", {})
    if location is not None:
        meta["location.name"] = location
        if "name" in consequence:
            consequence["name"] = location
    for option in consequence.get("options", []) or []:
        if "eventToken" in option:
            option["eventToken"] = f"{option['eventToken']}~{k}"
    return new


def scale(artifact: dict[str, Any], factor: int) -> dict[str, Any]:
    """A copy of ``artifact`` with ``factor`` x its activities (``factor`` ≥ 1)."""
    if factor < 1:
        raise ValueError("factor must be at least 1")
    out = copy.deepcopy(artifact)
    global_mbox = artifact.get("globalMbox", "target-global-mbox")
    mboxes: dict[str, list[dict[str, Any]]] = out["rules"]["mboxes"]
    views: dict[str, list[dict[str, Any]]] = out["rules"].setdefault("views", {})
    local_mboxes: list[str] = out.setdefault("localMboxes", [])
    local_views: list[str] = out.setdefault("localViews", [])
    for k in range(1, factor):
        for name, rules in artifact["rules"]["mboxes"].items():
            if name == global_mbox:
                mboxes[name].extend(_clone_rule(rule, k, None) for rule in rules)
                continue
            new_name = f"{name}~{k}"
            mboxes[new_name] = [_clone_rule(rule, k, new_name) for rule in rules]
            local_mboxes.append(new_name)
        for name, rules in artifact["rules"].get("views", {}).items():
            new_name = f"{name}~{k}"
            views[new_name] = [_clone_rule(rule, k, new_name) for rule in rules]
            local_views.append(new_name)
    return out


def activity_count(artifact: dict[str, Any]) -> int:
    return len({r["activityId"] for kind in artifact["rules"].values() for rs in kind.values() for r in rs})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factor", type=int, required=True, help="activities multiplier (1, 10, 100, ...)")
    parser.add_argument("--out", required=True, help="where to write the artifact JSON")
    parser.add_argument(
        "--source", default=None, help="artifact to scale (default: the shared artifact.json)"
    )
    args = parser.parse_args()
    import cases

    source = Path(args.source) if args.source else cases.ARTIFACT
    artifact = json.loads(source.read_text(encoding="utf-8"))
    scaled = scale(artifact, args.factor)
    Path(args.out).write_text(json.dumps(scaled, separators=(",", ":")), encoding="utf-8")
    print(
        json.dumps(
            {
                "factor": args.factor,
                "activities": activity_count(scaled),
                "bytes": Path(args.out).stat().st_size,
                "out": args.out,
            }
        )
    )


if __name__ == "__main__":
    main()
