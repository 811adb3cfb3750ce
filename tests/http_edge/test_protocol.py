"""``POST /rest/v1/delivery`` over real HTTP against an in-process targetd on port 0: on-device answers,
the query / cookie mapping, gzip, and Target's status codes and error JSON for every refusal."""

from __future__ import annotations

import gzip
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme

from targetd_server import metrics
from targetd_server.service.server import RunningServer
from tests.http_edge.support import CLIENT, NOWHERE, delivery_url, post_json, serving, settings

TNT_ID = "338e3c1e51f7416a8e1ccba4f81acea0.28_0"
EXECUTE: dict[str, Any] = {
    "id": {"tntId": TNT_ID},
    "context": {"channel": "web", "address": {"url": "http://local-target-test/"}},
    "execute": {"mboxes": [{"name": "mbox-magician", "index": 1}]},
}


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with serving(settings(tmp_path, max_message_bytes=65536)) as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def _error(status: int, answer: Any, *fragments: str) -> None:
    """Target's UnexpectedError body: the same status, and a message."""
    assert isinstance(answer, dict) and set(answer) == {"status", "message"}, answer
    assert answer["status"] == status
    for fragment in fragments:
        assert fragment in answer["message"], answer["message"]


async def test_execute_is_decided_on_device(running: RunningServer, session: aiohttp.ClientSession) -> None:
    status, answer = await post_json(session, delivery_url(running), {**EXECUTE, "requestId": "r-1"})
    assert status == 200
    assert answer["status"] == 200 and answer["requestId"] == "r-1" and answer["client"] == CLIENT
    assert answer["id"]["tntId"] == TNT_ID
    (mbox,) = answer["execute"]["mboxes"]
    assert mbox["name"] == "mbox-magician"
    assert mbox["options"][0]["type"] == "json"
    assert mbox["options"][0]["responseTokens"]["activity.decisioningMethod"] == "on-device"


async def test_configured_client_in_the_query_is_accepted(
    running: RunningServer, session: aiohttp.ClientSession
) -> None:
    status, answer = await post_json(
        session, delivery_url(running), EXECUTE, params={"client": CLIENT, "sessionId": "s-1"}
    )
    assert status == 200 and answer["client"] == CLIENT


async def test_the_mbox_cookie_is_the_visitor(running: RunningServer, session: aiohttp.ClientSession) -> None:
    expires = int(time.time()) + 600
    cookie = f"session#from-cookie#{expires}|PC#abc.35_0#{expires + 1000}"
    body = {key: value for key, value in EXECUTE.items() if key != "id"}
    status, answer = await post_json(
        session, delivery_url(running), body, headers={"Cookie": f"mbox={cookie}"}
    )
    assert status == 200
    assert answer["id"]["tntId"] == "abc.35_0"  # tntId defaults to the PC cookie, as in the SDKs


async def test_gzip_only_when_asked(running: RunningServer, session: aiohttp.ClientSession) -> None:
    url = delivery_url(running)
    params = {"sessionId": "s-1"}
    async with session.post(url, params=params, json=EXECUTE, headers={"Accept-Encoding": "gzip"}) as reply:
        assert reply.status == 200
        assert reply.headers["Content-Encoding"] == "gzip"
        assert (await reply.json())["status"] == 200
    async with session.post(
        url, params=params, json=EXECUTE, headers={"Accept-Encoding": "identity"}, auto_decompress=False
    ) as reply:
        assert "Content-Encoding" not in reply.headers
        assert (await reply.json())["status"] == 200
    # A gzip request body is inflated.
    async with session.post(
        url,
        params=params,
        data=gzip.compress(b'{"execute":{"mboxes":[{"name":"mbox-magician","index":1}]}}'),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    ) as reply:
        assert reply.status == 200
        assert (await reply.json())["execute"]["mboxes"][0]["name"] == "mbox-magician"


async def test_invalid_json(running: RunningServer, session: aiohttp.ClientSession) -> None:
    async with session.post(
        delivery_url(running),
        params={"sessionId": "s-1"},
        data=b'{"execute": ',
        headers={"Content-Type": "application/json"},
    ) as reply:
        assert reply.status == 400
        assert reply.content_type == "application/json"
        _error(400, await reply.json(), "invalid JSON")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ([EXECUTE], "must be a JSON object"),
        ({"execute": {"mboxes": "home"}}, "execute.mboxes"),
        ({"execute": {}}, "request.execute: Either pageLoad or mboxes is required in execute"),
        ({"prefetch": {}}, "request.prefetch: Either views, pageLoad or mboxes is required in prefetch"),
    ],
)
async def test_invalid_delivery_request(
    running: RunningServer, session: aiohttp.ClientSession, body: Any, fragment: str
) -> None:
    status, answer = await post_json(session, delivery_url(running), body)
    assert status == 400
    _error(400, answer, fragment)


async def test_wrong_content_type(running: RunningServer, session: aiohttp.ClientSession) -> None:
    async with session.post(
        delivery_url(running),
        params={"sessionId": "s-1"},
        data=b"mbox=home",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ) as reply:
        assert reply.status == 415
        _error(415, await reply.json(), "application/json")


async def test_oversized_bodies(running: RunningServer, session: aiohttp.ClientSession) -> None:
    big = b'{"execute":{"mboxes":[{"name":"' + b"x" * 70_000 + b'","index":1}]}}'
    headers = {"Content-Type": "application/json"}
    url = delivery_url(running)
    # With a Content-Length: refused before the body is read.
    async with session.post(url, params={"sessionId": "s-1"}, data=big, headers=headers) as reply:
        assert reply.status == 413
        _error(413, await reply.json(), "65536 bytes")

    # Chunked, no Content-Length: refused once the limit is passed while reading.
    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    async with session.post(url, params={"sessionId": "s-1"}, data=chunks(), headers=headers) as reply:
        assert reply.status == 413
        _error(413, await reply.json(), "65536 bytes")


async def test_unknown_client_code(running: RunningServer, session: aiohttp.ClientSession) -> None:
    status, answer = await post_json(
        session, delivery_url(running), EXECUTE, params={"client": "otherclient", "sessionId": "s-1"}
    )
    assert status == 400
    _error(400, answer, "client: unknown client code 'otherclient'")


@pytest.mark.parametrize("params", [{}, {"sessionId": ""}, {"sessionId": "a b"}, {"sessionId": "x" * 129}])
async def test_session_id_is_required_and_checked(
    running: RunningServer, session: aiohttp.ClientSession, params: dict[str, str]
) -> None:
    status, answer = await post_json(session, delivery_url(running), EXECUTE, params=params)
    assert status == 400
    _error(400, answer, "sessionId")


async def test_unknown_route_and_method(running: RunningServer, session: aiohttp.ClientSession) -> None:
    url = delivery_url(running)
    async with session.post(url.replace("/delivery", "/mbox"), json={}) as reply:
        assert reply.status == 404
        _error(404, await reply.json())
    async with session.get(url) as reply:
        assert reply.status == 405
        assert reply.headers["Allow"] == "POST"
        _error(405, await reply.json())


async def test_not_ready_is_503(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    config = settings(tmp_path, artifact_payload=None, artifact_location=f"http://{NOWHERE}/rules.json")
    async with serving(config, wait_ready=False) as running:
        assert not running.client.ready
        status, answer = await post_json(session, delivery_url(running), EXECUTE)
        assert status == 503
        _error(503, answer, "not ready")


async def test_bearer_token(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    async with serving(settings(tmp_path, auth_token="s3cret")) as running:
        url = delivery_url(running)
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            status, answer = await post_json(session, url, EXECUTE, headers=headers)
            assert status == 401
            _error(401, answer, "bearer token")
        status, _ = await post_json(session, url, EXECUTE, headers={"Authorization": "Bearer s3cret"})
        assert status == 200


async def test_tls(tmp_path: Path) -> None:
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    trusted = ssl.create_default_context()
    ca.configure_trust(trusted)
    async with (
        serving(settings(tmp_path, tls_cert=str(cert), tls_key=str(key))) as running,
        aiohttp.ClientSession() as client,
    ):
        status, answer = await post_json(client, delivery_url(running, "https"), EXECUTE, ssl=trusted)
        assert status == 200 and answer["status"] == 200
        with pytest.raises(aiohttp.ClientConnectorCertificateError):  # a client that does not trust the CA
            await post_json(client, delivery_url(running, "https"), EXECUTE)


async def test_requests_are_counted(running: RunningServer, session: aiohttp.ClientSession) -> None:
    def count(status: str) -> float:
        value = metrics.REGISTRY.get_sample_value(
            "targetd_http_requests_total", {"route": "/rest/v1/delivery", "status": status}
        )
        return value or 0.0

    ok, bad = count("200"), count("400")
    await post_json(session, delivery_url(running), EXECUTE)
    await post_json(session, delivery_url(running), {"execute": {}})
    assert count("200") == ok + 1
    assert count("400") == bad + 1
