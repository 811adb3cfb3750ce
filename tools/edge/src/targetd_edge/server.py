"""``targetd-edge``: a LOCAL STAND-IN for Adobe Target, for development and tests only — never a production
endpoint. It answers what targetd calls, on loopback, with no account and no network:

* ``GET /{client}/{environment}/v1/[{token}/]rules.json`` — artifacts from a directory, with a strong
  ``ETag`` and ``304 Not Modified`` for ``If-None-Match``;
* ``GET /v1/geo`` — the ``x-geo-*`` answer for ``x-forwarded-for`` from a JSON table (``"default"`` entry
  for unknown addresses);
* ``POST /rest/v1/delivery`` — decisions made by targetd's own on-device engine over the same artifact
  (every mbox is answered, ``status`` 200), notifications and telemetry recorded in its SQLite file;
* ``/_edge/...`` — for tests: ``GET notifications`` / ``telemetry`` / ``requests`` (recent delivery
  calls with query and headers), ``DELETE notifications`` (forget), ``POST fault`` (``{"status": 503,
  "delay_ms": 0, "count": null, "path": "/rest/v1/delivery"}``: fail or delay matching calls, ``count``
  times or until cleared) and ``DELETE fault``.

Thread affinity: ``ThreadingHTTPServer`` — one thread per connection; shared state is locked.
"""

from __future__ import annotations

import hashlib
import json
import logging
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from targetd.json_format import message_to_dict, parse_dict
from targetd.v1 import delivery_pb2
from targetd_edge.store import EdgeStore
from targetd_server import __version__
from targetd_server.engine import (
    CompiledArtifact,
    EngineError,
    compile_artifact,
    decide,
    geo_from_lookup,
    needs_geo_lookup,
)

log = logging.getLogger("targetd.edge")

__all__ = ["EdgeServer", "Fault"]

DELIVERY_PATH: Final = "/rest/v1/delivery"
RECENT_REQUESTS: Final = 1000


@dataclass
class Fault:
    """An injected failure: answer ``status`` (0: answer normally) after ``delay_ms``, ``count`` times
    (None: until cleared), for paths starting with ``path``."""

    status: int = 503
    delay_ms: int = 0
    count: int | None = None
    path: str = DELIVERY_PATH


class EdgeServer(ThreadingHTTPServer):
    """The stand-in; see the module docstring. ``serve_forever`` in a thread, ``shutdown`` to stop."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        *,
        root: Path,
        store: EdgeStore,
        client: str | None = None,
        environment: str = "production",
        geo_table: dict[str, dict[str, Any]] | None = None,
        cluster: str | None = None,
    ) -> None:
        super().__init__(address, _Handler)
        self.root = root.resolve()
        self.store = store
        self.client = client or _single_client(self.root)
        self.environment = environment
        self.geo_table = geo_table or {}
        self.cluster = cluster
        self.lock = threading.Lock()
        self.fault: Fault | None = None
        self.requests: deque[dict[str, Any]] = deque(maxlen=RECENT_REQUESTS)
        self._compiled: dict[Path, tuple[int, CompiledArtifact]] = {}

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self.server_address[1])

    def take_fault(self, path: str) -> Fault | None:
        """The fault to apply to ``path`` now, if any (consumes one of its ``count``)."""
        with self.lock:
            fault = self.fault
            if fault is None or not path.startswith(fault.path):
                return None
            if fault.count is not None:
                fault.count -= 1
                if fault.count <= 0:
                    self.fault = None
            return fault

    def geo_for(self, ip: str) -> dict[str, Any]:
        """The ``x-geo-*`` answer for ``ip`` from the table (its ``default`` entry for unknown ones)."""
        found = dict(self.geo_table.get(ip) or self.geo_table.get("default") or {})
        if ip and ip != "unknownIpAddress":
            found["x-forwarded-for"] = ip
        return found

    def artifact_path(self, token: str | None) -> Path:
        """The rules file deciding for this edge's client (with ``token``'s file when it exists)."""
        base = self.root / (self.client or "") / self.environment / "v1"
        if token:
            candidate = base / token / "rules.json"
            if candidate.is_file():
                return candidate
        return base / "rules.json"

    def compiled(self, path: Path) -> CompiledArtifact:
        """The compiled artifact of ``path``, recompiled when the file changes."""
        stamp = path.stat().st_mtime_ns
        with self.lock:
            found = self._compiled.get(path)
        if found is not None and found[0] == stamp:
            return found[1]
        artifact = compile_artifact(json.loads(path.read_bytes()))
        with self.lock:
            self._compiled[path] = (stamp, artifact)
        return artifact


def _mark_server_side(response: delivery_pb2.DeliveryResponse) -> None:
    """Decisions of the edge are server-side ones: say so in the ``activity.decisioningMethod`` token."""
    containers: list[Any] = []
    for part in (response.execute, response.prefetch):
        if part.HasField("page_load"):
            containers.append(part.page_load)
        containers.extend(part.mboxes)
    containers.extend(response.prefetch.views)
    for container in containers:
        for option in container.options:
            tokens = option.response_tokens.fields
            if "activity.decisioningMethod" in tokens:
                tokens["activity.decisioningMethod"].string_value = "server-side"


def _single_client(root: Path) -> str | None:
    clients = [p.name for p in root.iterdir() if p.is_dir()] if root.is_dir() else []
    return clients[0] if len(clients) == 1 else None


class _Handler(BaseHTTPRequestHandler):
    server: EdgeServer
    protocol_version = "HTTP/1.1"
    server_version = f"targetd-edge-stand-in/{__version__}"

    def setup(self) -> None:
        super().setup()
        # Headers and body are two writes: without TCP_NODELAY, Nagle + the client's delayed ACK add ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s " + format, self.address_string(), *args)

    # ---------------------------------------------------------------- plumbing

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data).encode(), {"Content-Type": "application/json"})

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _apply_fault(self, path: str) -> bool:
        fault = self.server.take_fault(path)
        if fault is None:
            return False
        if fault.delay_ms > 0:
            time.sleep(fault.delay_ms / 1000)
        if not fault.status:
            return False
        self._json(
            fault.status, {"status": fault.status, "message": "injected failure (targetd edge stand-in)"}
        )
        return True

    # ---------------------------------------------------------------- routes

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        path = url.path
        if path == "/_edge/notifications":
            self._json(200, self.server.store.notifications())
        elif path == "/_edge/telemetry":
            self._json(200, self.server.store.telemetry())
        elif path == "/_edge/requests":
            with self.server.lock:
                recent = list(self.server.requests)
            self._json(200, recent)
        elif path == "/_edge/health":
            self._json(200, {"status": "ok", "client": self.server.client, "standIn": True})
        elif self._apply_fault(path):
            return
        elif path == "/v1/geo":
            self._geo()
        elif path.endswith("/rules.json"):
            self._rules(path)
        else:
            self._json(404, {"message": f"not found: {path}"})

    do_HEAD = do_GET

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        body = self._body()
        if path == "/_edge/fault":
            self._set_fault(body)
        elif path == DELIVERY_PATH:
            self._delivery(body)
        else:
            self._json(404, {"message": f"not found: {path}"})

    def do_DELETE(self) -> None:
        path = urlsplit(self.path).path
        if path == "/_edge/fault":
            with self.server.lock:
                self.server.fault = None
            self._json(200, {"fault": None})
        elif path == "/_edge/notifications":
            self.server.store.clear()
            with self.server.lock:
                self.server.requests.clear()
            self._json(200, {"cleared": True})
        else:
            self._json(404, {"message": f"not found: {path}"})

    def _set_fault(self, body: bytes) -> None:
        try:
            data = json.loads(body or b"{}")
            fault = Fault(
                status=int(data.get("status", 503)),
                delay_ms=int(data.get("delay_ms", 0)),
                count=None if data.get("count") is None else int(data["count"]),
                path=str(data.get("path", DELIVERY_PATH)),
            )
        except (ValueError, TypeError, AttributeError) as exc:
            self._json(400, {"message": f"bad fault: {exc}"})
            return
        with self.server.lock:
            self.server.fault = fault
        self._json(200, {"fault": vars(fault)})

    def _rules(self, path: str) -> None:
        target = (self.server.root / path.lstrip("/")).resolve()
        if not target.is_relative_to(self.server.root) or not target.is_file():
            self._json(404, {"message": f"no artifact at {path}"})
            return
        content = target.read_bytes()
        etag = '"' + hashlib.sha256(content).hexdigest()[:32] + '"'
        if self.headers.get("If-None-Match") == etag:
            self._send(304, b"", {"ETag": etag})
            return
        self._send(200, content, {"Content-Type": "application/json", "ETag": etag})

    def _geo(self) -> None:
        ip = (self.headers.get("x-forwarded-for") or "").split(",")[0].strip()
        self._json(200, self.server.geo_for(ip))

    def _delivery(self, body: bytes) -> None:
        query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
        record: dict[str, Any] = {
            "receivedNs": time.time_ns(),
            "host": self.headers.get("Host"),
            "query": query,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "status": "pending",
        }
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        record["body"] = data
        with self.server.lock:  # recorded on arrival: a delayed call is listed (and cleared) at once
            self.server.requests.append(record)
        status, answer = self._answer(data, query)
        if status is None:
            record["status"] = "fault"
            return
        record["status"] = status
        self._json(status, answer)

    def _answer(self, data: Any, query: dict[str, str]) -> tuple[int | None, Any]:
        """(status, JSON answer) of a delivery call; status None when an injected fault answered."""
        if self._apply_fault(DELIVERY_PATH):
            return None, None
        try:
            if not isinstance(data, dict):
                raise ValueError("the body is not a JSON object")
            request = parse_dict(data, delivery_pb2.DeliveryRequest(), ignore_unknown=True)
        except ValueError as exc:
            return 400, {"status": 400, "message": f"invalid Delivery request: {exc}"}
        if not query.get("imsOrgId") or not query.get("sessionId"):
            return 400, {"status": 400, "message": "imsOrgId and sessionId query parameters are required"}
        try:
            response = self._decide(request, query["sessionId"])
        except (EngineError, OSError, ValueError) as exc:
            return 400, {"status": 400, "message": f"cannot decide: {exc}"}
        self.server.store.record(request, query.get("sessionId"))
        return 200, message_to_dict(response)

    def _decide(
        self, request: delivery_pb2.DeliveryRequest, session_id: str
    ) -> delivery_pb2.DeliveryResponse:
        server = self.server
        client = server.client or ""
        if not request.HasField("execute") and not request.HasField("prefetch"):
            response = delivery_pb2.DeliveryResponse(status=200, request_id=request.request_id, client=client)
            response.id.CopyFrom(request.id)
        else:
            artifact = server.compiled(server.artifact_path(request.property.token or None))
            geo = None
            if needs_geo_lookup(artifact, request):  # the edge knows the visitor's IP location itself
                geo = geo_from_lookup(server.geo_for(request.context.geo.ip_address))
            result = decide(
                artifact,
                request,
                client=client,
                session_id=session_id,
                location_hint=server.cluster,
                telemetry_enabled=False,
                geo=geo,
            )
            response = result.response
            response.status = 200  # the edge answers everything itself
            _mark_server_side(response)
        if server.cluster:
            response.edge_host = f"mboxedge{server.cluster}.tt.omtrdc.net"
        return response
