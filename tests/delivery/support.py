"""Helpers for the remote-side tests: the local edge stand-in as a real process (or in-process server),
its admin API over real HTTP, and a targetd process pointed at it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from targetd_edge import EdgeServer, EdgeStore
from tests.support import REPO, TargetdProcess, eventually, wait_for_announcement

SAMPLE = REPO / "deploy" / "sample"
CLIENT = "acmeclient"
ORG = "1234567890@AdobeOrg"


# The ``targetd-edge`` console script (tools/edge) of the interpreter running the tests.
EDGE_COMMAND = str(Path(sys.executable).with_name("targetd-edge"))


class EdgeProcess:
    """``targetd-edge`` as a child process on an ephemeral loopback port (context manager)."""

    def __init__(self, data_dir: Path, *, root: Path = SAMPLE, extra: Sequence[str] = ()) -> None:
        self.data_dir = data_dir
        self.root = root
        self.extra = list(extra)
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> EdgeProcess:
        cmd = [
            EDGE_COMMAND,
            "--listen",
            "127.0.0.1:0",
            "--root",
            str(self.root),
            "--data-dir",
            str(self.data_dir),
            *self.extra,
        ]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=dict(os.environ)
        )
        address = wait_for_announcement(self.proc, "targetd edge listening on ", 20)
        if address:
            self.port = int(address.rsplit(":", 1)[1])
            return self
        self.stop()
        raise RuntimeError("targetd edge did not start")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()

    def __enter__(self) -> EdgeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ admin API

    def call(self, method: str, path: str, data: Any = None) -> Any:
        return http_json(method, self.base + path, data)

    def notifications(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.call("GET", "/_edge/notifications")
        return result

    def wait_notifications(self, count: int, *, timeout: float = 30.0) -> list[dict[str, Any]]:
        """The notifications once there are at least ``count`` (bounded wait)."""

        def enough() -> list[dict[str, Any]]:
            found = self.notifications()
            assert len(found) >= count, f"{len(found)} notifications received, waiting for {count}"
            return found

        return eventually(enough, timeout=timeout, interval=0.05)

    def telemetry(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.call("GET", "/_edge/telemetry")
        return result

    def requests(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.call("GET", "/_edge/requests")
        return result

    def decision_requests(self) -> list[dict[str, Any]]:
        """Delivery calls that asked for decisions (execute or prefetch)."""
        return [
            r
            for r in self.requests()
            if isinstance(r.get("body"), dict) and ("execute" in r["body"] or "prefetch" in r["body"])
        ]

    def fault(self, **spec: Any) -> None:
        self.call("POST", "/_edge/fault", spec)

    def clear_fault(self) -> None:
        self.call("DELETE", "/_edge/fault")


def http_json(method: str, url: str, data: Any = None) -> Any:
    body = None if data is None else json.dumps(data).encode()
    request = urllib.request.Request(
        url, data=body, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read() or b"null")


def targetd_args(edge: EdgeProcess, data_dir: Path, method: str, *extra: str) -> list[str]:
    """Flags pointing targetd at ``edge`` (artifact, geo, Delivery API; a known cluster → localhost)."""
    return [
        "--client",
        CLIENT,
        "--organization-id",
        ORG,
        "--decisioning-method",
        method,
        "--cdn-base-path",
        edge.base,
        "--server-domain",
        f"127.0.0.1:{edge.port}",
        "--edge-host-template",
        f"localhost:{edge.port}",
        "--secure",
        "false",
        "--data-dir",
        str(data_dir),
        "--polling-interval",
        "0",
        "--timeout",
        "2000",
        "--outbox-max-backoff",
        "0.3",
        "--grace-period",
        "2",
        "--log-format",
        "text",
        *extra,
    ]


@contextmanager
def targetd(edge: EdgeProcess, data_dir: Path, method: str, *extra: str) -> Iterator[TargetdProcess]:
    with TargetdProcess(targetd_args(edge, data_dir, method, *extra)) as proc:
        yield proc


@contextmanager
def edge_in_process(root: Path, data_dir: Path, **kwargs: Any) -> Iterator[EdgeServer]:
    """The edge stand-in in this process (a real HTTP server on a loopback port, its own thread)."""
    store = EdgeStore(data_dir / "notifications.sqlite3")
    server = EdgeServer(("127.0.0.1", 0), root=root, store=store, **kwargs)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        store.close()
        thread.join(5)
