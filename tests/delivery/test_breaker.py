"""The sender's per-host circuit breaker: the state machine on a fake clock, then the real ``Sender`` loop
over a real outbox file against a Delivery API that fails and comes back (an in-process fake of
``DeliveryApi.notify`` that counts the requests in flight)."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import sqlite3
from pathlib import Path

import pytest

from targetd.v1 import delivery_pb2
from targetd_server.config import Settings
from targetd_server.delivery import sender as sender_module
from targetd_server.delivery.breaker import OPEN_BASE_S, TRIP_FAILURES, Breaker, Circuits
from targetd_server.delivery.sender import Sender
from targetd_server.delivery.store import OutboxStore, Row, now_ms
from targetd_server.errors import UpstreamError, UpstreamRejectedError
from tests.support import eventually_async


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _breaker(clock: Clock, **kwargs: float) -> Breaker:
    return Breaker(clock=clock, uniform=lambda low, high: high, **kwargs)  # type: ignore[arg-type]


def test_trips_after_failures_in_a_row_and_an_answer_resets_the_count() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    for _ in range(TRIP_FAILURES - 1):
        breaker.failed()
    breaker.answered()  # the host answered: the count starts again
    for _ in range(TRIP_FAILURES - 1):
        breaker.failed()
        assert breaker.allow() and breaker.state == "closed"
    breaker.failed()
    assert breaker.state == "open" and breaker.trips == 1
    assert not breaker.allow() and not breaker.ready()
    assert breaker.retry_at == clock.now + OPEN_BASE_S


def test_one_probe_after_the_period_doubling_per_failed_probe_up_to_the_cap() -> None:
    clock = Clock()
    breaker = _breaker(clock, max_open_s=3.0)
    for _ in range(TRIP_FAILURES):
        breaker.failed()
    periods = []
    for _ in range(4):
        start = clock.now
        clock.now = breaker.retry_at
        periods.append(round(clock.now - start, 3))
        assert breaker.ready()
        assert breaker.allow() and breaker.state == "half_open"  # this request is the probe
        assert not breaker.allow() and not breaker.ready()  # one probe at a time
        breaker.failed()
        assert breaker.state == "open"
    assert periods == [1.0, 2.0, 3.0, 3.0]
    assert breaker.trips == 1


def test_failures_of_requests_already_in_flight_do_not_extend_the_period() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    for _ in range(TRIP_FAILURES):
        breaker.failed()
    retry_at = breaker.retry_at
    for _ in range(20):
        breaker.failed()
    assert breaker.retry_at == retry_at and breaker.state == "open"


def test_an_answering_probe_closes_the_circuit() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    for _ in range(TRIP_FAILURES):
        breaker.failed()
    clock.now = breaker.retry_at
    assert breaker.allow()
    breaker.answered()
    assert breaker.state == "closed" and breaker.retry_at == 0.0
    assert all(breaker.allow() for _ in range(10))


def test_jitter_keeps_the_period_between_half_and_whole() -> None:
    clock = Clock()
    seen: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        seen.append((low, high))
        return low

    breaker = Breaker(clock=clock, uniform=uniform)
    for _ in range(TRIP_FAILURES):
        breaker.failed()
    assert seen == [(OPEN_BASE_S / 2, OPEN_BASE_S)]
    assert breaker.retry_at == clock.now + OPEN_BASE_S / 2


def test_circuits_pause_only_when_every_host_is_open() -> None:
    clock = Clock()
    circuits = Circuits(lambda cluster: f"edge-{cluster or 'default'}", max_open_s=4.0, clock=clock)
    assert circuits.claim_limit(free=100, batch=16) == 16  # no host known yet
    down = UpstreamError("Delivery API answered 503 Service Unavailable")
    for _ in range(TRIP_FAILURES):
        circuits.record("35", down)
    assert circuits.open_hosts() == ["edge-35"] and circuits.trips == 1
    circuits.record(None, None)  # the default host answers
    assert not circuits.all_open() and circuits.claim_limit(free=100, batch=16) == 16
    assert circuits.claim_limit(free=0, batch=16) == 0  # the window is full
    for _ in range(TRIP_FAILURES):
        circuits.record(None, down)
    assert circuits.all_open() and sorted(circuits.open_hosts()) == ["edge-35", "edge-default"]
    assert circuits.claim_limit(free=100, batch=16) == 0  # paused until a period is over
    assert 0 < circuits.until_probe(clock.now, 30.0) <= OPEN_BASE_S
    clock.now += OPEN_BASE_S
    assert circuits.claim_limit(free=100, batch=16) == 1  # the probe
    assert circuits.of("35").allow()  # taken as the probe
    assert circuits.record("35", UpstreamRejectedError("400", status=400))  # an answer: closed again
    assert circuits.open_hosts() == ["edge-default"] and not circuits.all_open()
    assert not circuits.record("35", RuntimeError("a bug"))  # not the host's: no change


# ------------------------------------------------------------------------------------------ the sender


class FakeApi:
    """``DeliveryApi.notify`` failing (connection refused) until ``up``; counts what is in flight."""

    def __init__(self) -> None:
        self.up = False
        self.reject = False
        self.in_flight = 0
        self.calls = 0
        self.failed = 0
        self.peak_while_paused = 0
        self.paused = False
        self.delivered: list[str] = []

    async def notify(self, body: bytes, *, session_id: str, cluster: str | None, timeout: float) -> None:
        self.calls += 1
        self.in_flight += 1
        if self.paused:
            self.peak_while_paused = max(self.peak_while_paused, self.in_flight)
        try:
            await asyncio.sleep(0.005)
            if self.reject:
                raise UpstreamRejectedError("Delivery API answered 400 Bad Request", status=400)
            if not self.up:
                self.failed += 1
                raise UpstreamError("Delivery API call failed: [Errno 111] Connection refused")
            self.delivered.append(body.decode())
        finally:
            self.in_flight -= 1

    async def aclose(self) -> None:
        return None


def _settings() -> Settings:
    return Settings(
        client="acme",
        organization_id="ORG@AdobeOrg",
        server_domain="127.0.0.1:9",
        secure=False,
        outbox_concurrency=8,
        outbox_batch_size=16,
        outbox_max_backoff=0.2,
        outbox_flush_timeout=1.0,
    )


def _rows(path: Path, count: int) -> None:
    store = OutboxStore.open(path)
    try:
        at = now_ms()
        rows = []
        for i in range(count):
            request = delivery_pb2.DeliveryRequest(request_id=f"r-{i}")
            request.id.tnt_id = f"visitor-{i}"  # one visitor each: nothing merges
            note = request.notifications.add(id=f"n-{i}", timestamp=at)
            note.type = delivery_pb2.METRIC_TYPE_DISPLAY
            rows.append((at, f"s-{i}", None, request.SerializeToString()))
        store.insert(rows)
    finally:
        store.close()


def _attempts(path: Path) -> tuple[int, int]:
    store = OutboxStore.open(path)
    try:
        row = store._conn.execute("SELECT COUNT(*), COALESCE(SUM(attempts), 0) FROM outbox").fetchone()
        return int(row[0]), int(row[1])
    finally:
        store.close()


async def test_a_failing_host_gets_one_probe_at_a_time_and_delivery_resumes(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    _rows(path, 200)
    api = FakeApi()
    store = OutboxStore.open(path, autocheckpoint_pages=0)
    states: list[str] = []
    sender = Sender(_settings(), store, api, emit=lambda line: states.append(line.decode()))  # type: ignore[arg-type]
    task = asyncio.get_running_loop().create_task(sender.run())
    try:

        async def paused() -> bool:
            return sender.report.state == "paused" and sender.report.open_hosts == ["127.0.0.1:9"]

        await eventually_async(paused)
        api.paused = True
        calls_at_pause = api.calls

        async def probed() -> bool:
            return api.calls >= calls_at_pause + 5  # five probes (0.1-0.2 s apart)

        await eventually_async(probed)
        assert api.peak_while_paused == 1  # one probe at a time, not the window of 8
        sender._write_round(0)  # (the loop's batched writes: flushed here to read the file)
        waiting, attempts = _attempts(path)
        assert waiting == 200
        assert attempts == api.failed  # rows not sent (deferred) are not charged an attempt
        assert sender.report.circuit_trips == 1

        api.up = True
        api.paused = False

        async def all_delivered() -> bool:
            return len(api.delivered) == 200 and sender.report.state == "running"

        await eventually_async(all_delivered)
        assert sender.report.open_hosts == []
    finally:
        sender.stop()
        await asyncio.wait_for(task, 10)
        store.close()
    assert _attempts(path) == (0, 0)  # all acked
    assert any('"state":"paused"' in line for line in states)


async def test_a_paused_sender_still_checkpoints_every_second(tmp_path: Path) -> None:
    """The serving process's commits never checkpoint the WAL (they would stall its loop): the sender
    does, every CHECKPOINT_S, also while every circuit is open and it waits (REPORT_S at a time) for
    the next probe."""
    path = tmp_path / "outbox.sqlite3"
    _rows(path, 20)
    api = FakeApi()
    store = OutboxStore.open(path, autocheckpoint_pages=0)
    calls_at_checkpoint: list[int] = []  # the requests made so far, at each checkpoint
    real_checkpoint = store.checkpoint

    def counted(*, give_back: bool = True) -> bool:
        calls_at_checkpoint.append(api.calls)
        return real_checkpoint(give_back=give_back)

    store.checkpoint = counted  # type: ignore[method-assign]
    settings = dataclasses.replace(_settings(), outbox_max_backoff=30.0)  # probes seconds apart
    sender = Sender(settings, store, api, emit=lambda line: None)  # type: ignore[arg-type]
    task = asyncio.get_running_loop().create_task(sender.run())
    try:

        async def paused() -> bool:
            return sender.report.state == "paused"

        await eventually_async(paused)
        seen = len(calls_at_checkpoint)

        async def checkpointed_between_probes() -> bool:
            later = calls_at_checkpoint[seen:]
            return sender.report.state == "paused" and any(a == b for a, b in itertools.pairwise(later))

        await eventually_async(checkpointed_between_probes, timeout=12)
    finally:
        sender.stop()
        await asyncio.wait_for(task, 10)
        store.close()


async def test_a_busy_sender_checkpoints_every_checkpoint_rows_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not only once a second: the WAL that the next write restarts must stay within its size limit at
    any rate (at c=8 one second of commits was ~29 MB, against the 16 MB limit)."""
    monkeypatch.setattr(sender_module, "CHECKPOINT_S", 3600.0)  # only the rows can trigger one here
    path = tmp_path / "outbox.sqlite3"
    count = 2 * sender_module.CHECKPOINT_ROWS + 500
    _rows(path, count)
    api = FakeApi()
    api.up = True
    store = OutboxStore.open(path, autocheckpoint_pages=0)
    checkpoints = 0
    real_checkpoint = store.checkpoint

    def counted(*, give_back: bool = True) -> bool:
        nonlocal checkpoints
        checkpoints += 1
        return real_checkpoint(give_back=give_back)

    store.checkpoint = counted  # type: ignore[method-assign]
    settings = dataclasses.replace(_settings(), outbox_concurrency=256, outbox_batch_size=256)
    sender = Sender(settings, store, api, emit=lambda line: None)  # type: ignore[arg-type]
    task = asyncio.get_running_loop().create_task(sender.run())
    try:

        async def delivered() -> bool:
            return sender.report.delivered_rows == count

        await eventually_async(delivered, timeout=30)
        assert checkpoints >= count // sender_module.CHECKPOINT_ROWS
    finally:
        sender.stop()
        await asyncio.wait_for(task, 10)
        store.close()


async def test_rejections_are_answers_and_never_open_the_circuit(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    _rows(path, 40)
    api = FakeApi()
    api.reject = True
    store = OutboxStore.open(path, autocheckpoint_pages=0)
    sender = Sender(_settings(), store, api, emit=lambda line: None)  # type: ignore[arg-type]
    task = asyncio.get_running_loop().create_task(sender.run())
    try:

        async def all_rejected_once() -> bool:
            return api.calls >= 40

        await eventually_async(all_rejected_once)
        assert sender.report.state == "running" and sender.report.open_hosts == []
        assert sender.report.circuit_trips == 0
    finally:
        sender.stop()
        await asyncio.wait_for(task, 10)
        store.close()


async def test_a_round_that_fails_to_write_forgets_nothing_and_claims_nothing(tmp_path: Path) -> None:
    """The sender's round is one transaction (acks, then the next claim): a storage error in the claim
    rolls the acks back too, and they are written by the next round; no row is lost or sent twice."""
    path = tmp_path / "outbox.sqlite3"
    _rows(path, 40)
    api = FakeApi()
    api.up = True
    store = OutboxStore.open(path, autocheckpoint_pages=0)
    real_claim = store.claim
    failures = 0

    def claim(limit: int, now: int, *, lease_ms: int = 30_000) -> list[Row]:
        nonlocal failures
        if api.delivered and failures < 3:  # once requests have been acked in memory
            failures += 1
            raise sqlite3.OperationalError("database or disk is full")
        return real_claim(limit, now, lease_ms=lease_ms)

    store.claim = claim  # type: ignore[method-assign,assignment]
    sender = Sender(_settings(), store, api, emit=lambda line: None)  # type: ignore[arg-type]
    task = asyncio.get_running_loop().create_task(sender.run())
    try:

        async def all_delivered() -> bool:
            return len(api.delivered) == 40 and failures == 3 and _attempts(path) == (0, 0)

        await eventually_async(all_delivered, timeout=30)
    finally:
        sender.stop()
        await asyncio.wait_for(task, 10)
        store.close()
    ids = [json.loads(body)["notifications"][0]["id"] for body in api.delivered]
    assert sorted(ids) == sorted(f"n-{i}" for i in range(40))  # each once: none lost, none re-sent
    assert "outbox storage: database or disk is full" in sender.report.last_error
