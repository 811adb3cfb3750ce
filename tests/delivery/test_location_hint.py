"""The location-hint request at start (on-device/hybrid without a configured hint), against an edge
stand-in that reports cluster 28."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from targetd_server.calls.cookies import parse_target_cookie
from tests.delivery.grpcutil import Client
from tests.delivery.support import EdgeProcess, targetd
from tests.support import eventually

EXECUTE = {"context": {"channel": "web"}, "execute": {"mboxes": [{"name": "home", "index": 1}]}}


@pytest.fixture
def edge_28(tmp_path: Path) -> Iterator[EdgeProcess]:
    with EdgeProcess(tmp_path / "edge", extra=["--cluster", "28"]) as process:
        yield process


def test_hint_learnt_at_start_is_used_for_new_visitors(edge_28: EdgeProcess, tmp_path: Path) -> None:
    with targetd(edge_28, tmp_path / "targetd", "on-device") as proc, Client(proc) as client:
        eventually(lambda: any(r["query"]["sessionId"] == "ping123" for r in edge_28.requests()))

        def clustered() -> str:
            envelope = client.offers(EXECUTE)
            tnt_id = envelope.response.id.tnt_id
            assert tnt_id.endswith(".28_0"), tnt_id  # generated ids carry the learnt cluster
            assert envelope.target_location_hint_cookie.value == "28"
            return envelope.target_cookie.value

        cookie = eventually(clustered)
        assert parse_target_cookie(cookie).cluster == "28"
        # The notifications of those decisions go to that cluster's host (edge_host_template).
        eventually(lambda: any(r["host"] == f"localhost:{edge_28.port}" for r in edge_28.requests()))


def test_a_failed_hint_request_is_not_fatal(clean_edge: EdgeProcess, tmp_path: Path) -> None:
    clean_edge.fault(status=500, count=1)  # the ping fails
    with targetd(clean_edge, tmp_path / "targetd", "on-device") as proc, Client(proc) as client:

        def ping_statuses() -> bool:
            pings = [r for r in clean_edge.requests() if r["query"].get("sessionId") == "ping123"]
            return [p["status"] for p in pings] == ["fault"]

        eventually(ping_statuses)  # it was tried and it failed; targetd serves all the same
        envelope = client.offers(EXECUTE)
        assert not envelope.response.id.tnt_id.endswith("_0")  # no cluster learnt
        assert not envelope.HasField("target_location_hint_cookie")


@pytest.mark.parametrize("source", ["payload", "file"])
def test_no_hint_request_when_the_rules_are_a_payload_or_a_file(
    clean_edge: EdgeProcess, tmp_path: Path, source: str
) -> None:
    """Offline rules (no Target CDN, maybe no account): targetd does not call Target at start."""
    rules = clean_edge.root / "acmeclient" / "production" / "v1" / "rules.json"
    extra = (
        ["--artifact-payload", f"@{rules}"] if source == "payload" else ["--artifact-location", str(rules)]
    )
    with targetd(clean_edge, tmp_path / "targetd", "on-device", *extra) as proc, Client(proc) as client:
        client.offers(EXECUTE)  # its display notification reaches the edge through the outbox
        eventually(lambda: any(r["body"] and r["body"].get("notifications") for r in clean_edge.requests()))
        assert not [r for r in clean_edge.requests() if r["query"].get("sessionId") == "ping123"]
