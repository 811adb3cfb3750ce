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

:class:`Circuits` holds the breakers of the hosts one sender sends to and answers what the sender's loop
asks of them: how many rows to claim now, whether it is paused (every host open), when the next probe is
due, and how a request went.

Thread/loop affinity: none (pure; the clock and random source are injectable for tests).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Final

from targetd_server.errors import UpstreamError, UpstreamRejectedError

log = logging.getLogger("targetd.sender")

__all__ = ["OPEN_BASE_S", "OPEN_MAX_S", "TRIP_FAILURES", "Breaker", "Circuits"]

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


class Circuits:
    """The :class:`Breaker` of each Delivery API host one sender sends to. ``host_of`` maps a row's edge
    cluster to its host; ``max_open_s`` is ``outbox_max_backoff``."""

    def __init__(
        self,
        host_of: Callable[[str | None], str],
        *,
        max_open_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._host_of = host_of
        self._max_open_s = max_open_s
        self._clock = clock
        self._breakers: dict[str, Breaker] = {}
        self._hosts: dict[str | None, str] = {}  # cluster -> host

    def of(self, cluster: str | None) -> Breaker:
        """The breaker of the host of ``cluster`` (made at first use, closed)."""
        host = self._hosts.get(cluster)
        if host is None:
            host = self._hosts[cluster] = self._host_of(cluster)
        breaker = self._breakers.get(host)
        if breaker is None:
            breaker = self._breakers[host] = Breaker(max_open_s=self._max_open_s, clock=self._clock)
        return breaker

    def claim_limit(self, free: int, batch: int) -> int:
        """Rows to claim now with ``free`` slots in the window: a batch while some host's circuit is
        closed (or no host is known yet); one row, the probe, when every circuit is open and one's period
        is over; none while every circuit is open (or half-open)."""
        if free <= 0:
            return 0
        breakers = self._breakers.values()
        if not breakers or any(b.state == "closed" for b in breakers):
            return min(batch, free)
        return 1 if any(b.ready() for b in breakers) else 0

    def open_hosts(self) -> list[str]:
        """The hosts whose circuit is not closed."""
        return [host for host, b in self._breakers.items() if b.state != "closed"]

    @property
    def trips(self) -> int:
        """Times a circuit opened, over every host."""
        return sum(b.trips for b in self._breakers.values())

    def all_open(self) -> bool:
        """Whether every known host's circuit is open or half-open (the sender is paused)."""
        return bool(self._breakers) and all(b.state != "closed" for b in self._breakers.values())

    def until_probe(self, now: float, longest: float) -> float:
        """Seconds from ``now`` (clock seconds) until the first open circuit may take a probe, at most
        ``longest``."""
        probes = [b.retry_at for b in self._breakers.values() if b.state == "open"]
        return min(longest, min(probes, default=now + longest) - now)

    def record(self, cluster: str | None, error: BaseException | None) -> bool:
        """How a request to the host of ``cluster`` went (``error`` None: a 2xx). An answer (2xx, or a
        rejection) closes the circuit, a retryable :class:`UpstreamError` counts toward opening it;
        anything else (shutdown, a bug) is not the host's. Logs each opening and closing; returns whether
        the circuit changed state."""
        breaker = self.of(cluster)
        was = breaker.state
        if error is None or isinstance(error, UpstreamRejectedError):
            breaker.answered()
        elif isinstance(error, UpstreamError):
            breaker.failed()
        if breaker.state == was:
            return False
        host = self._hosts.get(cluster, "")
        if breaker.state == "closed":
            log.info("sender: the Delivery API at %s answers again; delivery resumes", host)
        elif was == "closed":
            log.warning(
                "sender: the Delivery API at %s keeps failing (%s); sending paused, one request tries it "
                "every %.1f s at most",
                host,
                error,
                min(self._max_open_s, OPEN_MAX_S),
            )
        return True
