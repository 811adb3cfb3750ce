"""IP → geo lookup for on-device decisions on artifacts with geo targeting (reference §4.7, Node rule).

``GET {cdn}/v1/geo`` with ``x-forwarded-for: <ip>`` (none for ``unknownIpAddress``), a short timeout
(``geo_timeout``), answers kept in a bounded LRU cache (``geo_cache_size``). A successful lookup publishes
``geo_location_updated``; a failed one is logged and the decision is made without geo — never a hang.

Loop affinity: :meth:`GeoLookup.lookup` and :meth:`GeoLookup.aclose` run on the event loop (aiohttp,
through a :class:`~targetd_server.transport.HttpClient` of at most 4 connections).
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final

import aiohttp

from targetd.v1 import delivery_pb2
from targetd_server.config import Settings
from targetd_server.engine import UNKNOWN_IP_ADDRESS, geo_from_lookup
from targetd_server.transport import HttpClient, cdn_base, read_capped

log = logging.getLogger("targetd.geo")

__all__ = ["GeoLookup", "geo_url"]

MAX_BODY_BYTES: Final = 64 * 1024
"""The largest geo answer read (a real one is a few hundred bytes)."""
CONNECTIONS: Final = 4


def geo_url(settings: Settings) -> str:
    """``{cdn base}/v1/geo`` (:func:`~targetd_server.transport.cdn_base`)."""
    return cdn_base(settings) + "/v1/geo"


class GeoLookup:
    """Cached geo lookups; ``on_update(geo)`` is called (on the loop) after each successful lookup."""

    def __init__(self, settings: Settings, on_update: Callable[[delivery_pb2.Geo], object]) -> None:
        self.url = geo_url(settings)
        self._timeout = settings.geo_timeout / 1000
        self._capacity = max(0, settings.geo_cache_size)
        self._cache: OrderedDict[str, delivery_pb2.Geo] = OrderedDict()
        self._on_update = on_update
        self._http = HttpClient(limit=CONNECTIONS, timeout=aiohttp.ClientTimeout(total=self._timeout))
        self.failures = 0

    async def lookup(
        self, ip_address: str, *, time_remaining: float | None = None
    ) -> delivery_pb2.Geo | None:
        """The geo of ``ip_address``, or None when the lookup failed (logged). Bounded by ``geo_timeout``
        and by ``time_remaining`` (seconds)."""
        cached = self._cache.get(ip_address)
        if cached is not None:
            self._cache.move_to_end(ip_address)
            return cached
        limit = self._timeout
        if time_remaining is not None:
            limit = max(0.001, min(limit, time_remaining))
        try:
            data = await self._fetch(ip_address, limit)
        except Exception as exc:  # any failure: decide without geo
            self.failures += 1
            reason = str(exc) or type(exc).__name__
            log.warning("geo lookup for %s failed, deciding without geo: %s", ip_address, reason)
            return None
        geo = geo_from_lookup(data)
        if self._capacity:
            self._cache[ip_address] = geo
            if len(self._cache) > self._capacity:
                self._cache.popitem(last=False)
        self._on_update(geo)
        return geo

    async def _fetch(self, ip_address: str, limit: float) -> dict[str, Any]:
        headers = {} if ip_address == UNKNOWN_IP_ADDRESS else {"x-forwarded-for": ip_address}
        timeout = aiohttp.ClientTimeout(total=limit)
        async with self._http.request("GET", self.url, headers=headers, timeout=timeout) as reply:
            if reply.status != 200:
                raise RuntimeError(f"{self.url} answered {reply.status}")
            body = await read_capped(reply, MAX_BODY_BYTES)
        try:
            data = json.loads(body)
        except ValueError:
            raise RuntimeError(f"{self.url} answered something that is not JSON") from None
        if not isinstance(data, dict):
            raise RuntimeError(f"{self.url} answered something that is not a JSON object")
        return data

    async def aclose(self) -> None:
        """Close the pooled connections; later lookups fail (and decide without geo)."""
        await self._http.aclose()
