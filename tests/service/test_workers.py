"""``targetd serve --workers N`` as real processes on loopback: the workers share the port and all answer,
a killed worker comes back while calls keep succeeding, the metrics of every worker on the one admin port;
and a port in use is an error, with or without workers."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from targetd.v1 import decisioning_service_pb2 as pb
from targetd.v1 import decisioning_service_pb2_grpc as pb_grpc
from tests.support import REPO, TargetdProcess, eventually

BASE_ARGS = ["--client", "acmeclient", "--organization-id", "1234567890@AdobeOrg", "--grace-period", "1"]


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[tuple[TargetdProcess, str]]:
    """Two workers and the admin port; yields (the process, the admin host:port)."""
    with socket.socket() as probe:  # a free port for the admin server (loopback, this test only)
        probe.bind(("127.0.0.1", 0))
        admin = f"127.0.0.1:{probe.getsockname()[1]}"
    server = TargetdProcess(
        [*BASE_ARGS, "--data-dir", str(tmp_path), "--workers", "2", "--metrics-listen", admin],
        start_timeout=60.0,
    )
    with server:
        yield server, admin


def _samples(admin: str, name: str) -> dict[str, float]:
    """{pid: value} of a per-worker gauge (or {"": value} of a summed metric) on the admin port."""
    with urllib.request.urlopen(f"http://{admin}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                key = sample.labels.get("pid", "")
                found[key] = found.get(key, 0.0) + sample.value
    return found


def _own_channel(address: str) -> grpc.Channel:
    # A connection of its own (not the process-wide subchannel pool), so the kernel hashes it afresh.
    return grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])


def _ready_workers(admin: str) -> dict[str, float]:
    ready = _samples(admin, "targetd_ready")
    assert len(ready) == 2 and all(value == 1 for value in ready.values()), ready
    return ready


def test_two_workers_answer_and_their_metrics_share_the_admin_port(
    workers: tuple[TargetdProcess, str],
) -> None:
    server, admin = workers
    pids = set(eventually(lambda: _ready_workers(admin)))
    channels = [_own_channel(server.address) for _ in range(16)]
    streams = []
    try:
        for channel in channels:
            stub = pb_grpc.DecisioningServiceStub(channel)
            assert stub.GetStatus(pb.GetStatusRequest(), timeout=5, wait_for_ready=True).ready
            stream = stub.SubscribeEvents(pb.SubscribeEventsRequest(), timeout=30)
            next(stream)  # the current state: this worker answers
            streams.append(stream)

        def both_serve_streams() -> bool:
            subscribers = _samples(admin, "targetd_event_subscribers")
            assert set(subscribers) == pids and all(value >= 1 for value in subscribers.values()), subscribers
            return True

        eventually(both_serve_streams)

        def all_started_counted() -> bool:
            # 16 GetStatus + 16 SubscribeEvents, summed over the workers; a worker adds its gRPC
            # metrics to its files every second (metrics.RpcMetrics), so this may lag by that much
            started = _samples(admin, "grpc_server_started_total")
            assert started.get("", 0.0) >= 32, started
            return True

        eventually(all_started_counted)
        with urllib.request.urlopen(f"http://{admin}/readyz", timeout=5) as reply:
            assert reply.status == 200
    finally:
        for stream in streams:
            stream.cancel()
        for channel in channels:
            channel.close()


def test_a_killed_worker_comes_back_while_calls_keep_succeeding(workers: tuple[TargetdProcess, str]) -> None:
    server, admin = workers
    before = set(eventually(lambda: _ready_workers(admin)))
    victim = int(sorted(before)[0])
    os.kill(victim, signal.SIGKILL)
    # Calls go on succeeding, each on a connection of its own, while the worker is down and restarted.
    served = 0
    after: set[str] = set()
    for _ in range(200):
        with _own_channel(server.address) as channel:
            stub = pb_grpc.DecisioningServiceStub(channel)
            assert stub.GetStatus(pb.GetStatusRequest(), timeout=10, wait_for_ready=True).ready
            served += 1
        ready = _samples(admin, "targetd_ready")
        if len(ready) == 2 and str(victim) not in ready and all(v == 1 for v in ready.values()):
            after = set(ready)
            break
    else:
        after = set(eventually(lambda: _ready_workers(admin)))
    assert served >= 1
    assert str(victim) not in after and len(after) == 2
    assert after & before, "the other worker kept running"
    with urllib.request.urlopen(f"http://{admin}/readyz", timeout=5) as reply:
        assert reply.status == 200


def _serve(port: int, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "targetd_server.main", "serve", *BASE_ARGS, "--data-dir", str(tmp_path)]
    return subprocess.run(
        [*cmd, "--listen", f"127.0.0.1:{port}", *extra],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


def test_a_port_in_use_is_an_error(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        for extra in ((), ("--workers", "2")):
            result = _serve(port, tmp_path / "x", *extra)
            assert result.returncode == 1, (extra, result.stderr)
            assert f"targetd: cannot listen on 127.0.0.1:{port}: address in use" in result.stderr, extra
            assert "targetd listening" not in result.stdout
            # no plain-text line of gRPC core's (absl's "E1201 12:00:00.000000 ..." form) in the stream
            assert not re.search(r"^[IWEF]\d{4} ", result.stderr, re.MULTILINE), result.stderr


def test_a_second_server_on_a_used_port_fails(tmp_path: Path) -> None:
    with TargetdProcess([*BASE_ARGS, "--data-dir", str(tmp_path / "first")]) as first:
        port = int(first.address.rsplit(":", 1)[1])
        result = _serve(port, tmp_path / "second")
        assert result.returncode == 1, result.stderr
        assert f"targetd: cannot listen on 127.0.0.1:{port}: address in use" in result.stderr
        # the first one still answers every call (no port sharing)
        for _ in range(5):
            with _own_channel(first.address) as channel:
                status = pb_grpc.DecisioningServiceStub(channel).GetStatus(pb.GetStatusRequest(), timeout=5)
                assert status.client == "acmeclient"


def _connections_by_pid(port: int, pids: set[str]) -> dict[str, int]:
    """Established TCP connections to ``port`` held by each of ``pids`` (from /proc: the kernel's view)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                if local_port == port and fields[3] == "01":  # 01: ESTABLISHED
                    inodes.add(fields[9])
    counts: dict[str, int] = {}
    for pid in pids:
        held = 0
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                held += 1
        counts[pid] = held
    return counts


def test_the_python_client_spreads_its_calls_over_every_worker(workers: tuple[TargetdProcess, str]) -> None:
    from targetd_client import TargetClient

    server, admin = workers
    pids = set(eventually(lambda: _ready_workers(admin)))
    port = int(server.address.rsplit(":", 1)[1])
    options = {"client": "acmeclient", "organization_id": "1234567890@AdobeOrg"}
    with TargetClient.create({**options, "targetd_address": server.address, "channels": 16}) as client:
        for _ in range(32):  # each of the 16 connections used twice
            assert client.get_status(timeout=5000)["ready"]
        counts = _connections_by_pid(port, pids)
        # 16 connections hashed over 2 workers: every worker holds some (all on one: p = 2 * 2^-16)
        assert sum(counts.values()) == 16 and all(n >= 1 for n in counts.values()), counts
    with TargetClient.create({**options, "targetd_address": server.address}) as single:
        assert single.get_status(timeout=5000)["ready"]
        # one channel, one connection (the closed client's go away)
        eventually(lambda: sum(_connections_by_pid(port, pids).values()) == 1)


def test_channels_is_validated() -> None:
    from targetd_client import InvalidOptionsError, TargetClient

    for bad in (0, 65, "4", True):
        with pytest.raises(InvalidOptionsError, match="channels"):
            TargetClient.create({"client": "c", "organization_id": "o", "channels": bad})
