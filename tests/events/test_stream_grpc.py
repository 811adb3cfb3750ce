"""SubscribeEvents over real gRPC (in-process grpc.aio server on a loopback port): fan-out to 200
subscribers, a stalled subscriber cut off while the others and unary calls carry on, filters, payloads,
heartbeats, maximum stream age, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from targetd.v1 import decisioning_service_pb2 as pb
from targetd.v1 import decisioning_service_pb2_grpc as pb_grpc
from targetd.v1 import delivery_pb2
from targetd_server.config import Settings
from targetd_server.service.server import RunningServer, start_server
from tests.artifacts.cdn import fake_cdn, shared_artifact
from tests.conftest import CONFORMANCE
from tests.support import eventually_async

AB = shared_artifact("TEST_ARTIFACT_AB_SIMPLE")
VIEWS = shared_artifact("TEST_ARTIFACT_VIEWS")


OFFERS = pb.GetOffersRequest(
    request=delivery_pb2.DeliveryRequest(
        id=delivery_pb2.VisitorId(tnt_id="338e3c1e51f7416a8e1ccba4f81acea0.28_0"),
        context=delivery_pb2.Context(channel=delivery_pb2.CHANNEL_TYPE_WEB),
        execute=delivery_pb2.ExecuteRequest(mboxes=[delivery_pb2.MboxRequest(name="mbox-magician", index=1)]),
    )
)


def settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "client": "acmeclient",
        "organization_id": "1234567890@AdobeOrg",
        "decisioning_method": "on-device",
        "listen": "127.0.0.1:0",
        "data_dir": str(tmp_path),
        "artifact_payload": AB.decode(),
        "polling_interval": 0,
        "heartbeat_interval": 600.0,
        "grace_period": 2.0,
        "telemetry_enabled": False,
    }
    values.update(overrides)
    return Settings(**values)


@contextlib.asynccontextmanager
async def serve(config: Settings) -> AsyncIterator[tuple[RunningServer, grpc.aio.Channel]]:
    running = await start_server(config)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield running, channel
    finally:
        await running.stop()
        await channel.close()


def stub(channel: grpc.aio.Channel) -> Any:
    return pb_grpc.DecisioningServiceStub(channel)


async def read(call: Any, count: int) -> list[pb.Event]:
    return [(await asyncio.wait_for(call.read(), 10)).event for _ in range(count)]


async def test_200_subscribers_all_receive_an_artifact_change(tmp_path: Path) -> None:
    with fake_cdn(AB) as cdn:
        config = settings(
            tmp_path,
            artifact_payload=None,
            artifact_location=cdn.url(),
            polling_interval=100,
            polling_interval_minimum=100,
        )
        async with serve(config) as (running, _):
            await eventually_async(lambda: _true(running.client.ready))
            channels = [
                grpc.aio.insecure_channel(
                    f"127.0.0.1:{running.port}", options=[("grpc.use_local_subchannel_pool", 1)]
                )
                for _ in range(4)
            ]
            calls = [stub(channels[i % 4]).SubscribeEvents(pb.SubscribeEventsRequest()) for i in range(200)]
            replays = await asyncio.gather(*(read(call, 3) for call in calls))
            assert all(
                [e.type for e in r]
                == [
                    pb.EVENT_TYPE_STATE,
                    pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_SUCCEEDED,
                    pb.EVENT_TYPE_CLIENT_READY,
                ]
                for r in replays
            )
            assert running.client.events.subscriber_count == 200

            cdn.set_artifact(VIEWS, '"rev-2"')

            async def wait_for_change(call: Any) -> pb.Event:
                while True:
                    event: pb.Event = (await call.read()).event
                    if event.type == pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_SUCCEEDED:
                        return event

            changes = await asyncio.wait_for(asyncio.gather(*(wait_for_change(c) for c in calls)), 60)
            assert {(e.artifact.revision, e.sequence) for e in changes} == {('"rev-2"', changes[0].sequence)}
            for call in calls:
                call.cancel()
            for channel in channels:
                await channel.close()
            await eventually_async(lambda: _true(running.client.events.subscriber_count == 0))


async def test_a_stalled_subscriber_is_cut_off_while_others_and_unary_calls_carry_on(tmp_path: Path) -> None:
    big = (CONFORMANCE / "artifact.json").read_bytes()
    async with serve(settings(tmp_path, subscriber_queue_size=16)) as (running, channel):
        bus = running.client.events
        info = running.client.artifacts.snapshot.info  # type: ignore[union-attr]
        # The stalled subscriber: a separate channel, read once, then never again.
        stalled_channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
        stalled = pb_grpc.DecisioningServiceStub(stalled_channel).SubscribeEvents(
            pb.SubscribeEventsRequest(include_artifact_payload=True), timeout=120
        )
        first = await asyncio.to_thread(next, stalled)
        assert first.event.type == pb.EVENT_TYPE_STATE
        others = [stub(channel).SubscribeEvents(pb.SubscribeEventsRequest()) for _ in range(3)]
        for call in others:
            await read(call, 2)  # STATE, CLIENT_READY (a payload has no download event)
        await eventually_async(lambda: _true(bus.subscriber_count == 4))

        published = 0
        while bus.subscriber_count == 4 and published < 500:  # bounded: megabytes each for the stalled one
            bus.publish_artifact_download_succeeded("loc", info, big)
            published += 1
            received = await asyncio.gather(*(read(call, 1) for call in others))  # the others keep up
            assert all(r[0].sequence == bus.last_sequence for r in received)
            status = await stub(channel).GetStatus(pb.GetStatusRequest(), timeout=5)
            assert status.ready
            offers = await stub(channel).GetOffers(OFFERS, timeout=5)
            assert offers.envelope.response.execute.mboxes[0].name == "mbox-magician"
        assert bus.subscriber_count == 3, "the stalled subscriber was never cut off"
        # Its stream ended on the server although the client still reads nothing.
        await eventually_async(lambda: _true(bus.stream_count == 3))
        status = await stub(channel).GetStatus(pb.GetStatusRequest(), timeout=5)
        assert status.subscriber_count == 3 and status.last_sequence == bus.last_sequence

        count, code, details = await asyncio.to_thread(_drain, stalled)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert details.startswith("subscriber fell behind: 16 events were waiting to be read")
        assert count < published
        # the others still receive events
        bus.publish_geo_location_updated(delivery_pb2.Geo(city="Basel"))
        for call in others:
            assert (await read(call, 1))[0].geo_context.city == "Basel"
        stalled_channel.close()


async def test_filters_payload_and_invalid_type(tmp_path: Path) -> None:
    async with serve(settings(tmp_path)) as (running, channel):
        only_failures = stub(channel).SubscribeEvents(
            pb.SubscribeEventsRequest(
                types=[pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_FAILED], include_artifact_payload=True
            )
        )
        with_payload = stub(channel).SubscribeEvents(pb.SubscribeEventsRequest(include_artifact_payload=True))
        state = (await read(only_failures, 1))[0]
        assert state.type == pb.EVENT_TYPE_STATE and state.ready
        assert state.artifact.source == pb.ARTIFACT_SOURCE_PAYLOAD
        assert [e.type for e in await read(with_payload, 2)] == [
            pb.EVENT_TYPE_STATE,
            pb.EVENT_TYPE_CLIENT_READY,
        ]
        bus = running.client.events
        bus.publish_artifact_download_succeeded("loc", state.artifact, b'{"x": 1}')
        bus.publish_artifact_download_failed("loc", pb.EventError(kind="network", message="down"))
        assert [e.type for e in await read(only_failures, 1)] == [pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_FAILED]
        succeeded, failed = await read(with_payload, 2)
        assert succeeded.artifact_payload == b'{"x": 1}' and failed.error.message == "down"

        unknown: Any = 99  # an enum value this server does not know (proto3 enums are open)
        bad = stub(channel).SubscribeEvents(pb.SubscribeEventsRequest(types=[unknown]))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await bad.read()
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "types: unknown event type(s) 99" in (caught.value.details() or "")


async def test_heartbeats_and_maximum_stream_age(tmp_path: Path) -> None:
    async with serve(settings(tmp_path, heartbeat_interval=0.05, max_stream_age=0.5)) as (_, channel):
        call = stub(channel).SubscribeEvents(
            pb.SubscribeEventsRequest(types=[pb.EVENT_TYPE_GEO_LOCATION_UPDATED])
        )
        events = [response.event async for response in call]  # ends by itself at the maximum age
        assert events[0].type == pb.EVENT_TYPE_STATE
        heartbeats = [e for e in events[1:] if e.type == pb.EVENT_TYPE_HEARTBEAT]
        assert heartbeats and len(heartbeats) == len(events) - 1
        assert {e.sequence for e in heartbeats} == {events[0].sequence}
        assert await call.code() == grpc.StatusCode.OK
        assert ("targetd-stream-end", "max-stream-age") in tuple(await call.trailing_metadata() or ())


async def test_graceful_stop_delivers_shutdown_then_refuses(tmp_path: Path) -> None:
    running = await start_server(settings(tmp_path))
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    call = stub(channel).SubscribeEvents(
        pb.SubscribeEventsRequest(types=[pb.EVENT_TYPE_GEO_LOCATION_UPDATED])
    )
    await read(call, 1)
    last = running.client.events.last_sequence
    stopping = asyncio.create_task(running.stop())
    rest = []
    while (response := await asyncio.wait_for(call.read(), 10)) is not grpc.aio.EOF:
        rest.append(response.event)
    await stopping
    assert [(e.type, e.sequence) for e in rest] == [(pb.EVENT_TYPE_SHUTDOWN, last + 1)]
    assert await call.code() == grpc.StatusCode.OK
    await channel.close()


async def _true(value: object) -> bool:
    return bool(value)


def _drain(call: Any) -> tuple[int, grpc.StatusCode, str]:
    """Read a (sync) stream to its end: the number of messages, the status code and details."""
    count = 0
    try:
        for _ in call:
            count += 1
    except grpc.RpcError as error:
        return count, error.code(), error.details() or ""
    return count, grpc.StatusCode.OK, ""
