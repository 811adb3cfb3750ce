"""The sender process against the edge stand-in (a real process on a loopback port) over a real outbox
file: merging, bad rows to quarantine, retry classes (5xx, 429, timeouts, 400 blips, lasting 400s),
SIGKILL mid-load, and the supervisor restarting a killed sender. Every notification is counted at the
stand-in."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from targetd.v1 import delivery_pb2
from targetd_server.config import Settings
from targetd_server.delivery.outbox_files import claim_outbox_path
from targetd_server.delivery.sender_protocol import settings_line
from targetd_server.delivery.store import OutboxStore, now_ms
from targetd_server.delivery.supervisor import SenderSupervisor
from tests.delivery.support import CLIENT, ORG, EdgeProcess
from tests.support import eventually, eventually_async


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[EdgeProcess]:
    with EdgeProcess(tmp_path / "edge") as proc:
        yield proc


def _settings(edge: EdgeProcess, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "client": CLIENT,
        "organization_id": ORG,
        "server_domain": f"127.0.0.1:{edge.port}",
        "edge_host_template": f"localhost:{edge.port}",
        "secure": False,
        "timeout": 2000,
        "outbox_concurrency": 8,
        "outbox_batch_size": 16,
        "outbox_max_backoff": 0.2,
        "outbox_flush_timeout": 2.0,
        "log_format": "text",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def _request(visitor: str, note_id: str, *, channel: int = delivery_pb2.CHANNEL_TYPE_WEB) -> bytes:
    request = delivery_pb2.DeliveryRequest(request_id=f"r-{note_id}")
    request.id.tnt_id = visitor
    request.context.channel = channel  # type: ignore[assignment]
    request.context.address.url = "https://www.acme.example/"
    note = request.notifications.add(id=note_id, impression_id=f"i-{note_id}", timestamp=now_ms())
    note.type = delivery_pb2.METRIC_TYPE_DISPLAY
    note.mbox.name = "home"
    return request.SerializeToString()


def _store(path: Path, payloads: list[bytes], *, session: str = "s-1") -> None:
    store = OutboxStore.open(path)
    try:
        at = now_ms()
        store.insert([(at, session, None, payload) for payload in payloads])
    finally:
        store.close()


def _stats(path: Path) -> tuple[int, int]:
    store = OutboxStore.open(path)
    try:
        stats = store.stats()
        return stats.backlog, stats.quarantined
    finally:
        store.close()


def _quarantine_reasons(path: Path) -> list[str]:
    store = OutboxStore.open(path)
    try:
        return [row.reason for row in store.list_quarantine()]
    finally:
        store.close()


class SenderProcess:
    def __init__(self, path: Path, settings: Settings) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "targetd_server.delivery.sender", str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
        )
        assert self.proc.stdin is not None
        self.proc.stdin.write(settings_line(settings))
        self.proc.stdin.flush()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=20)
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return code

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)
        assert self.proc.stdin is not None
        self.proc.stdin.close()


def _ids(edge: EdgeProcess) -> list[str]:
    return [str(n["notification"]["id"]) for n in edge.notifications()]


def _delivered(edge: EdgeProcess, expected: set[str], timeout: float = 30.0) -> list[str]:
    def all_there() -> list[str]:
        ids = _ids(edge)
        missing = expected - set(ids)
        assert not missing, f"{len(missing)} of {len(expected)} notifications not at the stand-in yet"
        return ids

    return eventually(all_there, timeout=timeout, interval=0.1)


def test_delivers_merges_and_quarantines_bad_rows(edge: EdgeProcess, tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    good = [_request(f"visitor-{i % 5}", f"n-{i}") for i in range(60)]  # 5 visitors: merged per visitor
    bad = [b"\xff\xfe not a protobuf", _request("visitor-x", "bad-enum", channel=99)]
    _store(path, good[:30] + bad + good[30:])
    sender = SenderProcess(path, _settings(edge))
    try:
        ids = _delivered(edge, {f"n-{i}" for i in range(60)})
        eventually(lambda: _stats(path) == (0, 2))
    finally:
        assert sender.stop() == 0
    assert len(ids) == 60  # nothing was retried: no duplicate
    posts = [r for r in edge.requests() if r.get("path", "").startswith("/rest/v1/delivery")]
    assert len(posts) < 60  # merged: one visitor and context per request
    reasons = _quarantine_reasons(path)
    assert any("undecodable" in r for r in reasons), reasons
    assert any("Delivery API JSON" in r for r in reasons), reasons


@pytest.mark.parametrize("status", [500, 503, 429, 408])
def test_retryable_periods_lose_nothing(edge: EdgeProcess, tmp_path: Path, status: int) -> None:
    path = tmp_path / "outbox.sqlite3"
    edge.fault(status=status)
    _store(path, [_request(f"v-{i}", f"n-{i}") for i in range(40)])
    sender = SenderProcess(path, _settings(edge))
    try:
        eventually(lambda: len([r for r in edge.requests() if r.get("status") == "fault"]) >= 10)
        assert _ids(edge) == []  # nothing accepted during the period
        edge.clear_fault()
        _delivered(edge, {f"n-{i}" for i in range(40)})
        eventually(lambda: _stats(path) == (0, 0))
    finally:
        assert sender.stop() == 0


def test_slow_answers_and_timeouts_are_retried(edge: EdgeProcess, tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    edge.fault(status=0, delay_ms=1500, count=4)  # slow answers past the 1 s timeout: retried
    _store(path, [_request(f"v-{i}", f"n-{i}") for i in range(20)])
    sender = SenderProcess(path, _settings(edge, timeout=1000))
    try:
        ids = _delivered(edge, {f"n-{i}" for i in range(20)})
        eventually(lambda: _stats(path) == (0, 0))
    finally:
        assert sender.stop() == 0
    assert len(ids) <= 20 + 4  # a timed-out request the stand-in answered late is sent again


def test_a_blip_of_400s_loses_nothing(edge: EdgeProcess, tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    edge.fault(status=400, count=6)
    _store(path, [_request(f"v-{i}", f"n-{i}") for i in range(30)])
    sender = SenderProcess(path, _settings(edge))
    try:
        _delivered(edge, {f"n-{i}" for i in range(30)})
        eventually(lambda: _stats(path) == (0, 0))  # none quarantined
    finally:
        assert sender.stop() == 0


def test_lasting_rejections_are_quarantined_then_requeued(edge: EdgeProcess, tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    edge.fault(status=400)
    _store(path, [_request(f"v-{i}", f"n-{i}") for i in range(5)])
    sender = SenderProcess(path, _settings(edge, outbox_reject_retries=2))
    try:
        eventually(lambda: _stats(path) == (0, 5))
        assert all("rejected 3 times" in r for r in _quarantine_reasons(path))
        edge.clear_fault()
        store = OutboxStore.open(path)
        try:
            assert store.requeue() == 5
        finally:
            store.close()
        _delivered(edge, {f"n-{i}" for i in range(5)})
        eventually(lambda: _stats(path) == (0, 0))
    finally:
        assert sender.stop() == 0


def test_sigkill_mid_load_then_a_new_sender_delivers_everything(edge: EdgeProcess, tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    edge.fault(status=0, delay_ms=300)  # every answer slow: requests in flight when the kill comes
    _store(path, [_request(f"v-{i}", f"n-{i}") for i in range(200)])
    settings = _settings(edge, timeout=1000)
    first = SenderProcess(path, settings)
    eventually(lambda: len(edge.requests()) >= 8)
    first.kill()
    edge.clear_fault()
    second = SenderProcess(path, settings)
    try:
        ids = _delivered(edge, {f"n-{i}" for i in range(200)}, timeout=40.0)  # leases run out first
        eventually(lambda: _stats(path) == (0, 0))
    finally:
        assert second.stop() == 0
    assert len(ids) <= 200 + 8 * 3  # duplicates: at most what was in flight at the kill


def test_rows_of_a_gone_worker_are_adopted_and_delivered(edge: EdgeProcess, tmp_path: Path) -> None:
    directory = tmp_path / "data"
    own, own_fd = claim_outbox_path(directory)
    gone, gone_fd = claim_outbox_path(directory)  # a second worker sharing the data_dir
    _store(gone, [_request(f"v-{i}", f"n-{i}") for i in range(3)])
    os.close(gone_fd)  # that worker is gone, its rows on disk
    OutboxStore.open(own).close()
    sender = SenderProcess(own, _settings(edge))
    try:
        _delivered(edge, {"n-0", "n-1", "n-2"})
        eventually(lambda: _stats(gone) == (0, 0))
    finally:
        assert sender.stop() == 0
        os.close(own_fd)


async def test_supervisor_restarts_a_killed_sender(edge: EdgeProcess, tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    OutboxStore.open(path).close()
    supervisor = SenderSupervisor(_settings(edge), path)
    supervisor.start()
    try:
        await eventually_async(_state_is(supervisor, "running"))
        first = supervisor.pid
        assert first > 0
        os.kill(first, signal.SIGKILL)
        await eventually_async(_restarted(supervisor, first), timeout=15.0)
        assert supervisor.restarts == 1
        await asyncio.to_thread(_store, path, [_request(f"v-{i}", f"n-{i}") for i in range(10)])
        await asyncio.to_thread(_delivered, edge, {f"n-{i}" for i in range(10)})
        await eventually_async(_delivered_rows(supervisor, 10))
    finally:
        await supervisor.stop()
    assert supervisor.state == "stopped"
    assert supervisor.pid == 0


def _state_is(supervisor: SenderSupervisor, state: str):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        return supervisor.state == state

    return check


def _restarted(supervisor: SenderSupervisor, old_pid: int):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        return supervisor.state == "running" and supervisor.pid not in (0, old_pid)

    return check


def _delivered_rows(supervisor: SenderSupervisor, rows: int):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        return supervisor.delivered_rows >= rows

    return check


def test_merge_key_joins_rows_that_differ_only_in_notifications_telemetry_and_request_id() -> None:
    from targetd_server.delivery.merge import merge_key
    from targetd_server.delivery.store import Row

    def key(payload: bytes, session: str | None = "s-1", cluster: str | None = None) -> bytes:
        request = delivery_pb2.DeliveryRequest.FromString(payload)
        return merge_key(Row(1, payload, session, cluster, 0, 0), request)[0]

    base = _request("visitor-1", "n-1")
    other = delivery_pb2.DeliveryRequest.FromString(_request("visitor-1", "n-2"))
    other.telemetry.entries.add(request_id="t", execution=1.5)
    assert key(base) == key(other.SerializeToString())  # notification, request id and telemetry differ
    changed = []
    for change in (
        lambda r: setattr(r.id, "tnt_id", "visitor-2"),
        lambda r: setattr(r.context.address, "url", "https://other.example/"),
        lambda r: setattr(r.property, "token", "p"),
        lambda r: setattr(r, "environment_id", 7),
        lambda r: setattr(r, "impression_id", "i"),
        lambda r: r.execute.mboxes.add(name="m"),
    ):
        request = delivery_pb2.DeliveryRequest.FromString(base)
        change(request)
        changed.append(key(request.SerializeToString()))
    assert key(base) not in changed and len(set(changed)) == len(changed)
    assert key(base, session="s-2") != key(base) and key(base, cluster="35") != key(base)
    found, context = merge_key(Row(1, base, None, None, 0, 0), delivery_pb2.DeliveryRequest.FromString(base))
    assert context == delivery_pb2.DeliveryRequest.FromString(base).context.SerializeToString(
        deterministic=True
    )
    assert found != key(base)  # no session is not session "s-1"
