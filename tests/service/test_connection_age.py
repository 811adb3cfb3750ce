"""max_connection_age: the server sends GOAWAY once a connection is that old, so a long-lived channel
reconnects (and, behind a headless Service with round_robin, rebalances over the replicas)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from targetd.v1 import decisioning_service_pb2 as pb
from targetd.v1 import decisioning_service_pb2_grpc as pb_grpc
from targetd_server.config import Settings
from targetd_server.errors import ConfigError
from targetd_server.service.server import server_options, start_server
from tests.support import eventually_async


def _settings(tmp_path: Path, max_connection_age: float) -> Settings:
    return Settings(
        client="acmeclient",
        organization_id="1234567890@AdobeOrg",
        decisioning_method="server-side",
        listen="127.0.0.1:0",
        data_dir=str(tmp_path),
        telemetry_enabled=False,
        grace_period=1.0,
        max_connection_age=max_connection_age,
    )


async def test_an_old_connection_is_closed_and_the_channel_reconnects(tmp_path: Path) -> None:
    running = await start_server(_settings(tmp_path, max_connection_age=0.3))
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        stub = pb_grpc.DecisioningServiceStub(channel)
        await stub.GetStatus(pb.GetStatusRequest(), timeout=5)
        assert channel.get_state() == grpc.ChannelConnectivity.READY

        async def went_idle() -> bool:
            return channel.get_state() != grpc.ChannelConnectivity.READY

        await eventually_async(went_idle)  # GOAWAY: the channel leaves READY by itself
        assert (await stub.GetStatus(pb.GetStatusRequest(), timeout=5)).client == "acmeclient"
    finally:
        await channel.close()
        await running.stop()


def test_zero_means_never_and_negative_is_refused(tmp_path: Path) -> None:
    options = dict(server_options(_settings(tmp_path, max_connection_age=0)))
    assert options["grpc.max_connection_age_ms"] == 2**31 - 1  # gRPC core's "infinite"
    assert dict(server_options(_settings(tmp_path, 300)))["grpc.max_connection_age_ms"] == 300_000
    with pytest.raises(ConfigError, match="max_connection_age"):
        _settings(tmp_path, -1)
