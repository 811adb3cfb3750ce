"""The event bus on its own: sequence numbers, replay, filters, payloads, bounds, heartbeats, age, shutdown."""

from __future__ import annotations

import asyncio

import pytest

from targetd.v1 import decisioning_service_pb2 as pb
from targetd.v1 import delivery_pb2
from targetd_server.errors import InvalidRequestError, NotReadyError, OverloadedError
from targetd_server.events import EventBus, Subscription
from tests.support import eventually_async

INFO = pb.ArtifactInfo(location="http://cdn/rules.json", revision='"r1"', version="1.0.0")
FAILED = pb.EventError(kind="http_status", message="Non-200 status code response from artifact request: 500")


async def take(subscription: Subscription, count: int) -> list[pb.Event]:
    return [(await asyncio.wait_for(anext(subscription), 5)).event for _ in range(count)]


def queued(subscription: Subscription) -> int:
    return subscription._queue.qsize()


async def test_sequence_numbers_are_gap_free_and_state_comes_first() -> None:
    ready = [False]
    bus = EventBus(state=lambda: (ready[0], None, "http://cdn/rules.json"))
    early = bus.subscribe()
    (state,) = await take(early, 1)
    assert state.type == pb.EVENT_TYPE_STATE
    assert (state.sequence, state.ready, state.artifact_location) == (0, False, "http://cdn/rules.json")
    assert not state.HasField("artifact")
    bus.publish_artifact_download_failed("http://cdn/rules.json", FAILED)
    bus.publish_artifact_download_succeeded("http://cdn/rules.json", INFO, b"{}")
    ready[0] = True
    bus.publish_client_ready()
    bus.publish_geo_location_updated(delivery_pb2.Geo(city="Basel"))
    events = await take(early, 4)
    assert [e.sequence for e in events] == [1, 2, 3, 4]
    assert [e.type for e in events] == [
        pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_FAILED,
        pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_SUCCEEDED,
        pb.EVENT_TYPE_CLIENT_READY,
        pb.EVENT_TYPE_GEO_LOCATION_UPDATED,
    ]
    assert events[0].error == FAILED and events[0].artifact_location == "http://cdn/rules.json"
    assert events[1].artifact == INFO and events[1].artifact_payload == b""
    assert events[3].geo_context.city == "Basel"
    assert all(e.time.ToNanoseconds() > 0 for e in events)
    assert bus.last_sequence == 4


async def test_late_subscriber_gets_state_then_the_retained_events_in_sequence_order() -> None:
    bus = EventBus(state=lambda: (True, INFO, "loc"))
    bus.publish_artifact_download_succeeded("loc", INFO, b'{"version":"1.0.0"}')
    bus.publish_client_ready()
    bus.publish_artifact_download_failed("loc", FAILED)
    late = bus.subscribe(include_payload=True)
    state, artifact, ready = await take(late, 3)
    assert (state.type, state.sequence, state.ready, state.artifact) == (pb.EVENT_TYPE_STATE, 3, True, INFO)
    # the SDK's order: the download that made the client ready, then client_ready
    assert (artifact.type, artifact.sequence) == (pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_SUCCEEDED, 1)
    assert (ready.type, ready.sequence) == (pb.EVENT_TYPE_CLIENT_READY, 2)
    assert artifact.artifact_payload == b'{"version":"1.0.0"}'
    assert queued(late) == 0  # failures are not replayed
    bus.publish_geo_location_updated(delivery_pb2.Geo())
    assert [e.sequence for e in await take(late, 1)] == [4]


async def test_not_ready_means_no_client_ready_replay() -> None:
    bus = EventBus(state=lambda: (False, None, ""))
    bus.publish_client_ready()
    bus.clear_ready()
    sub = bus.subscribe()
    assert [e.type for e in await take(sub, 1)] == [pb.EVENT_TYPE_STATE]
    assert queued(sub) == 0


async def test_filter_and_payload_are_per_subscriber() -> None:
    bus = EventBus()
    failures_only = bus.subscribe([pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_FAILED])
    with_payload = bus.subscribe(include_payload=True)
    without = bus.subscribe()
    for sub in (failures_only, with_payload, without):
        await take(sub, 1)
    bus.publish_artifact_download_succeeded("loc", INFO, b"PAYLOAD")
    bus.publish_artifact_download_failed("loc", FAILED)
    assert [e.sequence for e in await take(failures_only, 1)] == [2]
    assert queued(failures_only) == 0
    got_payload, _ = await take(with_payload, 2)
    got_plain, _ = await take(without, 2)
    assert got_payload.artifact_payload == b"PAYLOAD"
    assert got_plain.artifact_payload == b""
    assert got_plain.artifact == got_payload.artifact


async def test_unknown_event_type_is_invalid() -> None:
    with pytest.raises(InvalidRequestError, match="types: unknown event type"):
        EventBus().subscribe([pb.EVENT_TYPE_CLIENT_READY, 42])


async def test_a_full_queue_cuts_off_that_subscriber_only() -> None:
    bus = EventBus(queue_size=3)
    slow = bus.subscribe()
    fast = bus.subscribe()
    cut: list[bool] = []
    slow.on_cutoff = lambda: cut.append(True)
    await take(fast, 1)
    for _ in range(10):
        bus.publish_geo_location_updated(delivery_pb2.Geo())
        await take(fast, 1)
    assert cut == [True]
    assert bus.subscriber_count == 1
    assert slow.error is not None
    with pytest.raises(OverloadedError, match="subscriber fell behind: 3 events"):
        await take(slow, 1)
    assert slow.closed
    assert bus.stream_count == 1


async def test_heartbeats_carry_the_last_sequence() -> None:
    bus = EventBus(heartbeat_interval=0.05)
    bus.start()
    sub = bus.subscribe()
    await take(sub, 1)
    bus.publish_client_ready()
    await take(sub, 1)
    heartbeat = (await take(sub, 1))[0]
    assert (heartbeat.type, heartbeat.sequence) == (pb.EVENT_TYPE_HEARTBEAT, 1)
    assert bus.last_sequence == 1  # heartbeats are not new events
    bus.close()


async def test_max_stream_age_ends_the_stream_cleanly() -> None:
    bus = EventBus(max_stream_age=0.05)
    sub = bus.subscribe()
    await take(sub, 1)
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(sub), 5)
    assert sub.expired and sub.error is None
    assert bus.subscriber_count == 0


async def test_close_sends_shutdown_even_to_a_full_queue_then_refuses() -> None:
    bus = EventBus(queue_size=2)
    sub = bus.subscribe()
    bus.publish_client_ready()
    shutdown = bus.close()
    assert shutdown is not None and shutdown.sequence == 2
    events = [r.event async for r in sub]
    assert [e.type for e in events] == [
        pb.EVENT_TYPE_STATE,
        pb.EVENT_TYPE_CLIENT_READY,
        pb.EVENT_TYPE_SHUTDOWN,
    ]
    assert await bus.wait_drained(1)
    assert bus.close() is None
    with pytest.raises(NotReadyError, match="shutting down"):
        bus.subscribe()
    dropped = bus.publish_geo_location_updated(delivery_pb2.Geo())
    assert dropped.sequence == 0 and bus.last_sequence == 2


async def test_wait_drained_reports_streams_still_open() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    bus.close()
    assert not await bus.wait_drained(0.01)
    sub.close()
    await eventually_async(lambda: bus.wait_drained(0.01))


async def test_a_payload_over_the_stream_message_limit_is_left_out_and_the_event_still_sent() -> None:
    bus = EventBus(state=lambda: (True, INFO, "loc"), max_payload_bytes=10)
    sub = bus.subscribe(include_payload=True)
    await take(sub, 1)  # STATE
    bus.publish_artifact_download_succeeded("loc", INFO, b'{"version":"1.0.0"}')  # 19 bytes > 10
    (event,) = await take(sub, 1)
    assert event.type == pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_SUCCEEDED and event.artifact == INFO
    assert event.artifact_payload == b""
    small = EventBus(state=lambda: (True, INFO, "loc"), max_payload_bytes=64)
    small.publish_artifact_download_succeeded("loc", INFO, b'{"version":"1.0.0"}')
    late = small.subscribe(include_payload=True)
    assert (await take(late, 2))[1].artifact_payload == b'{"version":"1.0.0"}'
