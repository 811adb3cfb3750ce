"""Transitional: the in-process sender thread over the outbox store, until the sender process
(``delivery/sender.py``, issue 11-SENDER) replaces it. It keeps the previous behaviour — batches of
``batch_size`` rows, ``concurrency`` blocking sends in flight through ``DeliveryApi.send`` (the thread
bridge) — on the store's claim/ack/retry/quarantine API: a 2xx acks the row; a rejection (4xx other than
408/425/429) or a row that does not decode quarantines it; anything else retries it with exponential
backoff and full jitter (0.1 s doubling, capped by ``max_backoff``).

Thread affinity: :meth:`ThreadSender.start`/:meth:`close` from one thread; the work runs on its own.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final

from google.protobuf.message import DecodeError

from targetd.v1 import delivery_pb2
from targetd_server.delivery.store import OutboxStore, Row, now_ms
from targetd_server.errors import UpstreamRejectedError
from targetd_server.ids import new_id

log = logging.getLogger("targetd.outbox")

__all__ = ["Send", "ThreadSender"]

Send = Callable[[delivery_pb2.DeliveryRequest, str, "str | None", float], object]
"""``send(request, session_id, cluster, timeout_s)``: POST it; raises on failure (blocking)."""

BACKOFF_BASE: Final = 0.1
IDLE_WAIT: Final = 0.05


class ThreadSender:
    """Delivers the rows of the outbox at ``path`` with ``send``; see the module docstring."""

    def __init__(
        self,
        path: Path,
        send: Send,
        *,
        batch_size: int = 100,
        concurrency: int = 16,
        max_backoff: float = 60.0,
        send_timeout: float = 3.0,
    ) -> None:
        self.path = path
        self._send = send
        self._batch = max(1, batch_size)
        self._max_backoff = max(BACKOFF_BASE, max_backoff)
        self._send_timeout = send_timeout
        self._stopping = threading.Event()
        self._flush_deadline = 0.0
        self._pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="targetd-outbox")
        self._thread: threading.Thread | None = None
        self.delivered = 0

    def start(self) -> None:
        """Start the sender thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="targetd-outbox-sender", daemon=True)
            self._thread.start()

    @property
    def running(self) -> bool:
        """Whether the sender thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def close(self, flush_timeout: float = 5.0) -> None:
        """Send what can be sent within ``flush_timeout`` seconds (stopping at the first failed round),
        then stop. Blocks."""
        self._flush_deadline = time.monotonic() + max(0.0, flush_timeout)
        self._stopping.set()
        thread = self._thread
        if thread is not None:
            thread.join(max(0.0, flush_timeout) + self._send_timeout + 1.0)
            self._thread = None
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        store = OutboxStore.open(self.path)
        failures = 0
        try:
            while True:
                if self._stopping.is_set() and time.monotonic() >= self._flush_deadline:
                    return
                rows = store.claim(self._batch, now_ms())
                if not rows:
                    if self._stopping.is_set():
                        return
                    if not store.adopt_orphans():
                        store.checkpoint()
                        self._stopping.wait(IDLE_WAIT)
                    continue
                if self._round(store, rows):
                    failures = 0
                    continue
                failures += 1
                if self._stopping.is_set():
                    return
                self._stopping.wait(
                    random.uniform(0, min(self._max_backoff, BACKOFF_BASE * 2 ** min(failures, 30)))
                )
        except Exception:
            log.exception("outbox sender stopped unexpectedly; rows stay on disk for the next start")
        finally:
            store.close()

    def _round(self, store: OutboxStore, rows: list[Row]) -> bool:
        timeout = self._send_timeout
        if self._stopping.is_set():
            timeout = max(0.05, min(timeout, self._flush_deadline - time.monotonic()))
        sendable: list[tuple[Row, delivery_pb2.DeliveryRequest]] = []
        for row in rows:
            try:
                sendable.append((row, delivery_pb2.DeliveryRequest.FromString(row.request)))
            except DecodeError as exc:
                store.quarantine([row.id], f"undecodable row: {exc}")
                log.error("outbox: row %d does not decode, quarantined: %s", row.id, exc)

        def deliver(item: tuple[Row, delivery_pb2.DeliveryRequest]) -> BaseException | None:
            row, request = item
            try:
                self._send(request, row.session_id or new_id(), row.cluster, timeout)
            except Exception as exc:
                return exc
            return None

        results = list(self._pool.map(deliver, sendable))
        ok = [row.id for (row, _), error in zip(sendable, results, strict=True) if error is None]
        store.ack(ok)
        self.delivered += len(ok)
        failed = False
        for (row, _), error in zip(sendable, results, strict=True):
            if error is None:
                continue
            if isinstance(error, UpstreamRejectedError):
                store.quarantine([row.id], f"rejected: {error}")
                log.error("outbox: the Delivery API rejected row %d, quarantined: %s", row.id, error)
            else:
                failed = True
                store.retry([row.id], now_ms(), str(error))
        if failed:
            log.warning("outbox: some rows not delivered, will retry")
        return not failed
