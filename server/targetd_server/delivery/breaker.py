"""The notification sender's circuit breaker, one per Delivery API host: while a host keeps failing
(connection refused, timeouts, 5xx, 429 — the *retryable* class of :mod:`.policy`) the sender stops
claiming rows for it and tries one request now and then, instead of sending, failing and re-writing every
row on its own backoff. That keeps a sender whose Delivery API is down near idle: no CPU spent on rows that
cannot go, and no store writes that make the serving process's group commits wait for SQLite's lock.

States:

* **closed** — requests go. ``TRIP_FAILURES`` retryable failures in a row (no answer of any kind from the
  host in between) open it.
* **open** — nothing goes to the host until ``retry_at``: ``OPEN_BASE_S`` after the trip, doubled per failed
  probe up to ``max_open_s`` (``outbox_max_backoff``, at most ``OPEN_MAX_S``), with equal jitter (a period
  ``d`` becomes uniform in ``[d/2, d]``) so that the replicas of a fleet do not probe in step.
* **half-open** — ``retry_at`` has passed and one request (the *probe*) is in flight: any answer from the
  host (a 2xx, and also a rejection: a 4xx is the host answering) closes the circuit; a retryable failure
  opens it again for twice as long.

Rows are never dropped or charged for the breaker: a row claimed for an open host is made due again at
``retry_at`` without an attempt counted (see ``Sender``). A request already in flight when the circuit
opens fails or succeeds as usual.

Thread/loop affinity: none (pure; the clock and random source are injectable for tests).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Final

__all__ = ["OPEN_BASE_S", "OPEN_MAX_S", "TRIP_FAILURES", "Breaker"]

TRIP_FAILURES: Final = 5
"""Retryable failures in a row, with no answer from the host in between, that open the circuit."""
OPEN_BASE_S: Final = 1.0
"""The first open period, seconds (doubled per failed probe)."""
OPEN_MAX_S: Final = 30.0
"""The longest open period, seconds (``outbox_max_backoff`` when that is shorter)."""


class Breaker:
    """The circuit of one host; see the module docstring. ``clock`` is monotonic seconds."""

    def __init__(
        self,
        *,
        max_open_s: float = OPEN_MAX_S,
        trip_failures: int = TRIP_FAILURES,
        clock: Callable[[], float] = time.monotonic,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self._max_open_s = max(0.01, min(OPEN_MAX_S, max_open_s))
        self._trip = max(1, trip_failures)
        self._clock = clock
        self._uniform = uniform
        self._failures = 0
        self._period = 0.0  # the current open period before jitter (0: closed)
        self._retry_at = 0.0
        self._probing = False
        self.trips = 0
        """Times the circuit opened from closed (for the sender's report)."""

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half_open`` (a probe in flight)."""
        if not self._period:
            return "closed"
        return "half_open" if self._probing else "open"

    @property
    def retry_at(self) -> float:
        """When the next probe may go (clock seconds; 0 while closed)."""
        return self._retry_at if self._period else 0.0

    def ready(self) -> bool:
        """Whether a request may go now without taking the probe: closed, or open with its period over
        and no probe in flight."""
        return not self._period or (not self._probing and self._clock() >= self._retry_at)

    def allow(self) -> bool:
        """Whether a request may go to the host now; when the circuit is open and its period is over, the
        caller's request becomes the probe (half-open) and later calls get False until it ends."""
        if not self._period:
            return True
        if self._probing or self._clock() < self._retry_at:
            return False
        self._probing = True
        return True

    def answered(self) -> None:
        """The host answered (2xx, or a rejection): the circuit closes."""
        self._failures = 0
        self._period = 0.0
        self._probing = False

    def failed(self) -> None:
        """A retryable failure (network, timeout, 5xx, 429). Opens the circuit after ``trip_failures`` in
        a row; a failed probe opens it again for twice as long; a failure while open (a request that was
        already in flight) changes nothing."""
        if self._period:
            if self._probing:
                self._probing = False
                self._open(min(self._max_open_s, self._period * 2))
            return
        self._failures += 1
        if self._failures >= self._trip:
            self.trips += 1
            self._open(min(self._max_open_s, OPEN_BASE_S))

    def _open(self, period: float) -> None:
        self._period = period
        self._retry_at = self._clock() + self._uniform(period / 2, period)
