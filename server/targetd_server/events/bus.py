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
from collections.abc import Callable, Iterable
from typing import Final

from targetd.v1 import decisioning_service_pb2 as pb
from targetd.v1 import delivery_pb2
from targetd_server.errors import InvalidRequestError, NotReadyError
from targetd_server.events.subscription import ALWAYS_SENT, Subscription

log = logging.getLogger("targetd.events")

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
