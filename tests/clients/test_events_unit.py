"""The event object, the per-connection dispatch rules and the backoff (pure; no server)."""

from __future__ import annotations

from targetd.v1 import decisioning_service_pb2 as pb
from targetd_client import ArtifactDownloadError, TargetEvent
from targetd_client._events import Backoff, ConnectionState, to_event


def ev(kind: int, sequence: int, **fields: object) -> pb.Event:
    return pb.Event(type=kind, sequence=sequence, **fields)  # type: ignore[arg-type]


def names(events: list[TargetEvent]) -> list[str]:
    return [e["type"] for e in events]


def test_event_reads_as_attribute_and_item() -> None:
    event = to_event(
        ev(
            pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_FAILED,
            3,
            artifact_location="http://x/rules.json",
            error=pb.EventError(kind="http_status", message="HTTP 403", http_status=403),
        )
    )
    assert event.artifact_location == event["artifact_location"] == "http://x/rules.json"
    assert isinstance(event.error, ArtifactDownloadError)
    assert str(event.error) == "HTTP 403" and event.error.http_status == 403
    assert event.type == "artifact_download_failed" and event.sequence == 3
    assert dict(event)["artifact_location"] == "http://x/rules.json"
    try:
        _ = event.nope
        raise AssertionError("missing attributes raise AttributeError")
    except AttributeError:
        pass


def test_payload_is_parsed_and_geo_is_delivery_json() -> None:
    ok = to_event(ev(pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_SUCCEEDED, 2, artifact_payload=b'{"version": "1.0.0"}'))
    assert ok.artifact_payload == {"version": "1.0.0"}
    geo = to_event(
        ev(pb.EVENT_TYPE_GEO_LOCATION_UPDATED, 4, geo_context={"ip_address": "1.2.3.4", "city": "X"})
    )
    assert geo.geo_context == {"ipAddress": "1.2.3.4", "city": "X"}


def test_first_connection_passes_replays_and_emits_ready_once() -> None:
    state = ConnectionState()
    state.connected()
    out = state.on_message(ev(pb.EVENT_TYPE_STATE, 2, ready=True))
    assert names(out) == ["state", "client_ready"]
    assert names(state.on_message(ev(pb.EVENT_TYPE_CLIENT_READY, 1))) == []  # replay: already emitted
    assert names(state.on_message(ev(pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_SUCCEEDED, 2))) == [
        "artifact_download_succeeded"
    ]
    assert names(state.on_message(ev(pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_FAILED, 3))) == [
        "artifact_download_failed"
    ]


def test_not_ready_then_live_client_ready() -> None:
    state = ConnectionState()
    state.connected()
    assert names(state.on_message(ev(pb.EVENT_TYPE_STATE, 0, ready=False))) == ["state"]
    assert names(state.on_message(ev(pb.EVENT_TYPE_CLIENT_READY, 1))) == ["client_ready"]


def test_reconnect_to_same_server_emits_ready_but_not_old_replays() -> None:
    state = ConnectionState()
    state.connected()
    state.on_message(ev(pb.EVENT_TYPE_STATE, 2, ready=True))
    state.on_message(ev(pb.EVENT_TYPE_CLIENT_READY, 1))
    state.on_message(ev(pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_SUCCEEDED, 2))
    state.connected()  # same server, e.g. the stream's maximum age
    assert names(state.on_message(ev(pb.EVENT_TYPE_STATE, 2, ready=True))) == ["state", "client_ready"]
    assert names(state.on_message(ev(pb.EVENT_TYPE_CLIENT_READY, 1))) == []
    assert names(state.on_message(ev(pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_SUCCEEDED, 2))) == []
    # something new happened while disconnected: it is replayed and passed on
    state.connected()
    state.on_message(ev(pb.EVENT_TYPE_STATE, 5, ready=True))
    assert names(state.on_message(ev(pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_SUCCEEDED, 5))) == [
        "artifact_download_succeeded"
    ]


def test_reconnect_to_restarted_server_passes_its_replays() -> None:
    state = ConnectionState()
    state.connected()
    state.on_message(ev(pb.EVENT_TYPE_STATE, 0, ready=False))
    state.on_message(ev(pb.EVENT_TYPE_CLIENT_READY, 1))
    state.on_message(ev(pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_SUCCEEDED, 2))
    state.on_message(ev(pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_SUCCEEDED, 3))
    state.connected()
    assert names(state.on_message(ev(pb.EVENT_TYPE_STATE, 2, ready=True))) == ["state", "client_ready"]
    state.on_message(ev(pb.EVENT_TYPE_CLIENT_READY, 1))
    assert names(state.on_message(ev(pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_SUCCEEDED, 2))) == [
        "artifact_download_succeeded"
    ]


def test_backoff_is_capped_exponential_with_jitter() -> None:
    bounds: list[tuple[float, float]] = []

    def rand(low: float, high: float) -> float:
        bounds.append((low, high))
        return high

    backoff = Backoff(0.25, 2.0, rand=rand)
    delays = [backoff.next_delay() for _ in range(6)]
    assert delays == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    assert bounds[0] == (0.125, 0.25) and bounds[-1] == (1.0, 2.0)
    backoff.reset()
    assert backoff.next_delay() == 0.25
    real = Backoff(0.25, 2.0)
    assert all(0.125 <= real.next_delay() <= 2.0 for _ in range(20))
