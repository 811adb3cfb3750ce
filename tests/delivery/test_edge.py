"""The local edge stand-in's own contract: artifacts with ETag/304, the geo table, fault injection."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from tests.delivery.support import SAMPLE, EdgeProcess, http_json

RULES = "/acmeclient/production/v1/rules.json"


def test_rules_with_etag_and_304(edge: EdgeProcess) -> None:
    with urllib.request.urlopen(edge.base + RULES, timeout=10) as reply:
        body = reply.read()
        etag = reply.headers["ETag"]
    assert body == (SAMPLE / "acmeclient/production/v1/rules.json").read_bytes()
    assert etag
    request = urllib.request.Request(edge.base + RULES, headers={"If-None-Match": etag})
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=10)
    assert raised.value.code == 304
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(edge.base + "/../../etc/passwd/rules.json", timeout=10)
    assert missing.value.code == 404


def test_geo_table(edge: EdgeProcess) -> None:
    request = urllib.request.Request(edge.base + "/v1/geo", headers={"x-forwarded-for": "203.0.113.10"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        import json

        data = json.loads(reply.read())
    assert data["x-geo-country-code"] == "US"
    assert data["x-forwarded-for"] == "203.0.113.10"
    assert http_json("GET", edge.base + "/v1/geo")["x-geo-country-code"] == "DE"  # the default entry


def test_fault_injection_counts_down(clean_edge: EdgeProcess) -> None:
    clean_edge.fault(status=500, count=2, path="/acmeclient")
    for _ in range(2):
        with pytest.raises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(clean_edge.base + RULES, timeout=10)
        assert raised.value.code == 500
    with urllib.request.urlopen(clean_edge.base + RULES, timeout=10) as reply:
        assert reply.status == 200


def test_health_says_it_is_a_stand_in(edge: EdgeProcess) -> None:
    health = edge.call("GET", "/_edge/health")
    assert health == {"status": "ok", "client": "acmeclient", "standIn": True}
