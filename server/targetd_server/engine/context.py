"""The decisioning context that rule conditions read (Node ``contextProvider`` semantics).

``{current_timestamp, current_time, current_day, user, page, referring, geo}`` per request, plus per
request item ``mbox`` (its parameters) and per rule ``allocation``.

Mbox parameters: dotted names are unflattened (``favorite.color`` → ``{"favorite": {"color": ...}}``;
names with ``..`` or a leading/trailing dot stay flat) and every string value at every level gets a
lower-cased ``<key>_lc`` sibling. **Collision (SDK bug 0.5(k))**: for ``{"a": "Red", "a.b": "42"}`` the
nested object wins — ``mbox.a`` is ``{"b": "42", "b_lc": "42"}`` and the plain ``"Red"`` (with its
``a_lc``) is dropped. This generalises the only non-failing Node behaviour (a plain ``""`` value is replaced
by the object) and does not depend on the order of the keys, which a protobuf map does not keep.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from targetd.v1 import delivery_pb2
from targetd_server.engine.urls import EMPTY_URL_CONTEXT, url_context
from targetd_server.engine.useragent import browser_context

__all__ = [
    "EMPTY_PARAMS",
    "base_context",
    "geo_context",
    "mbox_params_context",
    "time_context",
    "user_context",
]

EMPTY_PARAMS: Mapping[str, Any] = {}


def time_context(now_ms: int) -> tuple[int, str, int]:
    """``(current_timestamp, current_time "HHmm", current_day 1=Monday..7=Sunday)`` in UTC."""
    moment = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
    return now_ms, f"{moment.hour:02d}{moment.minute:02d}", moment.isoweekday()


def user_context(context: delivery_pb2.Context) -> dict[str, Any]:
    """``{browserType, browserVersion, platform, locale}`` from the user agent and client hints."""
    hints = context.client_hints
    browser_type, browser_version, platform = browser_context(
        context.user_agent,
        hints.platform if hints.HasField("platform") else None,
        hints.browser_ua_with_full_version,
        hints.browser_ua_with_major_version,
    )
    return {
        "browserType": browser_type,
        "platform": platform,
        "locale": "en",
        "browserVersion": browser_version,
    }


def geo_context(geo: delivery_pb2.Geo) -> dict[str, Any]:
    """``{country, region, city, latitude, longitude}`` with only the values that are present."""
    result: dict[str, Any] = {}
    if geo.HasField("country_code"):
        result["country"] = geo.country_code
    if geo.HasField("state_code"):
        result["region"] = geo.state_code
    if geo.HasField("city"):
        result["city"] = geo.city
    if geo.HasField("latitude"):
        result["latitude"] = geo.latitude
    if geo.HasField("longitude"):
        result["longitude"] = geo.longitude
    return result


def base_context(request: delivery_pb2.DeliveryRequest, now_ms: int) -> dict[str, Any]:
    """The request-level context (no ``mbox``/``allocation`` yet)."""
    context = request.context
    timestamp, hhmm, day = time_context(now_ms)
    address = context.address
    return {
        "current_timestamp": timestamp,
        "current_time": hhmm,
        "current_day": day,
        "user": user_context(context),
        "page": url_context(address.url) if address.url else EMPTY_URL_CONTEXT,
        "referring": url_context(address.referring_url) if address.referring_url else EMPTY_URL_CONTEXT,
        "geo": geo_context(context.geo),
    }


def _valid_dotted(key: str) -> bool:
    return "." in key and ".." not in key and not key.startswith(".") and not key.endswith(".")


def _add_lowercase(node: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in node.items():
        if isinstance(value, dict):
            result[key] = _add_lowercase(value)
        else:
            result[key] = value
    for key, value in node.items():
        if isinstance(value, str):
            result[f"{key}_lc"] = value.lower()
    return result


def mbox_params_context(parameters: Mapping[str, str]) -> Mapping[str, Any]:
    """Unflatten dotted parameter names and add ``_lc`` siblings (see the module docstring)."""
    if not parameters:
        return EMPTY_PARAMS
    tree: dict[str, Any] = {}
    dotted: list[tuple[str, str]] = []
    for key, value in parameters.items():
        if _valid_dotted(key):
            dotted.append((key, value))
        else:
            tree[key] = value
    # Nested objects win over plain values at the same path, whatever the order of the keys.
    for key, value in sorted(dotted, key=lambda item: item[0].count(".")):
        parts = key.split(".")
        node = tree
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        if not isinstance(node.get(parts[-1]), dict):
            node[parts[-1]] = value
    return _add_lowercase(tree)
