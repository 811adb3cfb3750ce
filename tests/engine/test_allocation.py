"""Allocation hashing and the visitor id it uses."""

from __future__ import annotations

from targetd.v1 import delivery_pb2
from targetd_server.engine.allocation import allocation_for, visitor_id_for_allocation


def test_reference_values() -> None:
    # Verified against the SDKs (reference §4.6): murmur3 x86_32 over UTF-16LE, |h| % 10000 / 100.
    assert allocation_for("someClientId.125873.338e3c1e51f7416a8e1ccba4f81acea0.28_0.0") == 48.44
    assert allocation_for("someClientId.125873.07327024324407615852294135870030620007.0") == 18.53


def test_range_and_two_decimals() -> None:
    for number in range(500):
        value = allocation_for(f"c.1.visitor{number}.0")
        assert 0 <= value <= 99.99
        assert round(value, 2) == value


def test_visitor_precedence() -> None:
    both = delivery_pb2.VisitorId(tnt_id="tnt.28_0", marketing_cloud_visitor_id="mcid", third_party_id="3p")
    assert visitor_id_for_allocation(both, "fresh") == "mcid"
    assert (
        visitor_id_for_allocation(delivery_pb2.VisitorId(tnt_id="tnt.28_0", third_party_id="3p"), "f")
        == "tnt"
    )
    assert visitor_id_for_allocation(delivery_pb2.VisitorId(third_party_id="3p.28_0"), "f") == "3p.28_0"
    assert visitor_id_for_allocation(delivery_pb2.VisitorId(), "fresh") == "fresh"
    assert visitor_id_for_allocation(None, "fresh") == "fresh"
