"""The artifact provider against a real loopback HTTP CDN: ETag/304, failures, validation, swap, cache."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from targetd.v1 import decisioning_service_pb2 as pb
from targetd_server.artifacts import ArtifactProvider, artifact_location
from targetd_server.artifacts.sources import NOT_AUTHORIZED
from targetd_server.config import Settings
from targetd_server.events import EventBus, Subscription
from tests.artifacts.cdn import FakeCdn, fake_cdn, shared_artifact
from tests.conftest import CONFORMANCE
from tests.support import eventually_async

AB = shared_artifact("TEST_ARTIFACT_AB_SIMPLE")
VIEWS = shared_artifact("TEST_ARTIFACT_VIEWS")
UNSUPPORTED = shared_artifact("TEST_ARTIFACT_UNSUPPORTED")


def settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "client": "acmeclient",
        "organization_id": "1234567890@AdobeOrg",
        "decisioning_method": "on-device",
        "data_dir": str(tmp_path / "data"),
        "polling_interval": 0,
        "artifact_read_timeout": 0.5,
    }
    values.update(overrides)
    return Settings(**values)


async def take(subscription: Subscription, count: int) -> list[pb.Event]:
    """The next ``count`` events (bounded wait: a missing event fails the test)."""
    return [(await asyncio.wait_for(anext(subscription), 10)).event for _ in range(count)]


def pending(subscription: Subscription) -> list[pb.Event]:
    """Events queued now, without waiting."""
    events = []
    while not subscription._queue.empty():
        item = subscription._queue.get_nowait()
        assert isinstance(item, pb.SubscribeEventsResponse)
        events.append(item.event)
    return events


_OPENED: list[ArtifactProvider] = []


@pytest.fixture(autouse=True)
async def _stop_opened_providers() -> AsyncIterator[None]:
    """Every provider of :func:`provider_for` is stopped (its HTTP client closed) on the test's loop."""
    yield
    while _OPENED:
        await _OPENED.pop().stop()


async def provider_for(
    tmp_path: Path, location: str, **overrides: Any
) -> tuple[ArtifactProvider, Subscription]:
    bus = EventBus()
    provider = ArtifactProvider(settings(tmp_path, artifact_location=location, **overrides), bus)
    _OPENED.append(provider)
    subscription = bus.subscribe()
    assert [e.type for e in await take(subscription, 1)] == [pb.EVENT_TYPE_STATE]
    return provider, subscription


@pytest.fixture
def cdn() -> Any:
    with fake_cdn(AB) as server:
        yield server


def test_cdn_url_follows_the_sdk_layout() -> None:
    base: dict[str, Any] = {"client": "acmeclient", "organization_id": "x@AdobeOrg"}
    assert (
        artifact_location(Settings(**base))
        == "https://assets.adobetarget.com/acmeclient/production/v1/rules.json"
    )
    assert (
        artifact_location(Settings(**base, environment="staging", property_token="tok-1"))
        == "https://assets.adobetarget.com/acmeclient/staging/v1/tok-1/rules.json"
    )
    assert artifact_location(Settings(**base, cdn_environment="staging")).startswith(
        "https://assets.staging.adobetarget.com/acmeclient/"
    )
    assert artifact_location(Settings(**base, cdn_base_path="cdn.example.com")).startswith(
        "https://cdn.example.com/"
    )
    assert (
        artifact_location(Settings(**base, cdn_base_path="http://127.0.0.1:8080/"))
        == "http://127.0.0.1:8080/acmeclient/production/v1/rules.json"
    )
    assert (
        artifact_location(Settings(**base, artifact_location="file:///x/rules.json"))
        == "file:///x/rules.json"
    )


async def test_download_with_etag_then_304_keeps_the_snapshot(tmp_path: Path, cdn: FakeCdn) -> None:
    provider, sub = await provider_for(tmp_path, "", cdn_base_path=cdn.base)
    assert provider.location == f"{cdn.base}/acmeclient/production/v1/rules.json"
    await provider.start()
    snapshot = await eventually_async(lambda: _value(provider.snapshot))
    assert cdn.requests[0].path == "/acmeclient/production/v1/rules.json"
    assert "If-None-Match" not in cdn.requests[0].headers
    info = snapshot.info
    assert info.source == pb.ARTIFACT_SOURCE_REMOTE
    assert info.revision == '"rev-1"'
    assert info.version == json.loads(AB)["version"]
    assert info.size_bytes == len(AB)
    assert info.location == provider.location
    assert info.mbox_count == len(json.loads(AB)["rules"]["mboxes"])
    assert snapshot.raw == AB
    (event,) = await take(sub, 1)
    assert event.type == pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_SUCCEEDED
    assert event.artifact_location == provider.location
    assert event.artifact == info
    assert event.sequence == 1

    assert await provider.refresh() is None
    assert cdn.requests[-1].headers.get("If-None-Match") == '"rev-1"'
    assert provider.snapshot is snapshot  # 304: nothing swapped, nothing published
    assert pending(sub) == []
    await provider.stop()


async def test_changed_artifact_is_swapped_in_one_piece(tmp_path: Path, cdn: FakeCdn) -> None:
    provider, sub = await provider_for(tmp_path, cdn.url())
    provider._source = _source(provider)
    await provider.refresh()
    first = provider.snapshot
    cdn.set_artifact(VIEWS, '"rev-2"')
    assert await provider.refresh() is None
    second = provider.snapshot
    assert first is not None and second is not None and second is not first
    assert second.info.revision == '"rev-2"' and second.raw == VIEWS
    assert second.compiled.view_rules and not first.compiled.view_rules
    assert first.raw == AB  # the old snapshot is untouched for decisions still using it
    assert [e.artifact.revision for e in await take(sub, 2)] == ['"rev-1"', '"rev-2"']


@pytest.mark.parametrize(
    ("behaviour", "kind", "message", "status"),
    [
        ("403", "http_status", NOT_AUTHORIZED, 403),
        ("500", "http_status", "Non-200 status code response from artifact request: 500", 500),
        ("404", "http_status", "Non-200 status code response from artifact request: 404", 404),
        ("slow", "timeout", "artifact request timed out", 0),
        ("truncated", "network", "artifact request failed", 0),
        ("invalid_json", "invalid_artifact", "Unable to read artifact JSON", 0),
    ],
)
async def test_a_failed_fetch_keeps_the_current_rules(
    tmp_path: Path, cdn: FakeCdn, behaviour: str, kind: str, message: str, *, status: int
) -> None:
    provider, sub = await provider_for(tmp_path, cdn.url())
    provider._source = _source(provider)
    await provider.refresh()
    good = provider.snapshot
    cdn.set_artifact(VIEWS, '"rev-2"')
    cdn.push(behaviour)
    error = await provider.refresh()
    assert error is not None
    assert error.retryable == (behaviour in ("500", "slow", "truncated"))
    assert provider.snapshot is good
    succeeded, failed = await take(sub, 2)
    assert succeeded.type == pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_SUCCEEDED
    assert failed.type == pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_FAILED
    assert failed.artifact_location == cdn.url()
    assert failed.error.kind == kind
    assert failed.error.message.startswith(message)
    assert failed.error.http_status == status
    assert failed.sequence == succeeded.sequence + 1
    status_msg = pb.GetStatusResponse()
    provider.fill_status(status_msg)
    assert status_msg.last_error == failed.error
    assert status_msg.artifact.revision == '"rev-1"'
    # the next good fetch clears the error
    assert await provider.refresh() is None
    assert provider.snapshot is not None and provider.snapshot.info.revision == '"rev-2"'
    assert provider.last_error is None


async def test_unsupported_version_is_rejected_with_the_sdk_message(tmp_path: Path, cdn: FakeCdn) -> None:
    provider, sub = await provider_for(tmp_path, cdn.url())
    provider._source = _source(provider)
    await provider.refresh()
    cdn.set_artifact(UNSUPPORTED, '"rev-99"')
    error = await provider.refresh()
    assert error is not None and error.kind == "unsupported_version"
    assert str(error) == (
        "The decisioning artifact version (99.0.0) is not supported. "
        "This library is compatible with this major version: 1"
    )
    assert provider.snapshot is not None and provider.snapshot.info.revision == '"rev-1"'
    assert [e.type for e in await take(sub, 2)] == [
        pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_SUCCEEDED,
        pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_FAILED,
    ]


async def test_geo_headers_of_the_artifact_response_publish_geo_location_updated(
    tmp_path: Path, cdn: FakeCdn
) -> None:
    cdn.geo_headers = {"x-geo-city": "SAN FRANCISCO", "x-geo-latitude": "37.75", "x-geo-country-code": "US"}
    provider, sub = await provider_for(tmp_path, cdn.url())
    provider._source = _source(provider)
    await provider.refresh()
    succeeded, geo = await take(sub, 2)
    assert succeeded.type == pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_SUCCEEDED
    assert geo.type == pb.EVENT_TYPE_GEO_LOCATION_UPDATED
    assert geo.geo_context.city == "SAN FRANCISCO"
    assert geo.geo_context.latitude == pytest.approx(37.75)
    assert geo.geo_context.country_code == "US"


async def test_first_download_failures_are_retried_until_one_succeeds(tmp_path: Path, cdn: FakeCdn) -> None:
    cdn.push("500", "403", "500")
    applied: list[str] = []
    bus = EventBus()
    sub = bus.subscribe()
    provider = ArtifactProvider(
        settings(tmp_path, artifact_location=cdn.url()), bus, on_applied=lambda s: applied.append(s.revision)
    )
    await provider.start()
    await eventually_async(lambda: _value(provider.snapshot))
    await provider.stop()
    assert applied == ['"rev-1"']
    events = await take(sub, 5)
    assert [e.type for e in events[1:]] == [pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_FAILED] * 3 + [
        pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_SUCCEEDED
    ]
    assert [e.error.http_status for e in events[1:4]] == [500, 403, 500]
    assert [e.sequence for e in events[1:]] == [1, 2, 3, 4]


async def test_polling_picks_up_a_change(tmp_path: Path, cdn: FakeCdn) -> None:
    provider, _ = await provider_for(tmp_path, cdn.url(), polling_interval=50, polling_interval_minimum=50)
    await provider.start()
    await eventually_async(lambda: _value(provider.snapshot))
    cdn.set_artifact(VIEWS, '"rev-2"')
    await eventually_async(lambda: _value(provider.snapshot and provider.snapshot.revision == '"rev-2"'))
    polls = cdn.count()
    await provider.stop()
    assert polls >= 2
    assert sum(1 for r in cdn.requests if r.headers.get("If-None-Match") == '"rev-1"') >= 1


def test_polling_interval_follows_node() -> None:
    from targetd_server.artifacts import effective_polling_interval

    base: dict[str, Any] = {"client": "a", "organization_id": "b"}
    assert effective_polling_interval(Settings(**base)) == 300000
    assert effective_polling_interval(Settings(**base, polling_interval=0)) == 0
    assert effective_polling_interval(Settings(**base, polling_interval=1000)) == 300000
    assert effective_polling_interval(Settings(**base, polling_interval=600000)) == 600000
    assert (
        effective_polling_interval(Settings(**base, polling_interval=100, polling_interval_minimum=50)) == 100
    )


async def test_file_location_and_unchanged_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_bytes(AB)
    for location in (str(path), path.as_uri()):
        provider, sub = await provider_for(tmp_path, location)
        await provider.start()
        snapshot = provider.snapshot
        assert snapshot is not None  # a local file is read inside start()
        assert snapshot.info.source == pb.ARTIFACT_SOURCE_FILE
        assert snapshot.info.revision.startswith("sha256:")
        assert await provider.refresh() is None
        assert provider.snapshot is snapshot  # unchanged content: not re-applied
        await provider.stop()
        assert [e.type for e in await take(sub, 1)] == [pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_SUCCEEDED]
        assert pending(sub) == []
    assert not (tmp_path / "data" / "artifacts").exists()  # local files are not cached again


async def test_missing_file_is_a_failure_event(tmp_path: Path) -> None:
    provider, sub = await provider_for(tmp_path, str(tmp_path / "nope.json"))
    provider._source = _source(provider)
    error = await provider.refresh()
    assert error is not None and error.kind == "file"
    assert "fix artifact_location" in str(error)
    assert [e.type for e in await take(sub, 1)] == [pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_FAILED]


@pytest.mark.parametrize("from_file", [False, True])
async def test_payload_is_applied_at_once_without_a_download_event(tmp_path: Path, from_file: bool) -> None:
    payload = AB.decode()
    if from_file:
        (tmp_path / "p.json").write_bytes(AB)
        payload = "@" + str(tmp_path / "p.json")
    bus = EventBus()
    sub = bus.subscribe()
    provider = ArtifactProvider(
        settings(tmp_path, artifact_payload=payload, artifact_location="http://127.0.0.1:9/rules.json"), bus
    )
    await provider.start()
    assert provider.snapshot is not None  # applied inside start()
    assert provider.snapshot.info.source == pb.ARTIFACT_SOURCE_PAYLOAD
    assert provider.snapshot.info.location == ""
    assert provider._task is None  # polling off: nothing fetched
    await provider.stop()
    assert [e.type for e in pending(sub)] == [pb.EVENT_TYPE_STATE]


@pytest.mark.parametrize("payload", ["{not json", UNSUPPORTED.decode()])
async def test_refused_payload_is_reported_and_nothing_is_fetched(
    tmp_path: Path, cdn: FakeCdn, payload: str
) -> None:
    """Node never fetches when given a payload, even one it refuses (polling off here)."""
    bus = EventBus()
    sub = bus.subscribe()
    provider = ArtifactProvider(
        settings(tmp_path, artifact_payload=payload, artifact_location=cdn.url()), bus
    )
    await provider.start()
    assert provider.snapshot is None
    assert provider._task is None  # no fetch scheduled, not even a retry
    await provider.stop()
    events = await take(sub, 2)
    assert events[1].type == pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_FAILED
    assert events[1].artifact_location == "artifact_payload"
    assert cdn.count() == 0
    assert provider.last_error is not None
    if payload.startswith("{not"):
        assert events[1].error.kind == "invalid_artifact"
    else:
        assert events[1].error.kind == "unsupported_version"
        assert str(provider.last_error).startswith(
            "The decisioning artifact version (99.0.0) is not supported."
        )


# ---------------------------------------------------------------------------------------- disk cache


async def test_restart_without_network_serves_the_disk_cache(
    tmp_path: Path, cdn: FakeCdn, caplog: pytest.LogCaptureFixture
) -> None:
    provider, _ = await provider_for(tmp_path, cdn.url())
    await provider.start()
    await eventually_async(lambda: _value(provider.snapshot))
    await provider.stop()
    cache_dir = tmp_path / "data" / "artifacts"
    meta = json.loads((cache_dir / "current.json").read_text())
    assert meta["etag"] == '"rev-1"' and meta["location"] == cdn.url() and meta["size"] == len(AB)
    assert not list(cache_dir.glob("*.tmp"))

    cdn.always("500")  # the network is gone
    caplog.set_level(logging.INFO, "targetd.artifacts")
    restarted, sub = await provider_for(tmp_path, cdn.url())
    await restarted.start()
    snapshot = restarted.snapshot
    assert snapshot is not None  # served from disk inside start(), before any download
    assert snapshot.info.source == pb.ARTIFACT_SOURCE_DISK_CACHE
    assert snapshot.info.revision == '"rev-1"'
    assert snapshot.raw == AB
    assert "serving the last-known-good artifact" in caplog.text
    failed = await take(sub, 1)  # revalidation is attempted and fails; the cache stays in use
    await restarted.stop()
    assert failed[0].type == pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_FAILED
    assert restarted.snapshot is snapshot
    assert cdn.requests[-1].headers.get("If-None-Match") == '"rev-1"'


async def test_revalidated_cache_becomes_remote(tmp_path: Path, cdn: FakeCdn) -> None:
    provider, _ = await provider_for(tmp_path, cdn.url())
    provider._source = _source(provider)
    await provider.refresh()
    await provider.stop()
    restarted, sub = await provider_for(tmp_path, cdn.url())
    await restarted.start()
    await eventually_async(
        lambda: _value(restarted.snapshot and restarted.snapshot.info.source == pb.ARTIFACT_SOURCE_REMOTE)
    )
    await restarted.stop()
    assert cdn.requests[-1].headers.get("If-None-Match") == '"rev-1"'
    assert pending(sub) == []  # 304: no events


@pytest.mark.parametrize("damage", ["meta", "body", "location"])
async def test_corrupt_or_foreign_cache_is_ignored(
    tmp_path: Path, cdn: FakeCdn, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    provider, _ = await provider_for(tmp_path, cdn.url())
    provider._source = _source(provider)
    await provider.refresh()
    await provider.stop()
    cache_dir = tmp_path / "data" / "artifacts"
    if damage == "meta":
        (cache_dir / "current.json").write_text("{garbage")
    elif damage == "body":
        body = next(cache_dir.glob("rules-*.json"))
        body.write_bytes(body.read_bytes()[:100])
    cdn.always("500")
    caplog.set_level(logging.INFO, "targetd.artifacts")
    location = cdn.url("/other/rules.json") if damage == "location" else cdn.url()
    restarted, _ = await provider_for(tmp_path, location)
    await restarted.start()
    assert restarted.snapshot is None
    await restarted.stop()
    expected = (
        "ignoring the artifact cache of" if damage == "location" else "ignoring the corrupt artifact cache"
    )
    assert expected in caplog.text


def _source(provider: ArtifactProvider) -> Any:
    from targetd_server.artifacts.sources import make_source

    return make_source(provider.settings)


async def _value(value: Any) -> Any:
    return value


async def test_the_full_size_sample_artifact_downloads_and_compiles(tmp_path: Path) -> None:
    big = (CONFORMANCE / "artifact.json").read_bytes()
    raw = json.loads(big)
    with fake_cdn(big, '"big-1"') as cdn:
        provider, sub = await provider_for(tmp_path, cdn.url())
        provider._source = _source(provider)
        assert await provider.refresh() is None
    snapshot = provider.snapshot
    assert snapshot is not None and snapshot.raw == big
    info = snapshot.info
    assert (info.size_bytes, info.version) == (len(big), raw["version"])
    assert info.mbox_count == len(raw["rules"].get("mboxes", {}))
    assert info.view_count == len(raw["rules"].get("views", {}))
    assert info.rule_count == snapshot.compiled.rule_count > 0
    assert info.client_code == raw["meta"]["clientCode"]
    assert info.generated_at == str(raw["meta"].get("generatedAt", ""))
    (event,) = await take(sub, 1)
    assert event.artifact == info


async def test_each_download_leaves_a_telemetry_entry_for_the_next_request(
    tmp_path: Path, cdn: FakeCdn
) -> None:
    from targetd_server.engine import TelemetryProvider

    telemetry = TelemetryProvider(enabled=True)
    provider = ArtifactProvider(
        settings(tmp_path, artifact_location=cdn.url(), polling_interval=0), EventBus(), telemetry=telemetry
    )
    await provider.start()
    try:
        from tests.support import eventually_async

        async def applied() -> bool:
            return provider.snapshot is not None

        await eventually_async(applied)
        entries = telemetry.drain()
        # Node's entry for an artifact download: requestId "ArtifactDownload", timestamp, execution, parsing.
        assert [e.request_id for e in entries] == ["ArtifactDownload"]
        entry = entries[0]
        assert entry.timestamp > 0 and entry.execution >= entry.parsing >= 0
        assert not entry.HasField("features")
    finally:
        await provider.stop()
