"""One subscriber of the event bus (:mod:`.bus`): its bounded queue, its filter, and how its stream ends
(SHUTDOWN, the stream's maximum age, or cut off for falling behind).

Loop affinity: the bus's (the server's event loop). Nothing here does I/O.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Final

from targetd.v1 import decisioning_service_pb2 as pb
from targetd_server.errors import OverloadedError

if TYPE_CHECKING:
    from targetd_server.events.bus import EventBus

log = logging.getLogger("targetd.events")

__all__ = ["ALWAYS_SENT", "Subscription"]

# Sent to every subscriber whatever its filter.
ALWAYS_SENT: Final = frozenset({pb.EVENT_TYPE_STATE, pb.EVENT_TYPE_HEARTBEAT, pb.EVENT_TYPE_SHUTDOWN})


class _End:
    """Queue sentinel: the stream ends here (cleanly, or with the subscription's error)."""


_END: Final = _End()


class Subscription:
    """One subscriber's view of the bus: an async iterator of ``SubscribeEventsResponse``.

    Iteration ends after SHUTDOWN, or when the stream reaches its maximum age (:attr:`expired` is then
    true); it raises :class:`OverloadedError` once the subscriber has been cut off for falling behind.
    Always :meth:`close` it when the stream ends (idempotent). Loop-affine like the bus.
    """

    __slots__ = (
        "_bus",
        "_error",
        "_expiry",
        "_limit",
        "_queue",
        "closed",
        "expired",
        "include_payload",
        "on_cutoff",
        "types",
    )

    def __init__(
        self, bus: EventBus, limit: int, types: frozenset[int] | None, include_payload: bool
    ) -> None:
        self._bus = bus
        self._limit = limit
        self._queue: asyncio.Queue[pb.SubscribeEventsResponse | _End] = asyncio.Queue()
        self._error: OverloadedError | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self.types = types
        self.include_payload = include_payload
        self.closed = False
        self.expired = False
        self.on_cutoff: Callable[[], object] | None = None
        """Called once, on the loop, when the subscriber is cut off (e.g. to wake a write stuck on a
        client that stopped reading)."""

    @property
    def error(self) -> OverloadedError | None:
        """The reason the subscriber was cut off, if it was."""
        return self._error

    def wants(self, event_type: int) -> bool:
        """Whether this subscriber receives events of ``event_type``."""
        return self.types is None or event_type in self.types or event_type in ALWAYS_SENT

    def _offer(self, response: pb.SubscribeEventsResponse) -> None:
        if self.closed:
            return
        if self._queue.qsize() >= self._limit:
            self._cut_off()
            return
        self._queue.put_nowait(response)

    def _push_final(self, response: pb.SubscribeEventsResponse | None) -> None:
        """Queue ``response`` (ignoring the bound) and the end of the stream."""
        if self.closed:
            return
        if response is not None:
            self._queue.put_nowait(response)
        self._queue.put_nowait(_END)
        self._detach()

    def _cut_off(self) -> None:
        limit = self._limit
        self._error = OverloadedError(
            f"subscriber fell behind: {limit} events were waiting to be read; read the stream faster, "
            "filter event types, or raise subscriber_queue_size"
        )
        log.warning("event subscriber cut off: %d events waiting", limit)
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(_END)
        self._detach()
        callback, self.on_cutoff = self.on_cutoff, None
        if callback is not None:
            callback()

    def _expire(self) -> None:
        self.expired = True
        self._expiry = None
        self._push_final(None)

    def _detach(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        self._bus._remove(self)

    def close(self) -> None:
        """Detach from the bus; no more events are queued. Idempotent."""
        if not self.closed:
            self._detach()
            self.closed = True
            self._bus._consumer_done(self)

    def __aiter__(self) -> AsyncIterator[pb.SubscribeEventsResponse]:
        return self

    async def __anext__(self) -> pb.SubscribeEventsResponse:
        if self.closed:
            raise StopAsyncIteration
        item = await self._queue.get()
        if isinstance(item, _End):
            self.close()
            if self._error is not None:
                raise self._error
            raise StopAsyncIteration
        return item
