"""Traffic allocation: MurmurHash3 x86 32-bit over the UTF-16LE code units of
``"{client}.{activityId}.{visitorId}.0"`` (seed 0), as Target's SDKs and Guava's ``hashUnencodedChars``.

The allocation is ``abs(hash) % 10000 / 100`` — a value in 0.00 .. 99.99 with two decimals, which rules
compare with ``{"<=": [0, {"var": "allocation"}]}`` and friends.
"""

from __future__ import annotations

import mmh3

from targetd.v1 import delivery_pb2

__all__ = ["CAMPAIGN_BUCKET_SALT", "allocation_for", "visitor_id_for_allocation"]

CAMPAIGN_BUCKET_SALT = "0"
_TOTAL_BUCKETS = 10000


def allocation_for(device_id: str) -> float:
    """Allocation (0.00-99.99) of a full device id string ``client.activity.visitor.salt``.

    JS strings are UTF-16: characters outside the BMP hash as their two surrogate units, which is exactly
    what ``encode("utf-16-le")`` produces.
    """
    signed = mmh3.hash(device_id.encode("utf-16-le", "surrogatepass"), 0, signed=True)
    bucket = abs(signed) % _TOTAL_BUCKETS
    # Node: Math.round(bucket / 10000 * 100 * 100) / 100 == bucket / 100 rounded to the nearest double.
    return bucket / 100


def visitor_id_for_allocation(visitor: delivery_pb2.VisitorId | None, fallback: str) -> str:
    """The visitor part of the device id (Node ``getOrCreateVisitorId``): the marketingCloudVisitorId,
    else the tntId before its first dot (the location-hint suffix is not part of the identity), else the
    thirdPartyId, else ``fallback`` (a fresh id, computed once per request by the caller)."""
    if visitor is not None:
        if visitor.marketing_cloud_visitor_id:
            return visitor.marketing_cloud_visitor_id
        if visitor.tnt_id:
            return visitor.tnt_id.split(".", 1)[0]
        if visitor.third_party_id:
            return visitor.third_party_id
    return fallback
