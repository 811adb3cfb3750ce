"""The in-process event bus behind ``SubscribeEvents``.

Publishers (the artifact provider, the Target client, the geo lookup) call ``publish_*``; each open stream
holds a :class:`Subscription` with its own bounded queue. Publishing never waits: an event is offered to
every subscription with ``put_nowait``, and a subscription whose queue is full is cut off (its stream ends
with :class:`~targetd_server.errors.OverloadedError`, RESOURCE_EXHAUSTED) so that it can slow neither the
publisher nor the other subscribers.

Sequence numbers: every published event (``client_ready``, the artifact events, ``geo_location_updated``,
``shutdown``) takes the next number, starting at 1, without gaps. STATE and HEARTBEAT are not new events:
they carry the number of the last event issued, so a subscriber can check that it missed nothing (the next
event will be that number + 1). Replayed events (``client_ready`` and the last
``artifact_download_succeeded``, sent right after STATE in sequence order) carry their original numbers,
which are never above STATE's.

Loop affinity: create the bus, publish, subscribe and close on the server's asyncio event loop (from
another thread use ``loop.call_soon_threadsafe(bus.publish_..., ...)``). Nothing here does I/O.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Final

from targetd.v1 import decisioning_service_pb2 as pb
from targetd.v1 import delivery_pb2
from targetd_server.errors import InvalidRequestError, NotReadyError, OverloadedError

log = logging.getLogger("targetd.events")

# Sent to every subscriber whatever its filter.
ALWAYS_SENT: Final = frozenset({pb.EVENT_TYPE_STATE, pb.EVENT_TYPE_HEARTBEAT, pb.EVENT_TYPE_SHUTDOWN})
FILTERABLE: Final = frozenset(
    {
        pb.EVENT_TYPE_CLIENT_READY,
        pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_SUCCEEDED,
        pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_FAILED,
        pb.EVENT_TYPE_GEO_LOCATION_UPDATED,
    }
)

StateProvider = Callable[[], tuple[bool, pb.ArtifactInfo | None, str]]
"""Returns (ready, info of the artifact applied now or None, configured artifact location)."""


class _End:
    """Queue sentinel: the stream ends here (cleanly, or with the subscription's error)."""


_END: Final = _End()


class _Published:
    """One published event, wrapped once for every subscriber; the payload variant is built on demand."""

    __slots__ = ("_with_payload", "event", "payload", "response")

    def __init__(self, event: pb.Event, payload: bytes | None = None) -> None:
        self.event = event
        self.payload = payload
        self.response = pb.SubscribeEventsResponse(event=event)
        self._with_payload: pb.SubscribeEventsResponse | None = None

    def for_subscriber(self, include_payload: bool) -> pb.SubscribeEventsResponse:
        if not include_payload or not self.payload:
            return self.response
        if self._with_payload is None:
            event = pb.Event()
            event.CopyFrom(self.event)
            event.artifact_payload = self.payload
            self._with_payload = pb.SubscribeEventsResponse(event=event)
        return self._with_payload


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


class EventBus:
    """Fan-out of client events to subscribers; see the module docstring for sequence numbers and loop
    affinity.

    ``state`` supplies the current state for the STATE event sent first on every subscription.
    ``queue_size`` bounds each subscriber's queue; ``heartbeat_interval`` (seconds, 0 = off) and
    ``max_stream_age`` (seconds, 0 = never) apply once :meth:`start` has run. An artifact payload larger
    than ``max_payload_bytes`` (the largest message a stream may send, less room for the event's other
    fields) is left out of the event, which is still delivered (logged once per payload): a subscriber
    then reads the artifact from ``artifact_location``.
    """

    def __init__(
        self,
        *,
        queue_size: int = 256,
        max_payload_bytes: int | None = None,
        heartbeat_interval: float = 20.0,
        max_stream_age: float = 0.0,
        state: StateProvider | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.queue_size = queue_size
        self.max_payload_bytes = max_payload_bytes
        self.heartbeat_interval = heartbeat_interval
        self.max_stream_age = max_stream_age
        self._state: StateProvider = state or (lambda: (self._ready is not None, None, ""))
        self._clock = clock
        self._sequence = 0
        self._subscribers: set[Subscription] = set()
        self._consumers: set[Subscription] = set()
        self._drained = asyncio.Event()
        self._drained.set()
        self._ready: _Published | None = None
        self._artifact: _Published | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._closed = False

    # ------------------------------------------------------------------------------------ state

    @property
    def last_sequence(self) -> int:
        """The number of the last event issued (0 before the first)."""
        return self._sequence

    @property
    def subscriber_count(self) -> int:
        """Subscriptions currently receiving events."""
        return len(self._subscribers)

    @property
    def stream_count(self) -> int:
        """Subscriptions not yet read to their end or closed (a cut-off stream counts until it ends)."""
        return len(self._consumers)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run (SHUTDOWN was published)."""
        return self._closed

    # ------------------------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the heartbeat timer (when ``heartbeat_interval`` > 0). Idempotent."""
        if self._heartbeat_task is None and self.heartbeat_interval > 0 and not self._closed:
            self._heartbeat_task = asyncio.get_running_loop().create_task(
                self._heartbeats(), name="targetd-event-heartbeats"
            )

    async def _heartbeats(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.heartbeat_interval)
            if self._subscribers:
                heartbeat = self._event(pb.EVENT_TYPE_HEARTBEAT, self._sequence)
                response = pb.SubscribeEventsResponse(event=heartbeat)
                for subscription in list(self._subscribers):
                    subscription._offer(response)

    def close(self) -> pb.Event | None:
        """Publish SHUTDOWN to every subscriber (even a full queue gets it) and end their streams; later
        subscriptions are refused. Returns the SHUTDOWN event (None if already closed)."""
        if self._closed:
            return None
        self._closed = True
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            self._heartbeat_task = None
        self._sequence += 1
        event = self._event(pb.EVENT_TYPE_SHUTDOWN, self._sequence)
        response = pb.SubscribeEventsResponse(event=event)
        for subscription in list(self._subscribers):
            subscription._push_final(response)
        log.info("event bus closed: shutdown sent to %d subscribers", len(self._consumers))
        return event

    async def wait_drained(self, limit: float) -> bool:
        """Wait until every subscription has been read to its end or closed, at most ``limit`` seconds.
        Returns whether all were."""
        try:
            await asyncio.wait_for(self._drained.wait(), limit)
        except TimeoutError:
            return False
        return True

    # ------------------------------------------------------------------------------------ subscribing

    def subscribe(self, types: Iterable[int] = (), include_payload: bool = False) -> Subscription:
        """Open a subscription: STATE, then ``client_ready`` if ready and the last
        ``artifact_download_succeeded`` (with its payload if ``include_payload``) in sequence order, then
        live events.

        ``types`` filters the events (empty: all); STATE, HEARTBEAT and SHUTDOWN are always sent. Raises
        :class:`InvalidRequestError` for an unknown type and :class:`NotReadyError` once the bus is closed.
        """
        wanted = frozenset(types)
        unknown = sorted(wanted - FILTERABLE - ALWAYS_SENT)
        if unknown:
            raise InvalidRequestError(
                f"unknown event type(s) {', '.join(map(str, unknown))}; use the EventType values",
                field="types",
            )
        if self._closed:
            raise NotReadyError("targetd is shutting down; subscribe again (to another replica)")
        subscription = Subscription(self, self.queue_size, wanted or None, include_payload)
        ready, info, location = self._state()
        state = self._event(pb.EVENT_TYPE_STATE, self._sequence)
        state.ready = ready
        state.artifact_location = location
        if info is not None:
            state.artifact.CopyFrom(info)
        # The replay is queued beyond the bound: it is the subscriber's first read.
        subscription._queue.put_nowait(pb.SubscribeEventsResponse(event=state))
        # Replayed in the order they happened (sequence order), as the SDK emitted them: the download
        # that made the client ready comes before client_ready.
        replay = [r for r in (self._ready if ready else None, self._artifact) if r is not None]
        for retained in sorted(replay, key=lambda r: r.event.sequence):
            if subscription.wants(retained.event.type):
                subscription._queue.put_nowait(retained.for_subscriber(include_payload))
        self._subscribers.add(subscription)
        self._consumers.add(subscription)
        self._drained.clear()
        if self.max_stream_age > 0:
            loop = asyncio.get_running_loop()
            subscription._expiry = loop.call_later(self.max_stream_age, subscription._expire)
        return subscription

    def _remove(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    def _consumer_done(self, subscription: Subscription) -> None:
        self._consumers.discard(subscription)
        if not self._consumers:
            self._drained.set()

    # ------------------------------------------------------------------------------------ publishing

    def _event(self, event_type: int, sequence: int) -> pb.Event:
        event = pb.Event(type=event_type, sequence=sequence)  # type: ignore[arg-type]
        event.time.FromNanoseconds(self._clock())
        return event

    def _publish(self, event_type: int, payload: bytes | None = None, **fields: object) -> _Published:
        if self._closed:  # after SHUTDOWN nothing is numbered or sent
            log.debug("event type %d dropped: the bus is closed", event_type)
            return _Published(pb.Event(type=event_type))  # type: ignore[arg-type]
        self._sequence += 1
        event = self._event(event_type, self._sequence)
        for name, value in fields.items():
            if isinstance(value, pb.ArtifactInfo | pb.EventError | delivery_pb2.Geo):
                getattr(event, name).CopyFrom(value)
            else:
                setattr(event, name, value)
        if payload and self.max_payload_bytes is not None and len(payload) > self.max_payload_bytes:
            log.warning(
                "artifact payload of %d bytes left out of event %d: over the %d bytes a stream message may "
                "carry (raise max_message_bytes to send it)",
                len(payload),
                self._sequence,
                self.max_payload_bytes,
            )
            payload = None
        published = _Published(event, payload)
        for subscription in list(self._subscribers):
            if subscription.wants(event_type):
                subscription._offer(published.for_subscriber(subscription.include_payload))
        return published

    def publish_client_ready(self) -> pb.Event:
        """Publish ``client_ready`` (retained: replayed to later subscribers while ready)."""
        self._ready = self._publish(pb.EVENT_TYPE_CLIENT_READY)
        log.debug("event client_ready seq=%d", self._sequence)
        return self._ready.event

    def clear_ready(self) -> None:
        """Forget the retained ``client_ready`` (the client is no longer ready); publishes nothing."""
        self._ready = None

    def publish_artifact_download_succeeded(
        self, location: str, info: pb.ArtifactInfo, payload: bytes
    ) -> pb.Event:
        """Publish ``artifact_download_succeeded``; ``payload`` (the artifact JSON) goes only to
        subscribers that asked for it. Retained and replayed to later subscribers."""
        self._artifact = self._publish(
            pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_SUCCEEDED, payload, artifact_location=location, artifact=info
        )
        log.debug("event artifact_download_succeeded seq=%d", self._sequence)
        return self._artifact.event

    def publish_artifact_download_failed(self, location: str, error: pb.EventError) -> pb.Event:
        """Publish ``artifact_download_failed`` with the location and the error."""
        published = self._publish(
            pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_FAILED, artifact_location=location, error=error
        )
        return published.event

    def publish_geo_location_updated(self, geo: delivery_pb2.Geo) -> pb.Event:
        """Publish ``geo_location_updated`` with the geo context a lookup produced."""
        return self._publish(pb.EVENT_TYPE_GEO_LOCATION_UPDATED, geo_context=geo).event
