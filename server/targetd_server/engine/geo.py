"""Geo helpers: when the I/O layer must look the visitor's IP up, and how a lookup result maps to ``Geo``.

The engine does no I/O: :func:`needs_geo_lookup` tells the caller whether to call the geo service (Node's
rule), and :func:`geo_from_lookup` turns that service's answer (JSON keyed by ``x-geo-*`` header names, or
the same headers of an artifact response) into a ``Geo`` message to pass to ``decide(geo=...)``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from targetd.v1 import delivery_pb2

__all__ = ["UNKNOWN_IP_ADDRESS", "geo_from_lookup", "is_valid_ip", "needs_geo_lookup"]

UNKNOWN_IP_ADDRESS = "unknownIpAddress"


def is_valid_ip(value: str) -> bool:
    """True for an IPv4 or IPv6 address."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _lookup_ip(geo: delivery_pb2.Geo) -> bool:
    if not geo.HasField("ip_address"):
        return False
    return geo.ip_address == UNKNOWN_IP_ADDRESS or is_valid_ip(geo.ip_address)


def needs_geo_lookup(artifact: Any, request: delivery_pb2.DeliveryRequest) -> bool:
    """Node's rule: the artifact has geo targeting on, the request's geo carries a valid IP address (or
    ``"unknownIpAddress"``) and none of latitude, longitude, countryCode, stateCode, city."""
    if not getattr(artifact, "geo_targeting_enabled", False):
        return False
    geo = request.context.geo
    if not _lookup_ip(geo):
        return False
    return not any(
        geo.HasField(name) for name in ("latitude", "longitude", "country_code", "state_code", "city")
    )


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def geo_from_lookup(data: Mapping[str, Any]) -> delivery_pb2.Geo:
    """Map ``x-geo-latitude``, ``x-geo-longitude`` (floats), ``x-geo-country-code`` → countryCode,
    ``x-geo-region-code`` → stateCode, ``x-geo-city`` → city and ``x-forwarded-for`` → ipAddress.
    Keys are matched case-insensitively; missing or empty values are left out."""
    lowered = {str(k).lower(): v for k, v in data.items()}
    geo = delivery_pb2.Geo()
    latitude = _float(lowered.get("x-geo-latitude"))
    if latitude is not None:
        geo.latitude = latitude
    longitude = _float(lowered.get("x-geo-longitude"))
    if longitude is not None:
        geo.longitude = longitude
    for key, field in (
        ("x-geo-country-code", "country_code"),
        ("x-geo-region-code", "state_code"),
        ("x-geo-city", "city"),
        ("x-forwarded-for", "ip_address"),
    ):
        value = lowered.get(key)
        if value is not None and value != "":
            setattr(geo, field, str(value))
    return geo
