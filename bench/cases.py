"""The benchmark's requests, as Delivery API JSON (camelCase), shared by every runner.

Standard library only: the Adobe SDK peer (``sdk_peer.py``) imports it from its own virtualenv.
Every request carries ``context.geo`` (the artifact has geo targeting on; without geo Adobe's SDK does a
blocking IP lookup, reference §9) and a fixed visitor ``tntId``, as ``bench/engine.py`` does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ARTIFACT = (REPO / ".." / "shared" / "conformance" / "artifact.json").resolve()
CLIENT = "targettesting"
ORGANIZATION_ID = "BENCH0000000000000000000@AdobeOrg"
LOCATION_HINT = "28"
MBOX = "mbox-magician"  # two json-offer A/B rules: one decision with content for any visitor
CONTEXT: dict[str, Any] = {
    "channel": "web",
    "address": {"url": "http://local-target-test/"},
    "userAgent": (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_3) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/80.0.3987.163 Safari/537.36"
    ),
    "geo": {"city": "SAN FRANCISCO", "countryCode": "US", "stateCode": "CA", "latitude": 37.75},
}
# No edge-cluster suffix (".28_0") on the tntId: with one, targetd (like Node's SDK) sends the visitor's
# notifications to that cluster's edge host (mboxedgeNN.tt.omtrdc.net) instead of --server-domain, and the
# bench must not try to leave the machine.
VISITOR: dict[str, Any] = {"tntId": "338e3c1e51f7416a8e1ccba4f81acea0"}

# Case names, in table order.
EXECUTE_1 = "execute 1 mbox"
PREFETCH_ALL = "prefetch all rule mboxes"
ATTRIBUTES_1 = "get_attributes 1 mbox"
CASES = (EXECUTE_1, PREFETCH_ALL, ATTRIBUTES_1)


def load_artifact(path: Path = ARTIFACT) -> dict[str, Any]:
    """The artifact JSON, read in place."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def rule_mboxes(artifact: dict[str, Any]) -> list[str]:
    """Every mbox that has rules, sorted (the global mbox included, as in reference §9's prefetch)."""
    return sorted(artifact["rules"]["mboxes"])


def delivery_request(case: str, artifact: dict[str, Any]) -> dict[str, Any]:
    """The Delivery request of ``case``. For get_attributes it is the base request the mbox is added to."""
    base: dict[str, Any] = {"id": dict(VISITOR), "context": json.loads(json.dumps(CONTEXT))}
    if case == EXECUTE_1:
        return {**base, "execute": {"mboxes": [{"name": MBOX, "index": 1}]}}
    if case == PREFETCH_ALL:
        mboxes = [{"name": name, "index": i} for i, name in enumerate(rule_mboxes(artifact), 1)]
        return {**base, "prefetch": {"mboxes": mboxes}}
    if case == ATTRIBUTES_1:
        return base
    raise ValueError(f"unknown case {case!r}")


def attribute_mboxes(case: str) -> list[str]:
    """The mbox names passed to get_attributes for ``case`` (empty for get_offers cases)."""
    return [MBOX] if case == ATTRIBUTES_1 else []
