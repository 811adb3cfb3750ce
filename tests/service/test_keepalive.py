"""Keepalive enforcement settings: client pings every 30 s (also on idle connections) are tolerated.

gRPC core applies these arguments itself; this checks that the server is built with them. (Behavioural
ping-strike tests proved unreliable here: core resets strikes whenever the server writes.)"""

from __future__ import annotations

from targetd_server.config import Settings
from targetd_server.service.server import server_options


def test_thirty_second_client_pings_are_within_policy() -> None:
    options = dict(server_options(Settings(client="c", organization_id="o")))
    assert options["grpc.keepalive_permit_without_calls"] == 1
    assert options["grpc.http2.min_recv_ping_interval_without_data_ms"] <= 30_000
    assert options["grpc.http2.max_ping_strikes"] >= 1  # abusive pingers are still cut off


def test_the_minimum_is_configurable() -> None:
    options = dict(server_options(Settings(client="c", organization_id="o", keepalive_min_ping_interval=45)))
    assert options["grpc.http2.min_recv_ping_interval_without_data_ms"] == 45_000
