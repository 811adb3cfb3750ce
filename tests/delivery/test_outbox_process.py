"""The durable outbox end to end: on-device display notifications and telemetry reach the Delivery API
across an edge outage, a SIGKILL of targetd and a graceful shutdown — every one counted, none lost, none
duplicated (the outage means the edge accepted nothing before the kill, so at-least-once allows no
duplicate here)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from targetd.v1 import delivery_pb2
from tests.delivery.grpcutil import Client
from tests.delivery.support import EdgeProcess, targetd
from tests.support import eventually

CONTEXT = {"channel": "web", "address": {"url": "https://www.acme.example/"}}


def _execute(client: Client, count: int, prefix: str) -> list[str]:
    """``count`` on-device executes of ``home``; returns the requestIds (one notification each)."""
    ids = []
    for i in range(count):
        request_id = f"{prefix}-{i}"
        envelope = client.offers(
            {
                "requestId": request_id,
                "context": CONTEXT,
                "execute": {"mboxes": [{"name": "home", "index": 1}]},
            }
        )
        assert envelope.meta.decisioning_method == delivery_pb2.DECISIONING_METHOD_ON_DEVICE
        ids.append(request_id)
    return ids


def _outbox_rows(data_dir: Path) -> int:
    import sqlite3

    with sqlite3.connect(data_dir / "outbox.sqlite3") as conn:
        return int(conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])


def _received(edge: EdgeProcess, count: int) -> tuple[Counter[str], Counter[str]]:
    notes = edge.wait_notifications(count)
    telemetry = edge.telemetry()
    by_id = Counter(r["notification"]["id"] for r in notes)
    # (the artifact download's own entry, requestId "ArtifactDownload", rides along with the first one)
    by_request = Counter(
        r["entry"]["requestId"] for r in telemetry if r["entry"]["requestId"] != "ArtifactDownload"
    )
    return by_id, by_request


def test_outbox_survives_an_edge_outage(clean_edge: EdgeProcess, data_dir: Path) -> None:
    clean_edge.fault(status=503)  # the Delivery API is down until cleared
    with targetd(clean_edge, data_dir, "on-device") as proc, Client(proc) as client:
        request_ids = _execute(client, 20, "outage")
        # Written before the RPC returned; nothing accepted while the edge fails.
        assert _outbox_rows(data_dir) >= 1
        eventually(lambda: len([r for r in clean_edge.requests() if r.get("status") == "fault"]) >= 2)
        assert clean_edge.notifications() == []
        clean_edge.clear_fault()
        by_id, by_request = _received(clean_edge, 20)
        assert len(by_id) == 20 and set(by_id.values()) == {1}  # all delivered, each once
        assert set(by_request) == set(request_ids) and set(by_request.values()) == {1}  # telemetry too
        eventually(lambda: _outbox_rows(data_dir) == 0)  # deleted once accepted


def test_outbox_survives_sigkill(clean_edge: EdgeProcess, data_dir: Path) -> None:
    clean_edge.fault(status=503)
    with targetd(clean_edge, data_dir, "on-device") as proc, Client(proc) as client:
        request_ids = _execute(client, 25, "killed")
        proc.stop(kill=True)  # SIGKILL: no flush, no goodbye
    assert _outbox_rows(data_dir) > 0
    assert clean_edge.notifications() == []
    clean_edge.clear_fault()
    with targetd(clean_edge, data_dir, "on-device") as proc, Client(proc) as client:
        by_id, by_request = _received(clean_edge, 25)
        eventually(lambda: _outbox_rows(data_dir) == 0)
    assert len(by_id) == 25 and set(by_id.values()) == {1}
    assert set(by_request) == set(request_ids) and set(by_request.values()) == {1}


def test_graceful_shutdown_flushes_and_keeps_the_rest(clean_edge: EdgeProcess, data_dir: Path) -> None:
    with targetd(clean_edge, data_dir, "on-device") as proc, Client(proc) as client:
        _execute(client, 5, "flushed")
    # SIGTERM: the flush sent them (or they were already sent); nothing is left behind.
    by_id, _ = _received(clean_edge, 5)
    assert len(by_id) == 5
    assert _outbox_rows(data_dir) == 0

    clean_edge.call("DELETE", "/_edge/notifications")
    clean_edge.fault(status=503)
    with (
        targetd(clean_edge, data_dir, "on-device", "--outbox-flush-timeout", "0.5") as proc,
        Client(proc) as c,
    ):
        _execute(c, 3, "kept")
    assert _outbox_rows(data_dir) == 3  # could not be flushed: kept on disk for the next start
    clean_edge.clear_fault()
    with targetd(clean_edge, data_dir, "on-device") as proc, Client(proc):
        by_id, _ = _received(clean_edge, 3)
    assert len(by_id) == 3 and set(by_id.values()) == {1}


def test_a_full_outbox_refuses_new_rows_but_serves_decisions(clean_edge: EdgeProcess, data_dir: Path) -> None:
    clean_edge.fault(status=503)
    with targetd(clean_edge, data_dir, "on-device", "--outbox-max-rows", "4") as proc, Client(proc) as client:
        _execute(client, 7, "full")  # every decision is served
        assert _outbox_rows(data_dir) == 4  # the oldest four are kept, the rest refused
        clean_edge.clear_fault()
        by_id, by_request = _received(clean_edge, 4)
        eventually(lambda: _outbox_rows(data_dir) == 0)
    assert set(by_request) == {"full-0", "full-1", "full-2", "full-3"}
    assert len(by_id) == 4
