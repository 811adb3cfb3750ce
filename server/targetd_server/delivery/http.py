"""The Delivery API HTTP client: host selection, the SDK headers, timeouts, and upstream failures turned
into the domain errors of :mod:`targetd_server.errors`, over one pooled
:class:`~targetd_server.transport.HttpClient` (aiohttp; ``delivery_pool_size`` keep-alive connections;
proxy/CA environment and User-Agent: see :mod:`targetd_server.transport`).

``POST {scheme}://{host}/rest/v1/delivery?imsOrgId=…&sessionId=…[&version=…]`` with the request as
Delivery API JSON (the wire format of that API), the response parsed back into a ``DeliveryResponse``.

Host (reference §6): a known edge cluster → ``edge_host_template`` (``mboxedge{cluster}.tt.omtrdc.net``),
else ``server_domain``, else ``{client}.tt.omtrdc.net``; ``http`` only when ``secure`` is false.

The notification sender (its own process, :mod:`.sender`) posts with :meth:`DeliveryApi.notify`: the same
URL, query, headers and status rules over :class:`~targetd_server.transport.Http1Client`.

Loop affinity: :meth:`DeliveryApi.execute`, :meth:`DeliveryApi.send_async`, :meth:`DeliveryApi.notify` and
:meth:`DeliveryApi.aclose` run on one event loop (the one running when the api is constructed, else that
of its first call).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any, Final
from urllib.parse import quote, urlencode

import aiohttp
from yarl import URL

from targetd.json_format import JsonMappingError, message_to_dict, parse_dict
from targetd.v1 import delivery_pb2
from targetd_server import __version__
from targetd_server.config import Settings
from targetd_server.errors import NotReadyError, UpstreamError, UpstreamRejectedError, UpstreamTimeoutError
from targetd_server.ids import new_id
from targetd_server.transport import (
    BodyTooLargeError,
    Http1Client,
    HttpClient,
    TransportClosedError,
    read_capped,
)

log = logging.getLogger("targetd.delivery")

__all__ = ["SDK_NAME", "DeliveryApi", "target_host"]

SDK_NAME: Final = "targetd"
DELIVERY_PATH: Final = "/rest/v1/delivery"
_BODY_SUMMARY: Final = 300
# 4xx answers that may succeed when retried: they are not a rejection of the request itself.
_RETRYABLE_4XX: Final = frozenset({408, 425, 429})
MAX_RESPONSE_BYTES: Final = 16 * 1024 * 1024
"""The largest Delivery API answer read; a bigger one is an :class:`UpstreamError`."""


def target_host(settings: Settings, cluster: str | None) -> str:
    """The Delivery API host for a request whose edge cluster is ``cluster`` (or unknown)."""
    if cluster:
        return settings.edge_host_template.replace("{cluster}", cluster)
    if settings.server_domain:
        return settings.server_domain
    return f"{settings.client}.tt.omtrdc.net"


def _summary(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _BODY_SUMMARY else text[:_BODY_SUMMARY] + "…"


class DeliveryApi:
    """A pooled Delivery API client for one configuration; see the module docstring. Create one per
    process (the Target client does), preferably on the server's event loop, and :meth:`aclose` it at
    shutdown."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.scheme = "https" if settings.secure else "http"
        # No retries here: a POST is not idempotent for the caller; the outbox retries on its own.
        self._headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "X-EXC-SDK": SDK_NAME,
            "X-EXC-SDK-Version": __version__,
        }
        self._http = HttpClient(
            limit=settings.delivery_pool_size,
            timeout=aiohttp.ClientTimeout(total=settings.timeout / 1000),
            headers=self._headers,
        )
        self._fast: Http1Client | None = None  # the sender's (notify), made at its first call
        self._origins: dict[str | None, tuple[tuple[str, str, int], bool]] = {}
        # The query, encoded once but for the session id: imsOrgId=…&sessionId=…[&version=…]
        self._query_head = urlencode({"imsOrgId": settings.organization_id}) + "&sessionId="
        self._query_tail = "&" + urlencode({"version": settings.version}) if settings.version else ""
        self._loop: asyncio.AbstractEventLoop | None = None
        with contextlib.suppress(RuntimeError):  # no loop running: the first call binds it
            self._loop = asyncio.get_running_loop()

    def url(self, cluster: str | None) -> str:
        """The delivery endpoint URL (without query) for ``cluster``."""
        return f"{self.scheme}://{target_host(self.settings, cluster)}{DELIVERY_PATH}"

    async def execute(
        self,
        request: delivery_pb2.DeliveryRequest,
        *,
        session_id: str,
        cluster: str | None,
        time_remaining: float | None = None,
    ) -> delivery_pb2.DeliveryResponse:
        """Send ``request`` and parse the answer. The whole exchange (waiting for a pooled connection,
        connect, send, answer) is bounded by the smaller of the ``timeout`` option and ``time_remaining``
        (the caller's deadline, seconds). Raises :class:`UpstreamTimeoutError` (no answer in time),
        :class:`UpstreamRejectedError` (a 4xx other than 408/425/429), :class:`UpstreamError` (5xx, network,
        a body that is not a Delivery response) or :class:`NotReadyError` (the client is closed)."""
        limit = self.settings.timeout / 1000
        if time_remaining is not None:
            limit = min(limit, max(0.001, time_remaining))
        status, body = await self._exchange(request, session_id=session_id, cluster=cluster, limit=limit)
        return _parse(body.decode("utf-8", "replace"), status)

    async def send_async(
        self,
        request: delivery_pb2.DeliveryRequest,
        *,
        session_id: str,
        cluster: str | None,
        timeout: float | None = None,  # noqa: ASYNC109 (the outbox's per-row timeout, as for send)
    ) -> None:
        """Like :meth:`execute` for a caller that needs only the acceptance (notification delivery): the
        answer's body is not parsed. ``timeout`` (seconds) defaults to the ``timeout`` option. Raises as
        :meth:`execute` does for timeouts, rejections and failures."""
        limit = self.settings.timeout / 1000 if timeout is None else max(0.001, timeout)
        await self._exchange(request, session_id=session_id, cluster=cluster, limit=limit)

    async def notify(
        self,
        body: bytes,
        *,
        session_id: str,
        cluster: str | None,
        timeout: float,  # noqa: ASYNC109 (the sender's per-request bound)
    ) -> None:
        """POST ``body`` (a notification request, already Delivery API JSON) for the notification sender:
        the same URL, query, headers and status rules as :meth:`send_async`, over the low-CPU
        :class:`~targetd_server.transport.Http1Client` (``outbox_concurrency`` requests in flight) when
        the host is reached directly, else (a proxy) over the aiohttp client. The answer's body is not
        parsed. Raises :class:`UpstreamTimeoutError`, :class:`UpstreamRejectedError`,
        :class:`UpstreamError`, :class:`NotReadyError` (closed) as :meth:`send_async` does."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        fast = self._fast
        if fast is None:
            fast = self._fast = Http1Client(limit=self.settings.outbox_concurrency, headers=self._headers)
        origin = self._origins.get(cluster)
        if origin is None:  # (scheme, host, port) and whether it is reached directly, once per cluster
            parsed = URL(self.url(cluster))
            origin = self._origins[cluster] = (Http1Client.origin(parsed), fast.direct(parsed))
        url = self.url(cluster)
        query = f"{self._query_head}{quote(session_id, safe='')}{self._query_tail}"
        if not origin[1]:
            status, reason, data = await self._post(url, URL(f"{url}?{query}", encoded=True), body, timeout)
        else:
            try:
                status, data = await fast.post(
                    origin[0],
                    f"{DELIVERY_PATH}?{query}",
                    body,
                    timeout=timeout,
                    headers=f"X-Request-Id: {new_id()}\r\n",
                )
            except TransportClosedError:
                raise NotReadyError(
                    "targetd is shutting down; the notification stays in the outbox"
                ) from None
            except TimeoutError:
                raise UpstreamTimeoutError(
                    f"Request timed out: the Delivery API ({url}) did not answer within "
                    f"{timeout * 1000:.0f} ms"
                ) from None
            except BodyTooLargeError as exc:
                raise UpstreamError(f"Delivery API answer from {url} refused: {exc}") from None
            except OSError as exc:  # (ConnectionError included)
                raise _unreachable(url, exc) from None
            reason = ""
        _check(url, status, reason, data)

    async def _exchange(
        self,
        request: delivery_pb2.DeliveryRequest,
        *,
        session_id: str,
        cluster: str | None,
        limit: float,
    ) -> tuple[int, bytes]:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        url = self.url(cluster)
        query = self._query_head + quote(session_id, safe="") + self._query_tail
        body = json.dumps(message_to_dict(request), separators=(",", ":")).encode()
        status, reason, data = await self._post(url, f"{url}?{query}", body, limit)
        _check(url, status, reason, data)
        return status, data

    async def _post(self, url: str, target: str | URL, body: bytes, limit: float) -> tuple[int, str, bytes]:
        status = 0
        try:
            async with self._http.request(
                "POST",
                target,
                data=body,
                headers={"X-Request-Id": new_id()},
                timeout=aiohttp.ClientTimeout(total=limit),
            ) as reply:
                status, reason = reply.status, reply.reason or ""
                data = await read_capped(reply, MAX_RESPONSE_BYTES)
        except TransportClosedError:
            raise NotReadyError("targetd is shutting down; retry on another replica") from None
        except TimeoutError:  # (aiohttp's timeout errors are TimeoutErrors)
            raise UpstreamTimeoutError(
                f"Request timed out: the Delivery API ({url}) did not answer within {limit * 1000:.0f} ms"
            ) from None
        except BodyTooLargeError as exc:
            raise UpstreamError(f"Delivery API answer from {url} refused: {exc}", status=status) from None
        except aiohttp.ClientError as exc:
            raise _unreachable(url, exc) from None
        return status, reason, data

    async def aclose(self) -> None:
        """Close the pooled connections (calls in flight fail); later calls raise :class:`NotReadyError`.
        Safe to call more than once."""
        await self._http.aclose()
        if self._fast is not None:
            await self._fast.aclose()


def _check(url: str, status: int, reason: str, data: bytes) -> None:
    """Raise the domain error of a non-2xx answer (see :meth:`DeliveryApi.execute`)."""
    if 200 <= status < 300:
        return
    summary = _summary(data.decode("utf-8", "replace"))
    message = f"Delivery API answered {status} {reason}".rstrip() + f": {summary}"
    if 400 <= status < 500 and status not in _RETRYABLE_4XX:
        raise UpstreamRejectedError(
            message + " (the request was rejected; check client, organization_id and the request)",
            status=status,
            body=summary,
        )
    raise UpstreamError(message + " (retry later)", status=status, body=summary)


def _unreachable(url: str, exc: Exception) -> UpstreamError:
    return UpstreamError(
        f"Delivery API call to {url} failed: {_summary(str(exc) or type(exc).__name__)}; "
        "check server_domain / network access to Target"
    )


def _parse(text: str, status: int) -> delivery_pb2.DeliveryResponse:
    try:
        data: Any = json.loads(text) if text.strip() else {}
        if not isinstance(data, dict):
            raise JsonMappingError("not a JSON object")
        return parse_dict(data, delivery_pb2.DeliveryResponse(), ignore_unknown=True)
    except (ValueError, JsonMappingError) as exc:
        raise UpstreamError(
            f"Delivery API answered {status} with a body that is not a Delivery response ({exc}): "
            f"{_summary(text)}",
            status=status,
            body=_summary(text),
        ) from None
