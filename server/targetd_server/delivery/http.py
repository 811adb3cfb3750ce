"""The Delivery API HTTP client: one pooled urllib3 pool manager, host selection, the SDK headers,
timeouts, and upstream failures turned into the domain errors of :mod:`targetd_server.errors`.

Why urllib3 and not ``requests`` (which the artifact and geo fetches use): every on-device decision that
displays content ends in one notification POST, sent from the serving process. ``requests`` spends about
800 µs of CPU per POST, mostly re-reading the proxy and CA-bundle environment on every call; urllib3 does
the same POST in about 300 µs (``bench/remote.py``). The environment is read once here instead: the
``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` variables and ``REQUESTS_CA_BUNDLE`` / ``SSL_CERT_FILE``
(else certifi's bundle, as ``requests`` would use).

``POST {scheme}://{host}/rest/v1/delivery?imsOrgId=…&sessionId=…[&version=…]`` with the request as
Delivery API JSON (the wire format of that API), the response parsed back into a ``DeliveryResponse``.

Host (reference §6): a known edge cluster → ``edge_host_template`` (``mboxedge{cluster}.tt.omtrdc.net``),
else ``server_domain``, else ``{client}.tt.omtrdc.net``; ``http`` only when ``secure`` is false.

Thread affinity: :meth:`DeliveryApi.post` blocks; call it from a worker thread (the session's connection
pool is thread-safe, sized by ``delivery_pool_size``). :meth:`DeliveryApi.execute` is the asyncio form: it
runs ``post`` in the client's own bounded thread pool, so the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

import certifi
import urllib3

from targetd.v1 import delivery_pb2
from targetd_client.json_format import JsonMappingError, message_to_dict, parse_dict
from targetd_server import __version__
from targetd_server.config import Settings
from targetd_server.engine.request import new_id
from targetd_server.errors import NotReadyError, UpstreamError, UpstreamRejectedError, UpstreamTimeoutError

log = logging.getLogger("targetd.delivery")

__all__ = ["SDK_NAME", "DeliveryApi", "target_host"]

SDK_NAME: Final = "targetd"
DELIVERY_PATH: Final = "/rest/v1/delivery"
_BODY_SUMMARY: Final = 300
# 4xx answers that may succeed when retried: they are not a rejection of the request itself.
_RETRYABLE_4XX: Final = frozenset({408, 425, 429})


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
    process (the Target client does) and :meth:`close` it at shutdown."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.scheme = "https" if settings.secure else "http"
        pool = max(1, settings.delivery_pool_size)
        ca_certs = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE") or certifi.where()
        # No urllib3 retries: a POST is not idempotent for the caller; the outbox retries on its own.
        options: dict[str, Any] = {"maxsize": pool, "block": True, "retries": False, "ca_certs": ca_certs}
        self._direct = urllib3.PoolManager(num_pools=8, **options)
        proxy = urllib.request.getproxies().get(self.scheme)
        self._proxied = urllib3.ProxyManager(proxy, num_pools=8, **options) if proxy else None
        self._use_proxy: dict[str, bool] = {}
        self._headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"targetd/{__version__}",
            "X-EXC-SDK": SDK_NAME,
            "X-EXC-SDK-Version": __version__,
        }
        self._executor = ThreadPoolExecutor(max_workers=pool, thread_name_prefix="targetd-delivery")

    def url(self, cluster: str | None) -> str:
        """The delivery endpoint URL (without query) for ``cluster``."""
        return f"{self.scheme}://{target_host(self.settings, cluster)}{DELIVERY_PATH}"

    def post(
        self,
        request: delivery_pb2.DeliveryRequest,
        *,
        session_id: str,
        cluster: str | None,
        timeout: float | None = None,
    ) -> delivery_pb2.DeliveryResponse:
        """Send ``request`` and parse the answer; blocks. ``timeout`` (seconds) defaults to the ``timeout``
        option and bounds the connect and each read. Raises :class:`UpstreamTimeoutError` (no answer in
        time), :class:`UpstreamRejectedError` (a 4xx other than 408/425/429) or :class:`UpstreamError` (5xx,
        network, a body that is not a Delivery response)."""
        status, text = self._exchange(request, session_id=session_id, cluster=cluster, timeout=timeout)
        return _parse(text, status)

    def send(
        self,
        request: delivery_pb2.DeliveryRequest,
        *,
        session_id: str,
        cluster: str | None,
        timeout: float | None = None,
    ) -> None:
        """Like :meth:`post` for a caller that needs only the acceptance (the outbox): the answer's body
        is not parsed. Raises as :meth:`post` does for timeouts, rejections and failures."""
        self._exchange(request, session_id=session_id, cluster=cluster, timeout=timeout)

    def _exchange(
        self,
        request: delivery_pb2.DeliveryRequest,
        *,
        session_id: str,
        cluster: str | None,
        timeout: float | None,
    ) -> tuple[int, str]:
        limit = self.settings.timeout / 1000 if timeout is None else max(0.001, timeout)
        params = {"imsOrgId": self.settings.organization_id, "sessionId": session_id}
        if self.settings.version:
            params["version"] = self.settings.version
        url = self.url(cluster)
        body = json.dumps(message_to_dict(request), separators=(",", ":"))
        try:
            reply = self._manager(url).request(
                "POST",
                f"{url}?{urlencode(params)}",
                body=body.encode(),
                headers={**self._headers, "X-Request-Id": new_id()},
                timeout=urllib3.Timeout(connect=limit, read=limit),
                retries=False,
            )
            text = reply.data.decode("utf-8", "replace")
        except urllib3.exceptions.NewConnectionError as exc:  # (urllib3 makes it a ConnectTimeoutError too)
            raise _unreachable(url, exc) from None
        except urllib3.exceptions.TimeoutError:
            raise UpstreamTimeoutError(
                f"Request timed out: the Delivery API ({url}) did not answer within {limit * 1000:.0f} ms"
            ) from None
        except urllib3.exceptions.HTTPError as exc:
            raise _unreachable(url, exc) from None
        status = reply.status
        if not 200 <= status < 300:
            summary = _summary(text)
            message = f"Delivery API answered {status} {reply.reason or ''}".rstrip() + f": {summary}"
            if 400 <= status < 500 and status not in _RETRYABLE_4XX:
                raise UpstreamRejectedError(
                    message + " (the request was rejected; check client, organization_id and the request)",
                    status=status,
                    body=summary,
                )
            raise UpstreamError(message + " (retry later)", status=status, body=summary)
        return status, text

    async def execute(
        self,
        request: delivery_pb2.DeliveryRequest,
        *,
        session_id: str,
        cluster: str | None,
        time_remaining: float | None = None,
    ) -> delivery_pb2.DeliveryResponse:
        """:meth:`post` from the event loop, in this client's thread pool. The HTTP timeout is the smaller
        of the ``timeout`` option and ``time_remaining`` (the caller's deadline, seconds); the await is
        bounded by it too, so a slow upstream never holds the caller past its deadline."""
        limit = self.settings.timeout / 1000
        if time_remaining is not None:
            limit = min(limit, max(0.001, time_remaining))
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(
                self._executor,
                lambda: self.post(request, session_id=session_id, cluster=cluster, timeout=limit),
            )
        except RuntimeError:  # the pool is shut down
            raise NotReadyError("targetd is shutting down; retry on another replica") from None
        try:
            # A little slack over the socket timeouts: they fire first in the normal case.
            return await asyncio.wait_for(future, limit + 0.5)
        except TimeoutError:
            raise UpstreamTimeoutError(
                f"Request timed out: the Delivery API did not answer within {limit * 1000:.0f} ms"
            ) from None

    def _manager(self, url: str) -> urllib3.PoolManager:
        """The proxy manager when a proxy is configured and ``NO_PROXY`` does not exempt the host."""
        if self._proxied is None:
            return self._direct
        host = urlsplit(url).hostname or ""
        use = self._use_proxy.get(host)
        if use is None:
            use = self._use_proxy[host] = not urllib.request.proxy_bypass(host)
        return self._proxied if use else self._direct

    def close(self) -> None:
        """Release the connection pools and the worker threads (does not wait for calls in flight)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._direct.clear()
        if self._proxied is not None:
            self._proxied.clear()


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
