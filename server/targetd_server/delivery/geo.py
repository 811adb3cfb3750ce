"""IP → geo lookup for on-device decisions on artifacts with geo targeting (reference §4.7, Node rule).

``GET {cdn}/v1/geo`` with ``x-forwarded-for: <ip>`` (none for ``unknownIpAddress``), a short timeout
(``geo_timeout``), answers kept in a bounded LRU cache (``geo_cache_size``). A successful lookup publishes
``geo_location_updated``; a failed one is logged and the decision is made without geo — never a hang.

Loop affinity: :meth:`GeoLookup.lookup` is called on the event loop; the HTTP call runs in a worker
thread of its own bounded pool.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from targetd.v1 import delivery_pb2
from targetd_server import __version__
from targetd_server.artifacts.sources import CDN_HOSTS
from targetd_server.config import Settings
from targetd_server.engine import geo_from_lookup
from targetd_server.engine.geo import UNKNOWN_IP_ADDRESS

log = logging.getLogger("targetd.geo")

__all__ = ["GeoLookup", "geo_url"]


def geo_url(settings: Settings) -> str:
    """``{cdn base}/v1/geo``: ``cdn_base_path`` when set (a host, or scheme://host:port), else the CDN
    host of ``cdn_environment`` over https."""
    base = settings.cdn_base_path
    if base:
        root = base.rstrip("/") if "://" in base else "https://" + base.strip("/")
    else:
        root = "https://" + CDN_HOSTS.get(settings.cdn_environment.lower(), CDN_HOSTS["production"])
    return root + "/v1/geo"


class GeoLookup:
    """Cached geo lookups; ``on_update(geo)`` is called (on the loop) after each successful lookup."""

    def __init__(self, settings: Settings, on_update: Callable[[delivery_pb2.Geo], object]) -> None:
        self.url = geo_url(settings)
        self._timeout = settings.geo_timeout / 1000
        self._capacity = max(0, settings.geo_cache_size)
        self._cache: OrderedDict[str, delivery_pb2.Geo] = OrderedDict()
        self._on_update = on_update
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=4, max_retries=0, pool_block=True)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers["User-Agent"] = f"targetd/{__version__}"
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="targetd-geo")
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
        loop = asyncio.get_running_loop()
        try:
            data = await asyncio.wait_for(
                loop.run_in_executor(self._executor, self._fetch, ip_address, limit), limit + 0.25
            )
        except Exception as exc:  # any failure: decide without geo
            self.failures += 1
            log.warning("geo lookup for %s failed, deciding without geo: %s", ip_address, exc)
            return None
        geo = geo_from_lookup(data)
        if self._capacity:
            self._cache[ip_address] = geo
            if len(self._cache) > self._capacity:
                self._cache.popitem(last=False)
        self._on_update(geo)
        return geo

    def _fetch(self, ip_address: str, limit: float) -> dict[str, Any]:
        headers = {} if ip_address == UNKNOWN_IP_ADDRESS else {"x-forwarded-for": ip_address}
        reply = self._session.get(self.url, headers=headers, timeout=(limit, limit))
        if reply.status_code != 200:
            raise RuntimeError(f"{self.url} answered {reply.status_code}")
        data = reply.json()
        if not isinstance(data, dict):
            raise RuntimeError(f"{self.url} answered something that is not a JSON object")
        return data

    def close(self) -> None:
        """Release the pool and the worker threads."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._session.close()
