"""``targetd serve`` as a real process: health, reflection, graceful SIGTERM."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.support import TargetdProcess, eventually

SERVICE = "targetd.v1.DecisioningService"
BASE = ["--client", "acmeclient", "--organization-id", "1234567890@AdobeOrg", "--log-format", "text"]


def _health(channel: grpc.Channel, service: str = "") -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return int(stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status)


def test_health_not_serving_until_ready_then_reflection_then_sigterm(tmp_path: object) -> None:
    # On-device with an artifact location where nothing listens: the client can never become ready.
    args = [
        *BASE,
        "--decisioning-method",
        "on-device",
        "--artifact-location",
        "http://127.0.0.1:9/rules.json",
    ]
    with (
        TargetdProcess([*args, "--data-dir", str(tmp_path)]) as proc,
        grpc.insecure_channel(proc.address) as ch,
    ):
        assert _health(ch) == health_pb2.HealthCheckResponse.NOT_SERVING
        assert _health(ch, SERVICE) == health_pb2.HealthCheckResponse.NOT_SERVING

        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        responses = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        names = {s.name for r in responses for s in r.list_services_response.service}
        assert {SERVICE, "grpc.health.v1.Health"} <= names
    assert proc.returncode == 0


def test_server_side_is_serving_at_once_and_stops_cleanly(tmp_path: object) -> None:
    with (
        TargetdProcess([*BASE, "--data-dir", str(tmp_path)]) as proc,
        grpc.insecure_channel(proc.address) as ch,
    ):
        eventually(lambda: _health(ch) == health_pb2.HealthCheckResponse.SERVING)
        assert _health(ch, SERVICE) == health_pb2.HealthCheckResponse.SERVING
    assert proc.returncode == 0


def test_bad_configuration_exits_with_the_sdk_message(tmp_path: object) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "targetd_server.main", "serve", "--organization-id", "x@AdobeOrg"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2
    assert "Client is required" in result.stderr


def test_probe_command_reports_health(tmp_path: object) -> None:
    import subprocess
    import sys

    def probe(address: str) -> int:
        cmd = [sys.executable, "-m", "targetd_server.main", "probe", "--address", address, "--timeout", "2"]
        return subprocess.run(cmd, capture_output=True, timeout=30).returncode

    with TargetdProcess([*BASE, "--data-dir", str(tmp_path)]) as proc:
        eventually(lambda: probe(proc.address) == 0, timeout=15)
    args = [
        *BASE,
        "--decisioning-method",
        "on-device",
        "--artifact-location",
        "http://127.0.0.1:9/rules.json",
    ]
    with TargetdProcess([*args, "--data-dir", str(tmp_path)]) as proc:
        assert probe(proc.address) == 1
