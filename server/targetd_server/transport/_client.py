"""HTTP client concerns, in one place: every request targetd makes itself — the rules artifact, the geo
lookup, the Delivery API — goes through an :class:`HttpClient` of this module (aiohttp, on the server's
event loop; no thread pools of targetd's own).

* :class:`HttpClient` — holds one ``aiohttp.ClientSession``, created lazily on the running loop at the first
  request and bound to that loop; keep-alive connection pooling (``limit`` connections, the callers wait
  for a free one within their timeout), no cookie jar (answers for one visitor must never reach the next),
  the ``User-Agent``, default timeouts, and the proxy of each URL. :meth:`HttpClient.aclose` releases it.
* :func:`environment` — the proxy and CA environment, read once per process:
  ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` / ``NO_PROXY`` (either case, as ``urllib.request`` and
  ``requests`` read them) and ``REQUESTS_CA_BUNDLE`` / ``SSL_CERT_FILE`` (a file or a directory), else
  certifi's bundle. Not aiohttp's ``trust_env=True``: aiohttp 3.14 then re-reads the proxy environment and
  ``~/.netrc`` on every request, each in a worker thread (two thread-pool hops per request).
* :func:`read_capped` — a response body read as a stream, refused past a byte cap
  (:class:`BodyTooLargeError`).
* :data:`CDN_HOSTS` / :func:`cdn_base` — the Target CDN (artifacts and the geo endpoint).
* Tracing (``settings.tracing``): each session gets ``tracing.http_trace_configs()`` — a client span per
  request and the W3C ``traceparent`` header, so a Delivery API call continues the gRPC call's trace.

DNS: aiohttp's threaded resolver (``loop.getaddrinfo``, the loop's default executor), answers cached for
``ttl_dns_cache`` seconds; IP literals are not resolved.

Loop affinity: create an :class:`HttpClient` anywhere; call :meth:`HttpClient.request` and
:meth:`HttpClient.aclose` on one event loop (the first request binds it).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import ssl
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp
import certifi
from yarl import URL

from targetd_server import __version__, tracing
from targetd_server.config import Settings

log = logging.getLogger("targetd.transport")

__all__ = [
    "CDN_HOSTS",
    "USER_AGENT",
    "BodyTooLargeError",
    "Environment",
    "HttpClient",
    "TransportClosedError",
    "cdn_base",
    "environment",
    "read_capped",
]

USER_AGENT: Final = f"targetd/{__version__}"
DNS_CACHE_SECONDS: Final = 10
KEEPALIVE_SECONDS: Final = 15.0

CDN_HOSTS: Final = {
    "production": "assets.adobetarget.com",
    "staging": "assets.staging.adobetarget.com",
    "development": "assets.staging.adobetarget.com",
}


def cdn_base(settings: Settings) -> str:
    """``scheme://host[:port]`` of the Target CDN: ``cdn_base_path`` when set (a host, or
    scheme://host:port), else the CDN host of ``cdn_environment`` over https."""
    base = settings.cdn_base_path
    if base:
        return base.rstrip("/") if "://" in base else "https://" + base.strip("/")
    return "https://" + CDN_HOSTS.get(settings.cdn_environment.lower(), CDN_HOSTS["production"])


# ---------------------------------------------------------------------------------------- environment


@dataclass(frozen=True, slots=True)
class Route:
    """How to reach one host: directly (``proxy`` None) or through ``proxy`` with ``proxy_headers``."""

    proxy: URL | None = None
    proxy_headers: Mapping[str, str] | None = None


_DIRECT: Final = Route()


@dataclass(slots=True)
class Environment:
    """The proxy and CA configuration of the process (see the module docstring); :func:`environment`."""

    ca_file: str | None
    ca_path: str | None
    proxies: dict[str, str]
    _routes: dict[tuple[str, str], Route] = field(default_factory=dict)
    _ssl: ssl.SSLContext | None = None

    @classmethod
    def read(cls) -> Environment:
        """Read ``os.environ`` now."""
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE") or certifi.where()
        is_dir = os.path.isdir(bundle)
        return cls(
            ca_file=None if is_dir else bundle,
            ca_path=bundle if is_dir else None,
            proxies=urllib.request.getproxies(),
        )

    def ssl_context(self) -> ssl.SSLContext:
        """The verifying TLS context (made once)."""
        if self._ssl is None:
            self._ssl = ssl.create_default_context(cafile=self.ca_file, capath=self.ca_path)
        return self._ssl

    def route(self, url: URL) -> Route:
        """The proxy for ``url``: ``{scheme}_proxy`` else ``all_proxy``, unless ``no_proxy`` exempts the
        host (decided once per scheme and host)."""
        key = (url.scheme, url.host or "")
        route = self._routes.get(key)
        if route is None:
            route = self._routes[key] = self._route(*key)
        return route

    def _route(self, scheme: str, host: str) -> Route:
        proxy = self.proxies.get(scheme) or self.proxies.get("all")
        # (urllib's own NO_PROXY matching, on the proxies read once; typeshed does not list it)
        bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
        if not proxy or bypass(host, self.proxies):
            return _DIRECT
        proxy_url = URL(proxy if "://" in proxy else "http://" + proxy)
        headers = None
        if proxy_url.user is not None:
            auth = aiohttp.encode_basic_auth(proxy_url.user, proxy_url.password or "")
            headers = {"Proxy-Authorization": auth}
            proxy_url = proxy_url.with_user(None)
        return Route(proxy_url, headers)


@functools.cache
def environment() -> Environment:
    """The process's :class:`Environment`, read at the first call (``environment.cache_clear()`` re-reads
    it, for tests)."""
    return Environment.read()


# ---------------------------------------------------------------------------------------- the client


class TransportClosedError(RuntimeError):
    """A request on an :class:`HttpClient` that was closed (the server is shutting down)."""


class BodyTooLargeError(Exception):
    """A response body over the cap of :func:`read_capped`."""

    def __init__(self, limit: int, declared: int | None = None) -> None:
        what = f"declares {declared} bytes" if declared is not None else "goes on"
        super().__init__(f"response body {what}, over the limit of {limit} bytes")
        self.limit = limit
        self.declared = declared


class HttpClient:
    """One pooled aiohttp session for one purpose (see the module docstring).

    ``limit`` bounds the open connections (keep-alive, reused); ``timeout`` is the default of each request
    (a request may pass its own ``timeout=aiohttp.ClientTimeout(...)``); ``headers`` are sent with every
    request besides the ``User-Agent``.
    """

    def __init__(
        self,
        *,
        limit: int,
        timeout: aiohttp.ClientTimeout | None = None,
        headers: Mapping[str, str] | None = None,
        env: Environment | None = None,
    ) -> None:
        self.limit = max(1, limit)
        self._timeout = timeout or aiohttp.ClientTimeout(total=30.0)
        self._headers = {"User-Agent": USER_AGENT, **(headers or {})}
        self._env = env
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closed = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop the session was created on (None before the first request)."""
        return self._loop

    def session(self) -> aiohttp.ClientSession:
        """The session, created now on the running loop if needed. Raises :class:`TransportClosedError`
        after :meth:`aclose`, RuntimeError on another loop than the first request's."""
        if self.closed:
            raise TransportClosedError("the HTTP client is closed")
        session = self._session
        if session is None:
            loop = asyncio.get_running_loop()
            env = self._env or environment()
            connector = aiohttp.TCPConnector(
                limit=self.limit,
                ssl=env.ssl_context(),
                resolver=aiohttp.ThreadedResolver(),
                ttl_dns_cache=DNS_CACHE_SECONDS,
                keepalive_timeout=KEEPALIVE_SECONDS,
            )
            session = self._session = aiohttp.ClientSession(
                connector=connector,
                headers=self._headers,
                timeout=self._timeout,
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,  # the environment is read once, by environment()
                raise_for_status=False,
                trace_configs=tracing.http_trace_configs(),  # spans + traceparent, when tracing is on
            )
            self._loop = loop
        elif self._loop is not asyncio.get_running_loop():
            raise RuntimeError("an HttpClient is bound to the event loop of its first request")
        return session

    def request(self, method: str, url: str | URL, **options: Any) -> Any:
        """``session.request(method, url, ...)`` through the proxy of ``url``'s host, if any: use as
        ``async with client.request(...) as response``. Options as aiohttp's (``headers``, ``data``,
        ``params``, ``timeout``, ...)."""
        session = self.session()
        target = url if isinstance(url, URL) else URL(url)
        route = (self._env or environment()).route(target)
        if route.proxy is not None:
            options.setdefault("proxy", route.proxy)
            if route.proxy_headers and target.scheme == "https":
                options.setdefault("proxy_headers", route.proxy_headers)  # on the CONNECT
            elif route.proxy_headers:  # plain HTTP is sent to the proxy as is: aiohttp sends
                # proxy_headers with a CONNECT only, so the credentials go with the request itself
                options["headers"] = {**route.proxy_headers, **(options.get("headers") or {})}
        return session.request(method, target, **options)

    async def aclose(self) -> None:
        """Close the pooled connections; later requests raise :class:`TransportClosedError`. Safe to call
        more than once, and from any loop state: a session never created has nothing to close."""
        self.closed = True
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()


async def read_capped(response: aiohttp.ClientResponse, limit: int | None) -> bytes:
    """The body of ``response``, read as a stream; :class:`BodyTooLargeError` as soon as it is known to
    exceed ``limit`` bytes (from ``Content-Length``, else while reading). ``limit`` None: no cap."""
    declared = response.content_length
    if limit is None:
        return await response.read()
    if declared is not None:
        if declared > limit:
            raise BodyTooLargeError(limit, declared)
        return await response.read()  # the payload parser stops at Content-Length
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError(limit)
        chunks.append(chunk)
    return b"".join(chunks)
