"""The sender process under a real targetd: its state in GetStatus, a SIGKILLed sender restarted without
a server restart, and a SIGKILL of the server in the middle of a load with slow Delivery API answers —
every notification of a served decision counted at the edge stand-in, at least once."""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from pathlib import Path

import grpc

from targetd.v1 import decisioning_service_pb2 as pb
from tests.delivery.grpcutil import Client
from tests.delivery.support import EdgeProcess, targetd
from tests.support import eventually

CONTEXT = {"channel": "web", "address": {"url": "https://www.acme.example/"}}


def _execute(client: Client, request_id: str) -> None:
    client.offers(
        {"requestId": request_id, "context": CONTEXT, "execute": {"mboxes": [{"name": "home", "index": 1}]}}
    )


def _outbox(client: Client) -> pb.OutboxStatus:
    return client.stub.GetStatus(pb.GetStatusRequest(), timeout=5).outbox


def _telemetry_ids(edge: EdgeProcess) -> Counter[str]:
    return Counter(r["entry"]["requestId"] for r in edge.telemetry())


def test_a_killed_sender_comes_back_without_a_server_restart(clean_edge: EdgeProcess, data_dir: Path) -> None:
    with targetd(clean_edge, data_dir, "on-device") as proc, Client(proc) as client:

        def running(old_pid: int = 0) -> pb.OutboxStatus | None:
            status = _outbox(client)
            if status.sender_state == "running" and status.sender_pid not in (0, old_pid):
                return status
            return None

        first = eventually(running)
        assert first is not None and first.sender_restarts == 0 and not first.degraded
        for i in range(5):
            _execute(client, f"before-{i}")
        clean_edge.wait_notifications(5)
        eventually(lambda: _outbox(client).delivered >= 5)  # (as the sender last reported)
        os.kill(first.sender_pid, signal.SIGKILL)
        back = eventually(lambda: running(first.sender_pid), timeout=20)
        assert back is not None and back.sender_restarts == 1 and not back.degraded
        for i in range(5):
            _execute(client, f"after-{i}")
        clean_edge.wait_notifications(10)
        eventually(lambda: _outbox(client).backlog == 0)
        eventually(lambda: _outbox(client).delivered >= 10)


def test_sigkill_of_the_server_mid_load_loses_nothing(clean_edge: EdgeProcess, data_dir: Path) -> None:
    clean_edge.fault(status=0, delay_ms=300)  # slow answers: requests in flight when the kill comes
    served: list[str] = []
    stop = threading.Event()
    with targetd(clean_edge, data_dir, "on-device") as proc, Client(proc) as client:

        def load() -> None:
            n = 0
            while not stop.is_set():
                request_id = f"load-{n}"
                n += 1
                try:
                    _execute(client, request_id)
                except grpc.RpcError:
                    return  # the server is gone
                served.append(request_id)

        thread = threading.Thread(target=load)
        thread.start()
        eventually(lambda: len(served) >= 40 and len(clean_edge.requests()) >= 2)
        proc.stop(kill=True)  # SIGKILL mid-load: no flush; its sender stops when its stdin closes
        stop.set()
        thread.join(10)
    clean_edge.clear_fault()
    with targetd(clean_edge, data_dir, "on-device") as proc, Client(proc) as client:

        def all_delivered() -> bool:
            missing = set(served) - set(_telemetry_ids(clean_edge))
            assert not missing, f"{len(missing)} of {len(served)} served decisions not delivered yet"
            return True

        eventually(all_delivered, timeout=60, interval=0.2)
        eventually(lambda: _outbox(client).backlog == 0, timeout=30)
    notes = Counter(r["notification"]["id"] for r in clean_edge.notifications())
    assert len(notes) >= len(served)  # one display notification per served execute, at least once
