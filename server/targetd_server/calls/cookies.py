"""The visitor's Target cookies (reference §5, Node semantics). Pure functions, no I/O.

* parse the ``mbox`` cookie (``name#value#expires`` parts joined by ``|``, URL-encoded with
  ``encodeURIComponent``, ``expires`` in epoch seconds, expired parts dropped) into the session id, the
  device id (``PC`` → tntId) and the edge cluster;
* produce the ``mbox`` cookie (``session`` for 1860 s, ``PC`` for 63244800 s) and the ``mboxEdgeCluster``
  cookie; read the edge cluster out of a device id or an edge host.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from urllib.parse import quote, unquote

from targetd.v1 import decisioning_service_pb2

__all__ = [
    "DEVICE_ID_COOKIE",
    "DEVICE_ID_MAX_AGE",
    "LOCATION_HINT_COOKIE",
    "LOCATION_HINT_MAX_AGE",
    "NO_COOKIES",
    "SESSION_ID_COOKIE",
    "SESSION_ID_MAX_AGE",
    "TARGET_COOKIE",
    "ParsedCookies",
    "cluster_from_device_id",
    "cluster_from_edge_host",
    "create_location_hint_cookie",
    "create_target_cookie",
    "parse_target_cookie",
]

TARGET_COOKIE = "mbox"
SESSION_ID_COOKIE = "session"
DEVICE_ID_COOKIE = "PC"
LOCATION_HINT_COOKIE = "mboxEdgeCluster"
SESSION_ID_MAX_AGE = 1860
DEVICE_ID_MAX_AGE = 63244800
LOCATION_HINT_MAX_AGE = 1860

# encodeURIComponent leaves A-Z a-z 0-9 - _ . ! ~ * ' ( ) unescaped.
_URI_COMPONENT_SAFE = "-_.!~*'()"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _now_seconds(now_ms: int) -> int:
    return math.ceil(now_ms / 1000)


_NOTHING_TO_ESCAPE = re.compile(r"[A-Za-z0-9\-_.!~*'()]*").fullmatch


def _encode(text: str) -> str:
    # ids (UUIDs, tntIds) never need escaping: ~0.2 µs for the check against ~5 µs for quote()
    return text if _NOTHING_TO_ESCAPE(text) else quote(text, safe=_URI_COMPONENT_SAFE)


@dataclass(frozen=True, slots=True)
class ParsedCookies:
    """The live parts of an ``mbox`` cookie: ``{name: (value, expires_seconds)}`` plus shortcuts."""

    parts: Mapping[str, tuple[str, int]]

    @property
    def session_id(self) -> str | None:
        """The ``session`` part."""
        part = self.parts.get(SESSION_ID_COOKIE)
        return part[0] if part else None

    @property
    def device_id(self) -> str | None:
        """The ``PC`` part (the tntId, e.g. ``338e...acea0.28_0``)."""
        part = self.parts.get(DEVICE_ID_COOKIE)
        return part[0] if part else None

    @property
    def cluster(self) -> str | None:
        """The edge cluster encoded in the device id (``abc.35_0`` → ``35``)."""
        return cluster_from_device_id(self.device_id)


NO_COOKIES: ParsedCookies = ParsedCookies(MappingProxyType({}))
"""No live part: what a call without an ``mbox`` cookie has (one shared, read-only instance)."""


def parse_target_cookie(value: str | None, *, now_ms: int | None = None) -> ParsedCookies:
    """Parse the ``mbox`` cookie; malformed and expired parts are ignored, never an error."""
    parts: dict[str, tuple[str, int]] = {}
    if value:
        now_s = _now_seconds(_now_ms() if now_ms is None else now_ms)
        for raw in value.split("|"):
            pieces = raw.split("#")
            if len(pieces) < 3:
                continue
            try:
                expires = int(pieces[2])
            except ValueError:
                continue
            if now_s <= expires:
                parts[unquote(pieces[0])] = (unquote(pieces[1]), expires)
    return ParsedCookies(parts) if parts else NO_COOKIES


def cluster_from_device_id(device_id: str | None) -> str | None:
    """``<id>.<cluster>_<n>`` → ``cluster`` (None when the id has no such suffix)."""
    if not device_id:
        return None
    pieces = device_id.split(".")
    if len(pieces) != 2 or not pieces[1]:
        return None
    node = pieces[1].split("_")
    if len(node) != 2 or not node[0]:
        return None
    return node[0]


def cluster_from_edge_host(edge_host: str | None) -> str | None:
    """``mboxedge28.tt.omtrdc.net`` → ``28`` (None for any other shape)."""
    if not edge_host:
        return None
    pieces = edge_host.split(".")
    if len(pieces) != 4 or not pieces[0].startswith("mboxedge"):
        return None
    cluster = pieces[0][len("mboxedge") :]
    return cluster or None


def create_target_cookie(
    session_id: str | None, tnt_id: str | None, *, now_ms: int | None = None
) -> decisioning_service_pb2.Cookie | None:
    """The ``mbox`` cookie: ``session#<sid>#<now+1860>|PC#<tntId>#<now+63244800>`` (each part only when
    its value is set; ``now`` in whole seconds rounded up), ``maxAge`` =
    ``ceil(|max(expires) * 1000 - now_ms| / 1000)`` as Node computes it. None when there is nothing."""
    now = _now_ms() if now_ms is None else now_ms
    now_s = _now_seconds(now)
    parts: list[tuple[str, str, int]] = []
    if session_id:
        parts.append((SESSION_ID_COOKIE, session_id, now_s + SESSION_ID_MAX_AGE))
    if tnt_id:
        parts.append((DEVICE_ID_COOKIE, tnt_id, now_s + DEVICE_ID_MAX_AGE))
    if not parts:
        return None
    value = "|".join(f"{_encode(name)}#{_encode(text)}#{expires}" for name, text, expires in parts)
    max_expires = max(expires for _, _, expires in parts)
    max_age = math.ceil(abs(max_expires * 1000 - now) / 1000)
    return decisioning_service_pb2.Cookie(name=TARGET_COOKIE, value=value, max_age=max_age)


def create_location_hint_cookie(
    request_cluster: str | None, edge_host: str | None = None
) -> decisioning_service_pb2.Cookie | None:
    """``mboxEdgeCluster`` for 1860 s: the request's cluster (PC cookie or location hint), else the one
    in the response's ``edgeHost``; None when neither is known."""
    cluster = request_cluster or cluster_from_edge_host(edge_host)
    if not cluster:
        return None
    return decisioning_service_pb2.Cookie(
        name=LOCATION_HINT_COOKIE, value=cluster, max_age=LOCATION_HINT_MAX_AGE
    )
