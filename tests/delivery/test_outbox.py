"""The outbox in-process: a real SQLite file, the real Delivery API client and the edge stand-in as a real
HTTP server on loopback (no mocks): batching, telemetry merge, dead rows, bound, re-open."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from targetd.v1 import delivery_pb2
from targetd_edge import EdgeServer, Fault
from targetd_server.config import Settings
from targetd_server.delivery import DeliveryApi, Outbox
from tests.delivery.support import CLIENT, ORG, SAMPLE, edge_in_process
from tests.support import eventually


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop running in a thread of its own, as the server's: the Delivery API client lives on it
    and the outbox's worker threads send through it (``DeliveryApi.send``)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-loop", daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def _api(edge: EdgeServer, loop: asyncio.AbstractEventLoop) -> DeliveryApi:
    settings = Settings(
        client=CLIENT, organization_id=ORG, server_domain=f"127.0.0.1:{edge.port}", secure=False
    )

    async def create() -> DeliveryApi:
        return DeliveryApi(settings)  # constructed on the loop: bound to it

    return asyncio.run_coroutine_threadsafe(create(), loop).result(10)


def _close(api: DeliveryApi, loop: asyncio.AbstractEventLoop) -> None:
    asyncio.run_coroutine_threadsafe(api.aclose(), loop).result(10)


def _outbox(path: Path, api: DeliveryApi, **options: Any) -> Outbox:
    return Outbox(
        path,
        lambda request, session, cluster, timeout: api.send(
            request, session_id=session, cluster=cluster, timeout=timeout
        ),
        max_backoff=0.2,
        **options,
    )


def _notification(i: int) -> delivery_pb2.DeliveryRequest:
    request = delivery_pb2.DeliveryRequest(request_id=f"r-{i}")
    request.id.tnt_id = f"visitor-{i}"
    note = request.notifications.add(id=f"n-{i}", type=delivery_pb2.METRIC_TYPE_DISPLAY, timestamp=1000 + i)
    note.mbox.name = "home"
    return request


def _telemetry(i: int) -> delivery_pb2.DeliveryRequest:
    request = delivery_pb2.DeliveryRequest(request_id=f"t-{i}")
    request.telemetry.entries.add(request_id=f"t-{i}", timestamp=1000 + i, execution=1.0)
    return request


def test_rows_are_sent_and_deleted_telemetry_merged(tmp_path: Path, loop: asyncio.AbstractEventLoop) -> None:
    with edge_in_process(SAMPLE, tmp_path / "edge") as edge:
        api = _api(edge, loop)
        outbox = _outbox(tmp_path / "outbox.sqlite3", api)
        for i in range(3):
            assert outbox.enqueue(_notification(i), session_id="s", cluster=None)
        for i in range(5):
            assert outbox.enqueue(_telemetry(i), session_id=None, cluster=None)
        outbox.start()
        eventually(lambda: outbox.stats.pending == 0)
        outbox.close(1.0)
        _close(api, loop)
        # (sent concurrently: arrival order is not guaranteed)
        assert sorted(n["notification"]["id"] for n in edge.store.notifications()) == ["n-0", "n-1", "n-2"]
        telemetry = edge.store.telemetry()
        assert sorted(t["entry"]["requestId"] for t in telemetry) == [f"t-{i}" for i in range(5)]
        assert len({t["requestId"] for t in telemetry}) == 1  # five rows, one merged request
        assert outbox.stats.sent == 8


def test_rejected_rows_are_kept_dead_and_retryable_ones_retried(
    tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    with edge_in_process(SAMPLE, tmp_path / "edge") as edge:
        api = _api(edge, loop)
        path = tmp_path / "outbox.sqlite3"
        edge.fault = Fault(status=400, count=1)  # one permanent rejection
        outbox = _outbox(path, api)
        outbox.enqueue(_notification(0), session_id="s", cluster=None)
        outbox.start()
        eventually(lambda: outbox.stats.dead == 1)
        edge.fault = Fault(status=502, count=3)  # then a transient failure, retried with backoff
        outbox.enqueue(_notification(1), session_id="s", cluster=None)
        eventually(lambda: outbox.stats.sent == 1)
        assert outbox.stats.failed_rounds >= 3
        outbox.close(1.0)
        _close(api, loop)
        assert [n["notification"]["id"] for n in edge.store.notifications()] == ["n-1"]
        with sqlite3.connect(path) as conn:
            dead = conn.execute("SELECT dead, last_error FROM outbox").fetchall()
        assert len(dead) == 1 and dead[0][0] == 1 and "400" in dead[0][1]


def test_bound_and_reopen(tmp_path: Path, loop: asyncio.AbstractEventLoop) -> None:
    with edge_in_process(SAMPLE, tmp_path / "edge") as edge:
        api = _api(edge, loop)
        path = tmp_path / "outbox.sqlite3"
        outbox = _outbox(path, api, max_rows=2)
        assert outbox.enqueue(_notification(0), session_id="s", cluster=None)
        assert outbox.enqueue(_notification(1), session_id="s", cluster=None)
        assert not outbox.enqueue(_notification(2), session_id="s", cluster=None)  # full: refused
        assert outbox.stats.dropped == 1
        outbox.close(0)  # never started: everything stays on disk
        reopened = _outbox(path, api)
        assert reopened.stats.pending == 2
        reopened.start()
        eventually(lambda: reopened.stats.pending == 0)
        reopened.close(1.0)
        _close(api, loop)
        assert sorted(n["notification"]["id"] for n in edge.store.notifications()) == ["n-0", "n-1"]


def test_rows_enqueued_after_close_are_kept_for_the_next_start(
    tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    with edge_in_process(SAMPLE, tmp_path / "edge") as edge:
        api = _api(edge, loop)
        path = tmp_path / "outbox.sqlite3"
        outbox = _outbox(path, api)
        outbox.start()
        outbox.close(0.5)
        assert outbox.enqueue(_notification(9), session_id="s", cluster=None)  # a call still in flight
        reopened = _outbox(path, api)
        assert reopened.stats.pending == 1
        reopened.start()
        eventually(lambda: reopened.stats.pending == 0)
        reopened.close(1.0)
        _close(api, loop)
        assert [n["notification"]["id"] for n in edge.store.notifications()] == ["n-9"]


def test_workers_sharing_a_data_dir_get_their_own_outbox(tmp_path: Path) -> None:
    import os

    from targetd_server.delivery.outbox_files import claim_outbox_path

    first, fd1 = claim_outbox_path(tmp_path)
    second, fd2 = claim_outbox_path(tmp_path)
    assert first.name == "outbox.sqlite3"
    assert second.name == "outbox-1.sqlite3"  # the first is locked by a live owner
    os.close(fd1)  # its owner died: a restarted worker adopts its rows
    again, fd3 = claim_outbox_path(tmp_path)
    assert again == first
    os.close(fd2)
    os.close(fd3)


def test_rows_of_a_gone_worker_are_adopted(tmp_path: Path, loop: asyncio.AbstractEventLoop) -> None:
    from targetd_server.delivery.outbox_files import claim_outbox_path

    with edge_in_process(SAMPLE, tmp_path / "edge") as edge:
        api = _api(edge, loop)
        directory = tmp_path / "data"
        path0, fd0 = claim_outbox_path(directory)
        path1, fd1 = claim_outbox_path(directory)  # a second worker sharing the data_dir
        worker1 = _outbox(path1, api, lock_fd=fd1)
        for i in range(3):
            worker1.enqueue(_notification(i), session_id="s", cluster=None)
        worker1.close(0)  # the second worker is gone, its rows on disk (its lock released)
        worker0 = _outbox(path0, api, lock_fd=fd0)
        worker0.start()
        eventually(lambda: worker0.stats.sent == 3)
        worker0.close(1.0)
        _close(api, loop)
        assert sorted(n["notification"]["id"] for n in edge.store.notifications()) == ["n-0", "n-1", "n-2"]
        with sqlite3.connect(path1) as conn:
            assert conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0
