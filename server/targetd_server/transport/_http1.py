"""Keep-alive HTTP/1.1 POSTs at a low CPU cost per request, for the notification sender
(:class:`Http1Client`; see its docstring for why it is not aiohttp).

Loop affinity: one event loop per client (the first request binds it).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

import httptools
from yarl import URL

from targetd_server.transport._client import (
    USER_AGENT,
    BodyTooLargeError,
    Environment,
    TransportClosedError,
    environment,
)

__all__ = ["Http1Client", "Resolver"]

Resolver = Callable[[str, int], Awaitable[list[tuple[Any, ...]]]]
"""``(host, port) -> getaddrinfo() entries`` (family, type, proto, canonname, sockaddr)."""


class _Exchange(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection of an :class:`Http1Client`: one request at a time, the answer
    parsed by httptools (llhttp: Content-Length, chunked and close-delimited bodies)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, cap: int) -> None:
        self._loop = loop
        self._cap = cap
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.usable = False
        self._chunks: list[bytes] = []
        self._size = 0

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # (uvloop's are not asyncio.Transport subclasses)
        self.usable = True

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"malformed HTTP answer: {exc}"))
        except BodyTooLargeError as exc:
            self._fail(exc)

    def eof_received(self) -> bool | None:
        with contextlib.suppress(httptools.HttpParserError):
            self._parser.feed_data(b"")  # a close-delimited body ends here
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.usable = False
        self._fail(ConnectionError(f"connection closed by the server: {exc or 'EOF'}"))

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._chunks = []
        self._size = 0

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self._cap:
            raise BodyTooLargeError(self._cap)
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        if not self._parser.should_keep_alive():
            self.close()
        if waiter is not None and not waiter.done():
            waiter.set_result((self._parser.get_status_code(), b"".join(self._chunks)))

    # the client's side
    def send(self, data: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        waiter = self.waiter = self._loop.create_future()
        self.transport.write(data)
        return waiter

    def expire(self) -> None:
        """The answer did not come in time (the request's timer): the waiter raises ``TimeoutError``."""
        self._fail(TimeoutError("no answer in time"))

    def _fail(self, exc: Exception) -> None:
        self.close()
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def close(self) -> None:
        self.usable = False
        if self.transport is not None:
            self.transport.close()


class Http1Client:
    """Keep-alive HTTP/1.1 POSTs at a low CPU cost per request, for the notification sender: a bare
    ``asyncio.Protocol`` per connection, the answer parsed by httptools, at most ``limit`` requests in
    flight (callers beyond wait for a slot within their timeout) and as many connections per host (one
    request at a time on each: no pipelining, which servers and proxies do not all honour). Connections
    stay open for reuse; the first request to a host opens them as needed.

    Why not aiohttp (:class:`HttpClient`): measured with ``bench/http_clients.py``, aiohttp spends ~6x the
    CPU per POST (see docs/remote.md). Direct connections only (TLS with the environment's CA): a host
    that :func:`environment` routes through a proxy must use :class:`HttpClient`
    (:meth:`Http1Client.direct` says which).

    Names are resolved by ``resolve`` (default: the loop's ``getaddrinfo``) before the connection is
    opened to the address: uvloop's ``create_connection`` given a name leaves a future behind when it is
    cancelled while the name resolves (the request's timeout), and asyncio then logs "Future exception
    was never retrieved" at ERROR for every such request once the resolution fails (MagicStack/uvloop#437):
    a log line per notification while the DNS is down.

    Loop affinity: one event loop (the first request binds it). Raises ``TimeoutError`` (no answer within
    ``timeout``), ``ConnectionError``/``OSError`` (network, ``socket.gaierror`` for a name that does not
    resolve), :class:`BodyTooLargeError` (answer over ``max_body`` bytes), :class:`TransportClosedError`
    (after :meth:`aclose`).
    """

    def __init__(
        self,
        *,
        limit: int,
        headers: Mapping[str, str] | None = None,
        max_body: int = 1 << 20,
        env: Environment | None = None,
        resolve: Resolver | None = None,
    ) -> None:
        self.limit = max(1, limit)
        self._resolve = resolve
        self._slots: asyncio.Semaphore | None = None
        self._headers = "".join(
            f"{name}: {value}\r\n" for name, value in {"User-Agent": USER_AGENT, **(headers or {})}.items()
        )
        self._max_body = max_body
        self._env = env
        self._idle: dict[tuple[str, str, int], list[_Exchange]] = {}
        self._heads: dict[tuple[str, str, int], bytes] = {}
        self._open: set[_Exchange] = set()
        self.closed = False

    def direct(self, url: URL) -> bool:
        """Whether ``url`` is reached without a proxy (so this client can carry it)."""
        return (self._env or environment()).route(url).proxy is None

    @staticmethod
    def origin(url: URL) -> tuple[str, str, int]:
        """``(scheme, host, port)`` of ``url``, the first argument of :meth:`post`."""
        return (url.scheme, url.host or "", url.port or (443 if url.scheme == "https" else 80))

    async def post(
        self,
        key: tuple[str, str, int],
        target: str,
        body: bytes,
        *,
        timeout: float,  # noqa: ASYNC109 (one bound for the slot, the connection and the answer)
        headers: str = "",
    ) -> tuple[int, bytes]:
        """POST ``body`` to ``target`` (path and query, already encoded) on the origin ``key``
        (:meth:`origin`); ``headers`` are extra header lines (``"Name: value\\r\\n"`` each). Returns
        (status, body). Raises as the class docstring says."""
        if self.closed:
            raise TransportClosedError("the HTTP client is closed")
        slots = self._slots
        if slots is None:
            slots = self._slots = asyncio.Semaphore(self.limit)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        # One timer per request, not an ``asyncio.timeout`` (~8 µs on uvloop, ~4% of the sender's CPU
        # per notification): the slot and a new connection are bounded by ``asyncio.timeout_at`` only
        # when they must be waited for; the answer by a timer on the exchange.
        if slots.locked():
            async with asyncio.timeout_at(deadline):
                await slots.acquire()
        else:
            await slots.acquire()
        try:
            exchange = self._idle_connection(key)
            if exchange is None:
                async with asyncio.timeout_at(deadline):
                    exchange = await self._connect(key)
            head = self._heads.get(key)
            if head is None:
                host = key[1] if key[2] in (80, 443) else f"{key[1]}:{key[2]}"
                head = self._heads[key] = f"Host: {host}\r\n{self._headers}".encode("latin-1")
            data = b"".join(
                (
                    b"POST ",
                    target.encode("latin-1"),
                    b" HTTP/1.1\r\n",
                    head,
                    headers.encode("latin-1"),
                    b"Content-Length: ",
                    str(len(body)).encode(),
                    b"\r\n\r\n",
                    body,
                )
            )
            timer = loop.call_at(deadline, exchange.expire)
            try:
                answer = await exchange.send(data)
            except BaseException:
                exchange.close()  # an answer may still come: this connection cannot be reused
                self._open.discard(exchange)
                raise
            finally:
                timer.cancel()
            if exchange.usable and not self.closed:
                self._idle.setdefault(key, []).append(exchange)
            else:
                self._open.discard(exchange)
            return answer
        finally:
            slots.release()

    def _idle_connection(self, key: tuple[str, str, int]) -> _Exchange | None:
        idle = self._idle.get(key)
        while idle:
            exchange = idle.pop()
            if exchange.usable:
                return exchange
            self._open.discard(exchange)
        return None

    async def _connect(self, key: tuple[str, str, int]) -> _Exchange:
        loop = asyncio.get_running_loop()
        scheme, host, port = key
        context = (self._env or environment()).ssl_context() if scheme == "https" else None
        if self._resolve is not None:
            infos = await self._resolve(host, port)
        else:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        error: OSError = OSError(f"{host}:{port} resolves to no address")
        for info in infos:
            address = info[4]
            try:
                _, protocol = await loop.create_connection(
                    lambda: _Exchange(loop, self._max_body),
                    address[0],
                    address[1],
                    ssl=context,
                    server_hostname=host if context is not None else None,
                )
            except OSError as exc:  # the next address (IPv4 after IPv6, ...)
                error = exc
                continue
            self._open.add(protocol)
            return protocol
        raise error

    async def aclose(self) -> None:
        """Close every connection; requests in flight fail with ``ConnectionError``, later ones raise
        :class:`TransportClosedError`. Safe to call more than once."""
        self.closed = True
        self._idle.clear()
        for exchange in list(self._open):
            exchange.close()
        self._open.clear()
