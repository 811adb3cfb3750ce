"""Hostile artifacts from a loopback CDN (issue 12): size caps as sent and decompressed, the bound on the
whole download, the schema check before the swap, and no re-download of a refused revision."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from targetd.v1 import decisioning_service_pb2 as pb
from targetd_server.artifacts import ArtifactProvider
from targetd_server.artifacts.decoding import DecodeLimitError, UnsupportedEncodingError, decode_body
from targetd_server.artifacts.schema import check_artifact
from targetd_server.artifacts.sources import make_source
from targetd_server.events import EventBus
from tests.artifacts.cdn import ARTIFACTS, FakeCdn, fake_cdn, shared_artifact
from tests.artifacts.test_provider import provider_for, settings, take
from tests.conftest import CONFORMANCE, REPO
from tests.support import eventually_async

AB = shared_artifact("TEST_ARTIFACT_AB_SIMPLE")
VIEWS = shared_artifact("TEST_ARTIFACT_VIEWS")
MB = 1024 * 1024


@pytest.fixture
def cdn() -> Any:
    with fake_cdn(AB) as server:
        yield server


async def _with_good_rules(tmp_path: Path, cdn: FakeCdn, **overrides: Any) -> tuple[ArtifactProvider, Any]:
    provider, sub = await provider_for(tmp_path, cdn.url(), **overrides)
    provider._source = make_source(provider.settings)
    assert await provider.refresh() is None
    (succeeded,) = await take(sub, 1)
    assert succeeded.type == pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_SUCCEEDED
    return provider, sub


async def test_a_gzip_encoded_artifact_is_decoded(tmp_path: Path, cdn: FakeCdn) -> None:
    provider, _ = await _with_good_rules(tmp_path, cdn)
    cdn.set_artifact(VIEWS, '"rev-2"')
    cdn.push("gzip")
    assert await provider.refresh() is None
    assert provider.snapshot is not None and provider.snapshot.revision == '"rev-2"'
    assert cdn.requests[-1].headers.get("Accept-Encoding") == "gzip, deflate"


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        ("gzip_bomb", f"decompresses to more than {MB} bytes (artifact_max_decompressed_bytes)"),
        ("huge", f"over the limit of {MB} bytes (artifact_max_bytes)"),
        ("chunked_huge", f"over the limit of {MB} bytes (artifact_max_bytes)"),
    ],
)
async def test_an_artifact_over_a_size_cap_is_refused(
    tmp_path: Path, cdn: FakeCdn, behaviour: str, message: str
) -> None:
    provider, sub = await _with_good_rules(
        tmp_path, cdn, artifact_max_bytes=MB, artifact_max_decompressed_bytes=MB
    )
    good = provider.snapshot
    cdn.set_artifact(VIEWS, '"rev-big"')
    cdn.push(behaviour)
    error = await provider.refresh()
    assert error is not None and error.kind == "too_large" and not error.retryable
    assert message in str(error)
    assert provider.snapshot is good
    (failed,) = await take(sub, 1)
    assert failed.type == pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_FAILED
    assert failed.error.kind == "too_large"


async def test_an_encoding_not_asked_for_is_refused(tmp_path: Path, cdn: FakeCdn) -> None:
    provider, _ = await _with_good_rules(tmp_path, cdn)
    cdn.push("brotli")
    error = await provider.refresh()
    assert error is not None and error.kind == "invalid_artifact"
    assert "Content-Encoding 'br' was not asked for" in str(error)


async def test_a_trickling_cdn_is_cut_off_by_the_whole_download_bound(tmp_path: Path, cdn: FakeCdn) -> None:
    provider, sub = await _with_good_rules(
        tmp_path, cdn, artifact_download_timeout=0.5, artifact_read_timeout=5.0
    )
    good = provider.snapshot
    cdn.push("trickle")  # a byte every 50 ms: every single read is quick, the whole never ends
    error = await provider.refresh()
    assert error is not None and error.kind == "timeout" and error.retryable
    assert provider.snapshot is good
    (failed,) = await take(sub, 1)
    assert failed.error.kind == "timeout"


def _mutated(change: Callable[[dict[str, Any]], None]) -> bytes:
    artifact = json.loads(AB)
    change(artifact)
    return json.dumps(artifact).encode()


def _rule(artifact: dict[str, Any]) -> dict[str, Any]:
    rule: dict[str, Any] = artifact["rules"]["mboxes"]["mbox-magician"][0]
    return rule


SCHEMA_FAULTS: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("no rules", lambda a: a.pop("rules"), "the artifact: must contain ['rules'] properties"),
    ("no views", lambda a: a["rules"].pop("views"), "rules: must contain ['views'] properties"),
    ("rules not a map of lists", lambda a: a["rules"].update(mboxes=[]), "rules.mboxes: must be object"),
    (
        "consequence null",
        lambda a: _rule(a).update(consequence=None),
        "rules.mboxes.mbox-magician[0].consequence: must be object",
    ),
    (
        "condition a bare string",
        lambda a: _rule(a).update(condition="true"),
        "rules.mboxes.mbox-magician[0].condition: must be a JSON Logic operation",
    ),
    (
        "activityId an object",
        lambda a: _rule(a).update(activityId={"id": 1}),
        "rules.mboxes.mbox-magician[0].activityId: must be integer",
    ),
    (
        "options not a list",
        lambda a: _rule(a)["consequence"].update(options={}),
        "rules.mboxes.mbox-magician[0].consequence.options: must be array",
    ),
    (
        "an operator object of two keys",
        lambda a: _rule(a).update(condition={"and": [{"==": [1, 1], "or": [True]}]}),
        "rules.mboxes.mbox-magician[0].condition",
    ),
    ("meta missing", lambda a: a.pop("meta"), "the artifact: must contain ['meta'] properties"),
]


@pytest.mark.parametrize(("name", "change", "path"), SCHEMA_FAULTS, ids=[f[0] for f in SCHEMA_FAULTS])
async def test_an_artifact_off_the_schema_never_replaces_good_rules(
    tmp_path: Path, cdn: FakeCdn, name: str, change: Callable[[dict[str, Any]], None], path: str
) -> None:
    provider, sub = await _with_good_rules(tmp_path, cdn)
    good = provider.snapshot
    cdn.set_artifact(_mutated(change), '"rev-bad"')
    error = await provider.refresh()
    assert error is not None and error.kind == "invalid_artifact"
    assert str(error).startswith("Invalid artifact: " + path), str(error)
    assert provider.snapshot is good
    (failed,) = await take(sub, 1)
    assert failed.type == pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_FAILED
    assert failed.error.message == str(error)


async def test_a_refused_revision_is_not_downloaded_again(tmp_path: Path, cdn: FakeCdn) -> None:
    provider, sub = await _with_good_rules(tmp_path, cdn)
    cdn.set_artifact(_mutated(lambda a: _rule(a).update(consequence=None)), '"rev-bad"')
    first = await provider.refresh()
    assert first is not None
    (failed,) = await take(sub, 1)
    assert failed.type == pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_FAILED
    for _ in range(3):
        assert await provider.refresh() is first  # the same refusal, without a download
    assert [r.headers.get("If-None-Match") for r in cdn.requests[-3:]] == ['"rev-bad"'] * 3
    assert not sub._queue.qsize(), "a refusal is published once, not at every poll"
    cdn.set_artifact(VIEWS, '"rev-3"')  # a new revision is fetched and applied
    assert await provider.refresh() is None
    assert provider.snapshot is not None and provider.snapshot.revision == '"rev-3"'


async def test_a_refused_first_artifact_backs_off(tmp_path: Path, cdn: FakeCdn) -> None:
    """With nothing applied, a refused artifact is retried with a growing backoff (cheap 304s), not
    downloaded again at every retry."""
    cdn.set_artifact(_mutated(lambda a: a.pop("rules")), '"rev-bad"')
    bus = EventBus()
    sub = bus.subscribe()
    provider = ArtifactProvider(settings(tmp_path, artifact_location=cdn.url()), bus)
    await provider.start()
    try:
        events = await take(sub, 2)
        assert events[1].type == pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_FAILED
        await eventually_async(lambda: _at_least(cdn, 4))
        assert all(r.headers.get("If-None-Match") == '"rev-bad"' for r in cdn.requests[1:4])
        assert provider.snapshot is None
    finally:
        await provider.stop()


async def _at_least(cdn: FakeCdn, requests: int) -> bool:
    return cdn.count() >= requests


def test_every_shared_and_bundled_artifact_follows_the_schema() -> None:
    paths = [*ARTIFACTS.glob("*.json"), CONFORMANCE / "artifact.json"]
    paths += list((REPO / "deploy" / "sample").rglob("rules.json"))
    assert len(paths) >= 19
    for path in paths:
        artifact = json.loads(path.read_bytes())
        if artifact.get("version", "").startswith("1."):
            check_artifact(artifact)


def test_decode_body_bounds() -> None:
    import gzip
    import zlib

    data = b"{}" * 1000
    assert decode_body(gzip.compress(data), "gzip", len(data)) == data
    assert decode_body(zlib.compress(data), "deflate", len(data)) == data
    raw_deflate = zlib.compressobj(wbits=-15)
    assert decode_body(raw_deflate.compress(data) + raw_deflate.flush(), "deflate", len(data)) == data
    with pytest.raises(DecodeLimitError):
        decode_body(gzip.compress(data), "gzip", len(data) - 1)
    with pytest.raises(DecodeLimitError):
        decode_body(data, None, len(data) - 1)
    with pytest.raises(UnsupportedEncodingError, match="truncated"):
        decode_body(gzip.compress(data)[:-12], "gzip", len(data))
    with pytest.raises(UnsupportedEncodingError, match="does not decode"):
        decode_body(b"not gzip at all", "gzip", 100)
