"""The notification sender: a process of its own (started and supervised by the serving process, see
:mod:`.supervisor`) that delivers the outbox's rows to the Delivery API, so that delivery never runs on
the serving event loop nor takes its GIL.

``python -m targetd_server.delivery.sender OUTBOX_FILE`` reads the settings (one JSON object line) from
stdin, then runs on its own event loop (uvloop when installed) until SIGTERM, SIGINT or the end of stdin
(the serving process is gone); it writes one JSON status line to stdout every ``REPORT_S`` seconds and at
each change of state (:mod:`.sender_protocol`: both lines' format). Logs go to stderr, as the server's.

One round: the rows due are claimed from the store (:class:`~targetd_server.delivery.store.OutboxStore`,
leased: a killed sender's rows come back), merged per visitor and context (the same session, cluster and
request but for notifications and telemetry: one Delivery request carries up to ``MAX_MERGED`` rows),
mapped to Delivery API JSON and POSTed with up to ``outbox_concurrency`` requests in flight
(:meth:`DeliveryApi.notify`: keep-alive HTTP/1.1 on :class:`~targetd_server.transport.Http1Client`).
Delivered rows are deleted; failed ones follow :mod:`.policy` (retry later, or quarantine — never
deleted); a row that does not decode, or cannot become Delivery API JSON, is quarantined with the reason
at once and never blocks the rows behind it. The store is written in rounds (at most once per
``SETTLE_S``): one write transaction holds what the finished requests decided and the next claim, so
that the serving process's group commits rarely meet SQLite's write lock.

Shutdown: on SIGTERM the sender keeps delivering what is due for ``outbox_flush_timeout`` seconds, then
stops; rows still in flight are made due again at once, the rest stays on disk for the next start.

Thread/loop affinity: everything here runs on the sender process's one event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import uvloop
from google.protobuf.message import DecodeError

from targetd.json_format import JsonMappingError
from targetd.v1 import delivery_pb2
from targetd_server.config import Settings
from targetd_server.delivery.breaker import Breaker, Circuits
from targetd_server.delivery.http import DeliveryApi, target_host
from targetd_server.delivery.merge import MAX_MERGED, Encoder, Group, merge_key
from targetd_server.delivery.policy import RetryPolicy
from targetd_server.delivery.sender_protocol import SenderReport, read_settings
from targetd_server.delivery.store import OutboxStore, Row, now_ms
from targetd_server.errors import TargetdError
from targetd_server.ids import new_id
from targetd_server.logs import Throttled, configure_logging

log = logging.getLogger("targetd.sender")
throttled = Throttled(log)

__all__ = ["Sender", "main"]

SETTLE_S: Final = 0.005
"""The sender writes its acks and claims the next rows at most this often (batched store writes)."""
ROUND_S: Final = 0.05
ROUND_ROWS: Final = 32
"""While requests are in flight and the last claim was not a full batch, the next round (acks written,
rows claimed) comes when about ``ROUND_ROWS`` rows will be due at the rate of the last claim: between
``SETTLE_S`` and ``ROUND_S`` later. Each round is one short write transaction, which the serving
process's commits may have to wait for: a sender trickling a few hundred rows a second takes the lock
~20 times a second, not 200; at thousands a second the rounds stay ~5 ms apart, so the window keeps
filling. A notification waits at most ``ROUND_S`` longer. Measured (``bench/sustained.py``, 15 s): with
50 ms rather than 20 ms the sender uses 20% less CPU per notification at 400/s (280-293 against 350-375
µs) and 10% less at 800/s."""
IDLE_POLL_S: Final = 0.05
"""How often an idle sender looks for new rows (the serving process commits them)."""
REPORT_S: Final = 1.0
CHECKPOINT_S: Final = 1.0
CHECKPOINT_ROWS: Final = 1000
"""A checkpoint also comes once this many rows were claimed since the last one: the WAL that the next
write restarts must stay within ``JOURNAL_SIZE_LIMIT`` (16 MB), or every restart truncates it back and the
file system allocates and zeroes the blocks above again for the serving process's commits. One-row
commits (c=1..8) add ~12 KB per row: 1,000 rows ≈ 12 MB; at c=8 a second of them was ~29 MB."""
CHECKPOINT_RETRY_S: Final = 0.1
"""The next checkpoint after one that could not have the WAL start over (a commit held the write lock at
that moment; see :meth:`OutboxStore.checkpoint`)."""
ADOPT_S: Final = 30.0
LEASE_SLACK_S: Final = 5.0
"""A claimed row comes back (its sender died) 2 x ``timeout`` + this many seconds after the claim."""
STORE_BACKOFF_S: Final = 1.0
"""Wait after a storage failure (disk full, locked) before the next claim."""


YIELD_EVERY_S: Final = 0.0005
"""The sender yields its core at most this often (see :class:`_Yielder`)."""


class _Yielder:
    """Gives the core to a process waiting for it, if any (``sched_yield``), at most once per
    ``YIELD_EVERY_S`` of the sender's work.

    The sender works in bursts — a round starts tens of requests in one turn of its loop, their answers
    come back together — and the serving process, woken by a call while such a burst held its core,
    waited for the burst's time slice to end: on a 2-core machine with every core busy that was the c=1
    p99 of GetOffers. A yield before every request and after every answer took c=1 p99 from 3.0-3.3 to
    2.0 ms, but each yield on a saturated machine is a context switch: the sender's CPU per notification
    at c=8 rose from 77-80 to 104-109 µs (`bench/delivery.py --repeats 1 --duration 8`, alternating
    runs). At most one yield per 0.5 ms of work: c=1 p99 2.4-2.5 ms, the sender 96-97 µs at c=8 (one per
    0.2 ms: 2.4 ms and 100-104 µs; before each request only: 2.3-2.9 ms and 111-113 µs). A yield keeps
    the sender's priority: unlike a lower priority or SCHED_IDLE, it cannot starve delivery.
    """

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last = 0.0

    def __call__(self) -> None:
        if time.perf_counter() - self._last >= YIELD_EVERY_S:
            os.sched_yield()
            self._last = time.perf_counter()  # (after the yield: the 0.5 ms counts the sender's own work)


class Sender:
    """The delivery loop of the sender process; see the module docstring. ``emit`` receives each
    :class:`SenderReport` line."""

    def __init__(
        self,
        settings: Settings,
        store: OutboxStore,
        api: DeliveryApi,
        *,
        emit: Callable[[bytes], None],
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._settings = settings
        self._store = store
        self._api = api
        self._emit = emit
        self._clock = clock
        self._policy = RetryPolicy(
            max_backoff_s=settings.outbox_max_backoff,
            max_age_s=settings.outbox_max_age,
            reject_retries=settings.outbox_reject_retries,
        )
        self._window = max(1, settings.outbox_concurrency)
        self._batch = max(1, settings.outbox_batch_size)
        self._timeout = settings.timeout / 1000
        # A claimed row is in flight for at most one timeout (never queued: claims fit the window).
        self._lease_ms = int((2 * self._timeout + LEASE_SLACK_S) * 1000)
        self.report = SenderReport()
        self._encoder = Encoder()
        self._yield = _Yielder()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._acks: list[int] = []
        self._retries: list[tuple[list[int], int, str]] = []
        self._quarantines: list[tuple[list[int], str]] = []
        self._defers: list[tuple[list[int], int]] = []
        self._circuits = Circuits(
            lambda cluster: target_host(settings, cluster), max_open_s=settings.outbox_max_backoff
        )
        self._room = asyncio.Event()
        self._stop = asyncio.Event()
        self._flush_deadline = 0.0

    def stop(self) -> None:
        """Begin the shutdown flush (``outbox_flush_timeout``); :meth:`run` returns when it is over."""
        if not self._stop.is_set():
            self._flush_deadline = time.monotonic() + max(0.0, self._settings.outbox_flush_timeout)
            self._stop.set()
            self._room.set()
            self._set_state("flushing")

    def _set_state(self, state: str) -> None:
        if self.report.state != state:
            self.report.state = state
            self._emit(self.report.line())

    async def run(self) -> None:
        """Deliver until :meth:`stop` and the flush after it; the store and api stay open (the caller
        closes them)."""
        last_report = last_claim = time.monotonic()
        next_checkpoint = last_report + CHECKPOINT_S
        rows_since_checkpoint = 0
        round_s = SETTLE_S
        last_adopt = 0.0
        self._emit(self.report.line())
        while True:
            now = time.monotonic()
            if self._stop.is_set() and now >= self._flush_deadline:
                break
            if now - last_report >= REPORT_S:
                last_report = now
                self.report.in_flight = len(self._in_flight)
                self._emit(self.report.line())
            claimed = 0
            try:
                limit = self._circuits.claim_limit(self._window - len(self._in_flight), self._batch)
                rows = self._write_round(limit)
                if rows is not None:
                    claimed = self._start(rows)
                    rate = claimed / max(SETTLE_S, now - last_claim)
                    last_claim = now
                    round_s = min(ROUND_S, max(SETTLE_S, ROUND_ROWS / rate if rate else ROUND_S))
                rows_since_checkpoint += claimed
                if now >= next_checkpoint or rows_since_checkpoint >= CHECKPOINT_ROWS:
                    rows_since_checkpoint = 0
                    restarted = self._store.checkpoint()
                    next_checkpoint = now + (CHECKPOINT_S if restarted else CHECKPOINT_RETRY_S)
                if not claimed and not self._in_flight and now - last_adopt >= ADOPT_S:
                    last_adopt = now
                    self._store.adopt_orphans()
            except sqlite3.Error as exc:
                self.report.last_error = f"outbox storage: {exc}"
                throttled.warning("storage", f"sender: outbox storage failed ({exc}); retrying")
                self._set_state("storage_error")
                await self._pause(STORE_BACKOFF_S)
                continue
            paused = self._paused()
            self._set_state("flushing" if self._stop.is_set() else "paused" if paused else "running")
            if self._stop.is_set() and not claimed and not self._in_flight:
                break  # flushed: nothing due, nothing in flight
            if paused:  # every host's circuit is open: nothing is claimed until the next probe may go
                await self._pause(max(SETTLE_S, self._circuits.until_probe(time.monotonic(), REPORT_S)))
            elif claimed >= min(self._batch, max(1, self._window - len(self._in_flight))):
                await asyncio.sleep(SETTLE_S)  # more may be due: the next round soon
            else:
                await self._pause(IDLE_POLL_S if not self._in_flight else round_s)
        await self._finish()

    async def _pause(self, seconds: float) -> None:
        self._room.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._room.wait(), seconds)
        if not self._stop.is_set():
            await asyncio.sleep(SETTLE_S)  # let completions gather: one store write for many

    async def _finish(self) -> None:
        pending = list(self._in_flight)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        with contextlib.suppress(sqlite3.Error):
            self._write_round(0)
            self._store.checkpoint()
        self._set_state("stopped")

    def _paused(self) -> bool:
        """Whether every host's circuit is open (nothing is claimed but probes); updates the report."""
        open_hosts = self._circuits.open_hosts()
        if open_hosts != self.report.open_hosts:
            self.report.open_hosts = open_hosts
            self.report.circuit_trips = self._circuits.trips
        return self._circuits.all_open()

    def _defer(self, group: Group, breaker: Breaker) -> None:
        """Rows for a host whose circuit is open: due again when it may be probed, no attempt counted."""
        due = self._clock() + int(max(0.0, breaker.retry_at - time.monotonic()) * 1000)
        self._defers.append((group.ids, due))

    # ---------------------------------------------------------------------------- one round

    def _write_round(self, limit: int) -> list[Row] | None:
        """One write transaction (SQLite's write lock taken once, not once per statement: the serving
        process's commits meet it less often): what the finished requests decided, then up to ``limit``
        rows claimed (None: ``limit`` 0). Nothing is forgotten before the commit: on a storage error
        the decisions stay for the next round and no row is claimed."""
        if limit <= 0 and not (self._acks or self._retries or self._quarantines or self._defers):
            return None
        store = self._store
        with store.transaction():
            if self._acks:
                store.ack(self._acks)
            for ids, next_at, error in self._retries:
                store.retry(ids, next_at, error)
            for ids, reason in self._quarantines:
                store.quarantine(ids, reason)
            for ids, due in self._defers:
                store.retry(ids, due, None)
            rows = store.claim(limit, self._clock(), lease_ms=self._lease_ms) if limit > 0 else None
        self._acks, self._retries, self._quarantines, self._defers = [], [], [], []
        return rows

    def _start(self, rows: list[Row]) -> int:
        """Send the claimed ``rows``: merged into groups, one task per request (or deferred while their
        host's circuit is open); returns how many rows."""
        for group in self._groups(rows):
            breaker = self._circuits.of(group.cluster)
            if not breaker.allow():
                self._defer(group, breaker)
                continue
            task = asyncio.get_running_loop().create_task(self._deliver(group))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        return len(rows)

    def _groups(self, rows: list[Row]) -> list[Group]:
        groups: dict[bytes, Group] = {}
        out: list[Group] = []
        for row in rows:
            try:
                request = delivery_pb2.DeliveryRequest.FromString(row.request)
            except (DecodeError, ValueError) as exc:
                self._quarantine([row.id], "undecodable", f"undecodable row (not a DeliveryRequest): {exc}")
                continue
            key, context_key = merge_key(row, request)
            group = groups.get(key)
            if group is not None and len(group.rows) < MAX_MERGED:
                group.rows.append(row)
                group.request.notifications.extend(request.notifications)
                group.request.telemetry.entries.extend(request.telemetry.entries)
                continue
            group = groups[key] = Group([row], request, row.session_id or new_id(), row.cluster, context_key)
            out.append(group)
        return out

    async def _deliver(self, group: Group) -> None:
        self._yield()
        try:
            body = self._encoder.body(group.request, group.context_key)
        except (JsonMappingError, ValueError, TypeError) as exc:
            await self._split(group, exc)
            return
        await self._post(group, body)

    async def _split(self, group: Group, error: Exception) -> None:
        """A merged request that cannot become JSON: each row alone, the bad ones to quarantine."""
        for row in group.rows:
            request = delivery_pb2.DeliveryRequest.FromString(row.request)
            try:
                body = self._encoder.body(request)
            except (JsonMappingError, ValueError, TypeError) as exc:
                self._quarantine([row.id], "unmappable", f"cannot become Delivery API JSON: {exc}")
                continue
            await self._post(Group([row], request, group.session_id, group.cluster), body)
        del error

    async def _post(self, group: Group, body: bytes) -> None:
        self.report.requests += 1
        try:
            await self._api.notify(
                body, session_id=group.session_id, cluster=group.cluster, timeout=self._timeout
            )
        except asyncio.CancelledError:  # shutdown: due again at once at the next start
            self._retries.append((group.ids, self._clock(), "the sender stopped before an answer"))
            raise
        except Exception as exc:
            self._answer(group, exc)
            self._failed(group, exc)
            return
        self._yield()
        self._answer(group, None)
        self._acks.extend(row.id for row in group.rows)
        self.report.delivered_rows += len(group.rows)
        self.report.delivered_notifications += len(group.request.notifications)

    def _answer(self, group: Group, exc: Exception | None) -> None:
        if self._circuits.record(group.cluster, exc):
            self._room.set()  # the loop's claim limit changed

    def _failed(self, group: Group, exc: Exception) -> None:
        if not isinstance(exc, TargetdError):
            log.exception(
                "sender: unexpected error delivering %d rows (a bug; they are retried)", len(group.rows)
            )
        now = self._clock()
        verdict = self._policy.on_failure(
            exc,
            attempts=max(row.attempts for row in group.rows),
            first_at_ms=min(row.first_at_ms for row in group.rows),
            now_ms=now,
        )
        self.report.failures[verdict.kind] = self.report.failures.get(verdict.kind, 0) + 1
        self.report.last_error = str(exc)[:300]
        if verdict.action == "quarantine":
            self._quarantine(group.ids, verdict.kind, verdict.reason)
            return
        throttled.warning(
            verdict.kind,
            f"sender: {len(group.rows)} rows not delivered ({verdict.kind}), retried later: {exc}",
        )
        self._retries.append((group.ids, verdict.next_at_ms, str(exc)))

    def _quarantine(self, ids: list[int], kind: str, reason: str) -> None:
        self._quarantines.append((ids, reason))
        self.report.quarantined[kind] = self.report.quarantined.get(kind, 0) + len(ids)
        throttled.warning(f"quarantine-{kind}", f"sender: {len(ids)} rows quarantined ({kind}): {reason}")


# -------------------------------------------------------------------------------- the process


async def _serve(path: Path, settings: Settings) -> None:
    loop = asyncio.get_running_loop()
    out = sys.stdout.buffer

    def emit(line: bytes) -> None:
        with contextlib.suppress(OSError, ValueError):
            out.write(line)
            out.flush()

    store = OutboxStore.open(path, busy_timeout_s=5.0, autocheckpoint_pages=0)
    api = DeliveryApi(settings)
    sender = Sender(settings, store, api, emit=emit)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, sender.stop)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def watch_parent() -> None:
        await reader.read()  # EOF: the serving process is gone (or closed our stdin to stop us)
        sender.stop()

    watcher = loop.create_task(watch_parent())
    try:
        await sender.run()
    finally:
        watcher.cancel()
        await api.aclose()
        store.close()


def main(argv: list[str] | None = None) -> int:
    """The sender process's entry point (see the module docstring); returns the exit status."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m targetd_server.delivery.sender OUTBOX_FILE < settings.json", file=sys.stderr)
        return 2
    settings = read_settings(sys.stdin.buffer.readline())
    configure_logging(settings.log_level, settings.log_format)
    uvloop.run(_serve(Path(args[0]), settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
