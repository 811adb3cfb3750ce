"""Delivery API host selection."""

from __future__ import annotations

from typing import Any

from targetd_server.config import Settings
from targetd_server.delivery import target_host
from targetd_server.delivery.http import DeliveryApi


def _settings(**extra: Any) -> Settings:
    return Settings(client="acme", organization_id="org@AdobeOrg", **extra)


def test_host_selection() -> None:
    assert target_host(_settings(), None) == "acme.tt.omtrdc.net"
    assert target_host(_settings(server_domain="edge.example.com"), None) == "edge.example.com"
    assert target_host(_settings(server_domain="edge.example.com"), "35") == "mboxedge35.tt.omtrdc.net"
    assert target_host(_settings(edge_host_template="proxy-{cluster}.internal"), "7") == "proxy-7.internal"
    # (no call made: nothing to close)
    assert DeliveryApi(_settings(secure=False)).url(None) == "http://acme.tt.omtrdc.net/rest/v1/delivery"
    assert DeliveryApi(_settings()).url("28") == "https://mboxedge28.tt.omtrdc.net/rest/v1/delivery"
