"""SubscribeEvents against a real ``targetd serve`` process and a real loopback CDN: the exact event
sequence from not-ready to ready to shutdown, readiness, and a restart with the network gone."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from targetd.v1 import decisioning_service_pb2 as pb
from targetd.v1 import decisioning_service_pb2_grpc as pb_grpc
from targetd_server.artifacts.sources import NOT_AUTHORIZED
from tests.artifacts.cdn import FakeCdn, fake_cdn, shared_artifact
from tests.support import TargetdProcess, eventually

AB = shared_artifact("TEST_ARTIFACT_AB_SIMPLE")
VIEWS = shared_artifact("TEST_ARTIFACT_VIEWS")
BASE = ["--client", "acmeclient", "--organization-id", "1234567890@AdobeOrg", "--log-format", "text"]


def on_device(cdn: FakeCdn, data: Path, *extra: str) -> list[str]:
    return [
        *BASE,
        "--decisioning-method",
        "on-device",
        "--artifact-location",
        cdn.url(),
        "--polling-interval",
        "200",
        "--polling-interval-minimum",
        "200",
        "--heartbeat-interval",
        "600",
        "--data-dir",
        str(data),
        *extra,
    ]


class Recorder:
    """Reads one SubscribeEvents stream in a thread until it ends; keeps the events and the final status."""

    def __init__(self, channel: grpc.Channel, request: pb.SubscribeEventsRequest | None = None) -> None:
        stub = pb_grpc.DecisioningServiceStub(channel)
        self.call: Any = stub.SubscribeEvents(request or pb.SubscribeEventsRequest(), timeout=60)
        self.events: list[pb.Event] = []
        self.code: grpc.StatusCode | None = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for response in self.call:
                self.events.append(response.event)
            self.code = grpc.StatusCode.OK
        except grpc.RpcError as error:
            self.code = error.code()

    def types(self) -> list[int]:
        return [e.type for e in self.events]

    def join(self) -> None:
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()


def health(channel: grpc.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return int(stub.Check(health_pb2.HealthCheckRequest(), timeout=5).status)


def status(channel: grpc.Channel) -> pb.GetStatusResponse:
    return pb_grpc.DecisioningServiceStub(channel).GetStatus(pb.GetStatusRequest(), timeout=5)


@pytest.fixture
def cdn() -> Iterator[FakeCdn]:
    with fake_cdn(AB) as server:
        yield server


def test_exact_event_sequence_from_failing_to_ready_to_shutdown(tmp_path: Path, cdn: FakeCdn) -> None:
    cdn.always("403")
    with TargetdProcess(on_device(cdn, tmp_path)) as proc, grpc.insecure_channel(proc.address) as ch:
        recorder = Recorder(ch)
        eventually(lambda: recorder.types().count(pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_FAILED) >= 2)
        assert health(ch) == health_pb2.HealthCheckResponse.NOT_SERVING
        assert not status(ch).ready
        assert status(ch).last_error.http_status == 403

        cdn.always(None)  # the CDN recovers
        eventually(lambda: pb.EVENT_TYPE_CLIENT_READY in recorder.types())
        assert health(ch) == health_pb2.HealthCheckResponse.SERVING
        cdn.set_artifact(VIEWS, '"rev-2"')
        eventually(
            lambda: (
                [e.artifact.revision for e in recorder.events if e.artifact.revision]
                == ['"rev-1"', '"rev-2"']
            )
        )
        current = status(ch)
        assert current.ready and current.subscriber_count == 1
        assert current.artifact.revision == '"rev-2"' and current.artifact.source == pb.ARTIFACT_SOURCE_REMOTE
        assert current.artifact.size_bytes == len(VIEWS)
        assert current.artifact_location == cdn.url()
        assert not current.HasField("last_error")
        assert current.last_fetch_time.seconds > 0
        assert proc.stop() == 0  # SIGTERM: the stream gets SHUTDOWN, then ends
        recorder.join()
    assert recorder.code == grpc.StatusCode.OK

    state, *events = recorder.events
    assert (state.type, state.ready, state.artifact_location) == (pb.EVENT_TYPE_STATE, False, cdn.url())
    assert [e.sequence for e in events] == list(range(state.sequence + 1, state.sequence + 1 + len(events)))
    kinds = [e.type for e in events]
    first_success = kinds.index(pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_SUCCEEDED)
    assert first_success >= 2
    assert set(kinds[:first_success]) == {pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_FAILED}
    assert kinds[first_success:] == [
        pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_SUCCEEDED,
        pb.EVENT_TYPE_CLIENT_READY,
        pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_SUCCEEDED,
        pb.EVENT_TYPE_SHUTDOWN,
    ]
    failed = events[0]
    assert failed.artifact_location == cdn.url()
    assert (failed.error.kind, failed.error.message, failed.error.http_status) == (
        "http_status",
        NOT_AUTHORIZED,
        403,
    )
    assert events[first_success].artifact.revision == '"rev-1"'
    assert events[first_success].artifact_payload == b""  # not asked for


def test_restart_with_the_network_gone_serves_from_disk(tmp_path: Path) -> None:
    cdn = FakeCdn(AB).start()
    try:
        with TargetdProcess(on_device(cdn, tmp_path)) as proc, grpc.insecure_channel(proc.address) as ch:
            eventually(lambda: health(ch) == health_pb2.HealthCheckResponse.SERVING)
            eventually((tmp_path / "artifacts" / "current.json").exists)  # persisted after applying
    finally:
        cdn.stop()  # the network is gone: connections to the CDN are refused from now on

    with TargetdProcess(on_device(cdn, tmp_path)) as proc, grpc.insecure_channel(proc.address) as ch:
        eventually(lambda: health(ch) == health_pb2.HealthCheckResponse.SERVING)
        current = status(ch)
        assert current.ready
        assert current.artifact.source == pb.ARTIFACT_SOURCE_DISK_CACHE
        assert current.artifact.revision == '"rev-1"'
        assert current.artifact.size_bytes == len(AB)
        assert current.artifact_age_seconds > 0
        recorder = Recorder(ch, pb.SubscribeEventsRequest(include_artifact_payload=True))
        eventually(lambda: pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_FAILED in recorder.types())
        assert eventually(lambda: status(ch).last_error.kind) == "network"
        assert proc.stop() == 0
        assert "serving the last-known-good artifact" in proc.stderr()
        recorder.join()
    state, ready = recorder.events[:2]
    assert (state.type, state.ready, state.artifact.source) == (
        pb.EVENT_TYPE_STATE,
        True,
        pb.ARTIFACT_SOURCE_DISK_CACHE,
    )
    assert ready.type == pb.EVENT_TYPE_CLIENT_READY
    assert pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_SUCCEEDED not in recorder.types()
    assert recorder.types()[-1] == pb.EVENT_TYPE_SHUTDOWN
