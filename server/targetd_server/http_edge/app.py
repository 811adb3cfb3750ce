"""The HTTP listener of the Delivery API (aiohttp's server): routes, the one middleware (bearer token,
errors → Target's error JSON, metrics), TLS, start and graceful stop.

Bounds: a body larger than ``max_message_bytes`` (the gRPC port's limit) is refused with 413 before it is
read whole; headers are capped by aiohttp (8 KiB a line, 128 fields); idle keep-alive connections close
after 75 s. Gzip answers when the caller sends ``Accept-Encoding: gzip`` (aiohttp compresses); gzip or
deflate request bodies are inflated by aiohttp (the inflated size is capped the same).

Loop affinity: create, start, stop and serve on the server's asyncio event loop (the gRPC loop).
"""

from __future__ import annotations

import hmac
import json
import logging
import ssl
import time
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler

from targetd_server import metrics
from targetd_server.calls import TargetClient
from targetd_server.config import Settings
from targetd_server.errors import InvalidRequestError, TargetdError
from targetd_server.http_edge.delivery import check_client, deliver, offers_call
from targetd_server.http_edge.status import HttpProblem, error_response, problem_response

log = logging.getLogger("targetd.http")

__all__ = ["DELIVERY_PATH", "HttpEdge"]

DELIVERY_PATH: Final = "/rest/v1/delivery"
_JSON_TYPES: Final = frozenset({"application/json", "text/plain"})  # text/plain: sendBeacon (at.js)
_KEEPALIVE_TIMEOUT: Final = 75.0


def _ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if not settings.tls_cert or not settings.tls_key:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.tls_cert, settings.tls_key)
    if settings.tls_client_ca:
        context.load_verify_locations(settings.tls_client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


class HttpEdge:
    """``POST /rest/v1/delivery`` for one :class:`TargetClient`; see the module docstring."""

    def __init__(self, settings: Settings, client: TargetClient) -> None:
        self._settings = settings
        self._client = client
        self._expected_auth = f"Bearer {settings.auth_token}".encode() if settings.auth_token else None
        self._runner: web.AppRunner | None = None
        self.port = 0

    def application(self) -> web.Application:
        """The aiohttp application (also usable with aiohttp's test utilities)."""
        app = web.Application(client_max_size=self._settings.max_message_bytes, middlewares=[self._edge])
        app.router.add_post(DELIVERY_PATH, self._delivery)
        return app

    async def start(self) -> int:
        """Bind ``settings.http_listen`` and serve; returns the bound port. SO_REUSEPORT only with
        ``workers`` > 1 (the workers share the port, as they share the gRPC one); otherwise a port in use
        raises OSError, as any address that cannot be bound does."""
        assert self._settings.http_listen, "http_listen is not set"
        host, port = _split_listen(self._settings.http_listen)
        runner = web.AppRunner(
            self.application(),
            access_log=None,
            keepalive_timeout=_KEEPALIVE_TIMEOUT,
            shutdown_timeout=self._settings.grace_period,
        )
        await runner.setup()
        site = web.TCPSite(
            runner,
            host,
            port,
            ssl_context=_ssl_context(self._settings),
            reuse_port=self._settings.workers > 1,
        )
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        return self.port

    async def stop(self) -> None:
        """Stop accepting, give in-flight requests ``grace_period`` seconds, close. Safe to call twice."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # ------------------------------------------------------------------------------------ handling

    @web.middleware
    async def _edge(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Every request: the bearer token, then the handler; any failure becomes Target's error JSON
        (here and only here); the request is counted and timed."""
        started = time.perf_counter()
        route = DELIVERY_PATH if request.path == DELIVERY_PATH else "other"
        try:
            self._authorize(request)
            response = await handler(request)
        except HttpProblem as problem:
            response = problem_response(problem.status, problem.message, problem.headers)
        except TargetdError as error:
            response = error_response(error)
        except web.HTTPRequestEntityTooLarge:
            response = problem_response(
                413, f"request body too large: the limit is {self._settings.max_message_bytes} bytes"
            )
        except web.HTTPException as exc:  # aiohttp's own: unknown route (404), wrong method (405), ...
            headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
            response = problem_response(exc.status, exc.reason, headers)
        except Exception:
            log.exception("unhandled error in %s %s", request.method, request.path)
            response = problem_response(500, "internal error in targetd; see the server log")
        metrics.http_timer(route).observe(time.perf_counter() - started)
        metrics.http_counter(route, response.status).inc()
        return response

    def _authorize(self, request: web.Request) -> None:
        if self._expected_auth is None:
            return
        supplied = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(supplied, self._expected_auth):
            raise HttpProblem(
                401,
                "missing or wrong bearer token: send the header 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": 'Bearer realm="targetd"'},
            )

    async def _delivery(self, request: web.Request) -> web.StreamResponse:
        if request.content_type not in _JSON_TYPES:
            raise HttpProblem(
                415, f"unsupported content type {request.content_type!r}: send application/json"
            )
        length = request.content_length
        if length is not None and length > self._settings.max_message_bytes:
            raise web.HTTPRequestEntityTooLarge(max_size=self._settings.max_message_bytes, actual_size=length)
        check_client(request.query, self._settings.client)
        raw = await request.read()  # raises HTTPRequestEntityTooLarge past client_max_size
        try:
            body = json.loads(raw)
        except ValueError as exc:  # UnicodeDecodeError is a ValueError too
            raise InvalidRequestError(f"invalid JSON: {exc}", field="body") from None
        call = offers_call(body, request.query, request.cookies)
        answer = await deliver(self._client, call)
        response = web.Response(
            body=json.dumps(answer, separators=(",", ":"), ensure_ascii=False).encode(),
            content_type="application/json",
        )
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            response.enable_compression(web.ContentCoding.gzip)
        return response
