"""The one HTTP client stack (``targetd_server.transport``, aiohttp) and its two remote users here: the
Delivery API client and the geo lookup, against real aiohttp servers on loopback (no mocks)."""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
import uvloop
from aiohttp import web
from yarl import URL

from targetd.v1 import delivery_pb2
from targetd_server import __version__
from targetd_server.config import Settings
from targetd_server.delivery.geo import GeoLookup
from targetd_server.delivery.http import DeliveryApi
from targetd_server.errors import NotReadyError, UpstreamError, UpstreamRejectedError, UpstreamTimeoutError
from targetd_server.transport import (
    BodyTooLargeError,
    Environment,
    Http1Client,
    HttpClient,
    TransportClosedError,
    cdn_base,
    read_capped,
)
from tests.support import eventually_async

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def serve(handler: Handler) -> AsyncIterator[tuple[str, list[web.BaseRequest]]]:
    """An aiohttp server on 127.0.0.1 answering every request with ``handler``; yields its ``host:port``
    and the requests seen."""
    seen: list[web.BaseRequest] = []

    async def record(request: web.BaseRequest) -> web.StreamResponse:
        seen.append(request)
        await request.read()  # kept for the test (readable after the answer)
        return await handler(request)

    server = web.Server(record)
    runner = web.ServerRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


def _settings(address: str, **extra: Any) -> Settings:
    return Settings(
        client="acme", organization_id="org@AdobeOrg", server_domain=address, secure=False, **extra
    )


def _request() -> delivery_pb2.DeliveryRequest:
    request = delivery_pb2.DeliveryRequest(request_id="r-1")
    request.execute.mboxes.add(name="home", index=1)
    return request


# ---------------------------------------------------------------------------------------- transport


def test_proxy_environment_is_applied_per_host() -> None:
    env = Environment(
        ca_file=None,
        ca_path=None,
        proxies={
            "http": "http://user:pw@proxy.local:3128",
            "https": "proxy.local:3129",
            "no": "skip.me,.corp",
        },
    )
    plain = env.route(URL("http://a.example/x"))
    assert plain.proxy == URL("http://proxy.local:3128")  # credentials moved to a header
    assert plain.proxy_headers == {"Proxy-Authorization": aiohttp.encode_basic_auth("user", "pw")}
    assert env.route(URL("https://a.example/")).proxy == URL("http://proxy.local:3129")
    assert env.route(URL("https://skip.me/")).proxy is None
    assert env.route(URL("https://x.corp/")).proxy is None
    assert Environment(ca_file=None, ca_path=None, proxies={}).route(URL("https://a.example/")).proxy is None


def test_cdn_base() -> None:
    base: dict[str, Any] = {"client": "a", "organization_id": "b"}
    assert cdn_base(Settings(**base)) == "https://assets.adobetarget.com"
    assert cdn_base(Settings(**base, cdn_environment="staging")) == "https://assets.staging.adobetarget.com"
    assert cdn_base(Settings(**base, cdn_base_path="cdn.example.com/")) == "https://cdn.example.com"
    assert cdn_base(Settings(**base, cdn_base_path="http://127.0.0.1:8080/")) == "http://127.0.0.1:8080"


async def test_requests_go_through_the_configured_proxy() -> None:
    async def proxy(request: web.BaseRequest) -> web.Response:
        return web.json_response({"via": "proxy"})

    async with serve(proxy) as (address, seen):
        env = Environment(ca_file=None, ca_path=None, proxies={"http": f"http://u:p@{address}"})
        client = HttpClient(limit=1, env=env)
        try:
            # (never resolved: the proxy is asked for it, and the test network guard allows loopback only)
            async with client.request("GET", "http://target.example/v1/geo") as reply:
                assert await reply.json() == {"via": "proxy"}
        finally:
            await client.aclose()
    (request,) = seen
    assert request.headers["Host"] == "target.example"
    assert request.headers["Proxy-Authorization"] == aiohttp.encode_basic_auth("u", "p")
    assert request.headers["User-Agent"] == f"targetd/{__version__}"


async def test_read_capped_refuses_a_body_over_the_cap() -> None:
    async def big(request: web.BaseRequest) -> web.StreamResponse:
        if request.path == "/declared":
            return web.Response(body=b"x" * 5000)
        response = web.StreamResponse()  # chunked: no Content-Length
        await response.prepare(request)
        for _ in range(5):
            await response.write(b"x" * 1000)
        await response.write_eof()
        return response

    async with serve(big) as (address, _):
        client = HttpClient(limit=2)
        try:
            for path, declared in (("/declared", 5000), ("/chunked", None)):
                async with client.request("GET", f"http://{address}{path}") as reply:
                    with pytest.raises(BodyTooLargeError) as caught:
                        await read_capped(reply, 4096)
                    assert caught.value.declared == declared
                async with client.request("GET", f"http://{address}{path}") as reply:
                    assert len(await read_capped(reply, 5000)) == 5000
        finally:
            await client.aclose()
        with pytest.raises(TransportClosedError):
            client.request("GET", f"http://{address}/")


# ---------------------------------------------------------------------------------------- Delivery API


async def test_execute_sends_the_sdk_request_and_parses_the_answer() -> None:
    async def ok(request: web.BaseRequest) -> web.Response:
        response = web.json_response(
            {"status": 200, "requestId": "r-1", "edgeHost": "mboxedge28.tt.omtrdc.net"}
        )
        response.set_cookie("visitor", "someone-else")  # must never reach the next call
        return response

    async with serve(ok) as (address, seen):
        api = DeliveryApi(_settings(address, version="2.8.0"))
        try:
            answer = await api.execute(_request(), session_id="s 1", cluster=None)
            await api.execute(_request(), session_id="s-2", cluster=None)
        finally:
            await api.aclose()
    assert answer.request_id == "r-1" and answer.edge_host == "mboxedge28.tt.omtrdc.net"
    first, second = seen
    assert first.method == "POST" and first.path == "/rest/v1/delivery"
    assert dict(first.query) == {"imsOrgId": "org@AdobeOrg", "sessionId": "s 1", "version": "2.8.0"}
    assert first.headers["Content-Type"] == "application/json"
    assert first.headers["User-Agent"] == f"targetd/{__version__}"
    assert first.headers["X-EXC-SDK"] == "targetd"
    assert first.headers["X-EXC-SDK-Version"] == __version__
    assert first.headers["X-Request-Id"] != second.headers["X-Request-Id"]
    assert json.loads(await first.read())["execute"]["mboxes"] == [{"name": "home", "index": 1}]
    assert "Cookie" not in second.headers


@pytest.mark.parametrize(
    ("status", "error", "text"),
    [
        (
            400,
            UpstreamRejectedError,
            "Delivery API answered 400 Bad Request: no such client (the request was",
        ),
        (429, UpstreamError, "Delivery API answered 429 Too Many Requests: no such client (retry later)"),
        (502, UpstreamError, "Delivery API answered 502 Bad Gateway: no such client (retry later)"),
    ],
)
async def test_failures_become_the_upstream_errors(status: int, error: type[Exception], text: str) -> None:
    async def fail(request: web.BaseRequest) -> web.Response:
        return web.Response(status=status, text="no such client")

    async with serve(fail) as (address, _):
        api = DeliveryApi(_settings(address))
        try:
            with pytest.raises(error) as caught:
                await api.execute(_request(), session_id="s", cluster=None)
            assert type(caught.value) is error
            assert str(caught.value).startswith(text)
            assert isinstance(caught.value, UpstreamError) and caught.value.status == status
            with pytest.raises(error):
                await api.send_async(_request(), session_id="s", cluster=None, timeout=1.0)
        finally:
            await api.aclose()


async def test_a_body_that_is_not_a_delivery_response_is_an_upstream_error() -> None:
    async def garbage(request: web.BaseRequest) -> web.Response:
        return web.Response(text="<html>proxy error</html>")

    async with serve(garbage) as (address, _):
        api = DeliveryApi(_settings(address))
        try:
            with pytest.raises(UpstreamError, match="with a body that is not a Delivery response"):
                await api.execute(_request(), session_id="s", cluster=None)
            await api.send_async(_request(), session_id="s", cluster=None)  # acceptance only: fine
        finally:
            await api.aclose()


async def test_time_remaining_bounds_the_call_and_closed_means_not_ready() -> None:
    release = asyncio.Event()

    async def slow(request: web.BaseRequest) -> web.Response:
        await release.wait()
        return web.json_response({"status": 200})

    async with serve(slow) as (address, _):
        api = DeliveryApi(_settings(address))
        started = time.monotonic()
        with pytest.raises(UpstreamTimeoutError, match="did not answer within 200 ms"):
            await api.execute(_request(), session_id="s", cluster=None, time_remaining=0.2)
        assert time.monotonic() - started < 1.5
        release.set()
        await api.aclose()
        with pytest.raises(NotReadyError):
            await api.execute(_request(), session_id="s", cluster=None)


async def test_an_unreachable_host_is_an_upstream_error() -> None:
    async def ok(request: web.BaseRequest) -> web.Response:
        return web.Response()

    async with serve(ok) as (address, _):
        pass  # the port is free again
    api = DeliveryApi(_settings(address))
    try:
        with pytest.raises(
            UpstreamError, match=r"^Delivery API call to http://127\.0\.0\.1:\d+/rest/v1/delivery"
        ):
            await api.execute(_request(), session_id="s", cluster=None)
    finally:
        await api.aclose()


async def test_notify_posts_over_http1_with_the_sdk_query_headers_and_status_rules() -> None:
    answers = [200, 200, 503, 429, 400]

    async def scripted(request: web.BaseRequest) -> web.Response:
        return web.json_response({"status": 0}, status=answers.pop(0))

    async with serve(scripted) as (address, seen):
        api = DeliveryApi(_settings(address, version="2.1"))
        try:
            body = b'{"requestId":"r-1"}'
            await api.notify(body, session_id="s 1", cluster=None, timeout=2.0)
            await api.notify(body, session_id="s-2", cluster=None, timeout=2.0)  # the same connection
            with pytest.raises(UpstreamError, match="answered 503") as failed:
                await api.notify(body, session_id="s", cluster=None, timeout=2.0)
            assert not isinstance(failed.value, UpstreamRejectedError)
            with pytest.raises(UpstreamError, match="answered 429") as limited:
                await api.notify(body, session_id="s", cluster=None, timeout=2.0)
            assert not isinstance(limited.value, UpstreamRejectedError)
            with pytest.raises(UpstreamRejectedError, match="answered 400"):
                await api.notify(body, session_id="s", cluster=None, timeout=2.0)
        finally:
            await api.aclose()
        with pytest.raises(NotReadyError):
            await api.notify(body, session_id="s", cluster=None, timeout=2.0)
    first = seen[0]
    assert first.method == "POST" and first.path == "/rest/v1/delivery"
    assert dict(first.query) == {"imsOrgId": "org@AdobeOrg", "sessionId": "s 1", "version": "2.1"}
    assert await first.read() == b'{"requestId":"r-1"}'
    assert first.headers["Content-Type"] == "application/json"
    assert first.headers["User-Agent"] == f"targetd/{__version__}"
    assert first.headers["X-EXC-SDK"] == "targetd"
    assert first.headers["X-EXC-SDK-Version"] == __version__
    assert first.headers["X-Request-Id"] != seen[1].headers["X-Request-Id"]


async def test_notify_timeouts_and_unreachable_hosts_are_upstream_errors() -> None:
    release = asyncio.Event()

    async def slow(request: web.BaseRequest) -> web.Response:
        await release.wait()
        return web.Response()

    async with serve(slow) as (address, _):
        api = DeliveryApi(_settings(address))
        try:
            with pytest.raises(UpstreamTimeoutError, match="did not answer within 200 ms"):
                await api.notify(b"{}", session_id="s", cluster=None, timeout=0.2)
        finally:
            release.set()
            await api.aclose()
    api = DeliveryApi(_settings(address))  # the port is free again
    try:
        with pytest.raises(UpstreamError, match=r"^Delivery API call to http://127\.0\.0\.1:\d+"):
            await api.notify(b"{}", session_id="s", cluster=None, timeout=2.0)
    finally:
        await api.aclose()


# ---------------------------------------------------------------------------------------- geo


async def test_geo_lookup_is_cached_and_failures_decide_without_geo() -> None:
    answer = {"x-geo-city": "SAN FRANCISCO", "x-geo-latitude": 37.75, "x-forwarded-for": "1.2.3.4"}

    async def geo(request: web.BaseRequest) -> web.Response:
        if request.headers.get("x-forwarded-for") == "9.9.9.9":
            return web.Response(status=500)
        if request.headers.get("x-forwarded-for") == "8.8.8.8":
            await asyncio.sleep(2)
        return web.json_response(answer)

    async with serve(geo) as (address, seen):
        updates: list[delivery_pb2.Geo] = []
        lookup = GeoLookup(
            _settings(address, cdn_base_path=f"http://{address}", geo_timeout=300), updates.append
        )
        try:
            found = await lookup.lookup("1.2.3.4")
            assert (
                found is not None and found.city == "SAN FRANCISCO" and found.latitude == pytest.approx(37.75)
            )
            assert await lookup.lookup("1.2.3.4") is found  # cached: no second request
            assert [r.path for r in seen] == ["/v1/geo"] and seen[0].headers["x-forwarded-for"] == "1.2.3.4"
            assert updates == [found]
            await lookup.lookup("unknownIpAddress")
            assert "x-forwarded-for" not in seen[-1].headers
            assert await lookup.lookup("9.9.9.9") is None
            started = time.monotonic()
            assert await lookup.lookup("8.8.8.8", time_remaining=0.1) is None
            assert time.monotonic() - started < 1.0
            assert lookup.failures == 2
        finally:
            await lookup.aclose()
        assert await lookup.lookup("5.5.5.5") is None  # closed: fails, never hangs


async def test_http1_client_keeps_at_most_limit_requests_in_flight_and_cancelled_waiters_free_nothing() -> (
    None
):
    active = peak = 0
    release = asyncio.Event()

    async def slow(request: web.BaseRequest) -> web.StreamResponse:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        try:
            await release.wait()
            return web.Response(text="ok")
        finally:
            active -= 1

    async with serve(slow) as (address, seen):
        client = Http1Client(limit=2)
        key = Http1Client.origin(URL(f"http://{address}/"))
        posts = [asyncio.ensure_future(client.post(key, "/x", b"{}", timeout=10)) for _ in range(5)]

        async def two_arrived() -> bool:
            return len(seen) == 2

        await eventually_async(two_arrived)
        posts[4].cancel()  # a waiter cancelled before it gets a slot
        await asyncio.sleep(0)
        assert len(seen) == 2 and active == 2  # the others still wait for a slot
        release.set()
        answers = await asyncio.gather(*posts[:4])
        assert [status for status, _ in answers] == [200] * 4 and posts[4].cancelled()
        assert peak == 2 and len(seen) == 4
        # every slot came back: the limit's worth can run at once again
        release.clear()
        again = [asyncio.ensure_future(client.post(key, "/y", b"{}", timeout=10)) for _ in range(2)]

        async def two_more() -> bool:
            return len(seen) == 6

        await eventually_async(two_more)
        release.set()
        await asyncio.gather(*again)
        await client.aclose()


async def test_http1_client_times_out_the_answer_and_the_wait_for_a_slot_then_recovers() -> None:
    """The request's one bound covers the answer (its timer closes that connection) and the wait for a
    slot (nothing is sent); the slots and the pool are whole again afterwards."""
    release = asyncio.Event()

    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        if request.path == "/slow":
            await release.wait()
        return web.Response(text=request.path)

    async with serve(handler) as (address, seen):
        client = Http1Client(limit=1)
        key = Http1Client.origin(URL(f"http://{address}/"))
        try:
            with pytest.raises(TimeoutError):
                await client.post(key, "/slow", b"{}", timeout=0.2)
            assert [r.path for r in seen] == ["/slow"]
            held = asyncio.ensure_future(client.post(key, "/slow", b"{}", timeout=10))

            async def second_arrived() -> bool:
                return len(seen) == 2

            await eventually_async(second_arrived)
            with pytest.raises(TimeoutError):  # the one slot is taken: never sent
                await client.post(key, "/waits", b"{}", timeout=0.2)
            assert len(seen) == 2
            release.set()
            assert await held == (200, b"/slow")
            assert await client.post(key, "/after", b"{}", timeout=5) == (200, b"/after")
            assert [r.path for r in seen] == ["/slow", "/slow", "/after"]
        finally:
            release.set()
            await client.aclose()


def test_http1_client_on_uvloop_resolves_names_first_and_a_timeout_while_resolving_leaves_nothing() -> None:
    """On uvloop (the sender's loop): the name is resolved before the connection is opened to the address,
    the Host header keeps the name, and a request whose timeout ends while its name resolves raises
    TimeoutError and leaves no future behind for asyncio to log ("exception was never retrieved": a line
    per request while the DNS is down, when uvloop's create_connection resolves it)."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        unhandled: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _, context: unhandled.append(context))
        resolving = asyncio.Event()
        fail = asyncio.Event()
        asked: list[str] = []

        async def resolve(host: str, port: int) -> list[tuple[Any, ...]]:
            asked.append(host)
            if host == "down.test":
                resolving.set()
                try:
                    await fail.wait()
                finally:
                    fail.set()
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            if host == "none.test":
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", port))]

        async def ok(request: web.BaseRequest) -> web.Response:
            return web.Response(text=request.headers["Host"])

        async with serve(ok) as (address, seen):
            port = int(address.rsplit(":", 1)[1])
            client = Http1Client(limit=4, resolve=resolve)
            try:
                answer = await client.post(("http", "delivery.test", port), "/x", b"{}", timeout=5)
                assert answer == (200, f"delivery.test:{port}".encode())
                assert await client.post(("http", "delivery.test", port), "/y", b"{}", timeout=5) == answer
                assert asked == ["delivery.test"] and len(seen) == 2  # the connection was kept
                with pytest.raises(TimeoutError):
                    await client.post(("http", "down.test", port), "/z", b"{}", timeout=0.1)
                assert resolving.is_set() and fail.is_set()  # the resolution was cancelled with the request
                with pytest.raises(OSError, match="Name or service not known"):
                    await client.post(("http", "none.test", port), "/z", b"{}", timeout=5)
                await asyncio.sleep(0.05)
                gc.collect()
                await asyncio.sleep(0)
                assert unhandled == []
            finally:
                await client.aclose()

    uvloop.run(main())
