"""A programmable artifact CDN on loopback: real HTTP for the artifact provider's tests.

By default it serves the current artifact with its ETag, and 304 when ``If-None-Match`` matches. Queue
one-shot behaviours with :meth:`FakeCdn.push` ("403", "500", "slow", "truncated", "invalid_json", ...) or
make one permanent with :meth:`FakeCdn.always`. Requests are recorded with their headers.

Hostile behaviours (issue 12): "gzip" (the artifact gzip-encoded), "gzip_bomb" (gzip of
:data:`BOMB_BYTES` zero bytes), "huge" (a declared Content-Length of :data:`HUGE_BYTES`), "chunked_huge"
(:data:`HUGE_BYTES` streamed without a Content-Length), "trickle" (the artifact one byte every 50 ms),
"brotli" (a Content-Encoding that was not asked for).
"""

from __future__ import annotations

import gzip
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.conftest import CONFORMANCE

ARTIFACTS = CONFORMANCE / "artifacts"
BOMB_BYTES = 16 * 1024 * 1024  # what the gzip bomb inflates to (about 16 KB on the wire)
HUGE_BYTES = 4 * 1024 * 1024
_BOMB = gzip.compress(b"\0" * BOMB_BYTES, compresslevel=9)


def shared_artifact(name: str) -> bytes:
    """A shared conformance artifact's bytes (read in place), e.g. ``"TEST_ARTIFACT_AB_SIMPLE"``."""
    return (ARTIFACTS / f"{name}.json").read_bytes()


@dataclass
class Seen:
    """One request the CDN received."""

    path: str
    headers: dict[str, str] = field(default_factory=dict)


class FakeCdn:
    """``ThreadingHTTPServer`` on 127.0.0.1 (ephemeral port) in a daemon thread."""

    def __init__(self, body: bytes, etag: str | None = '"rev-1"') -> None:
        self.body = body
        self.etag = etag
        self.geo_headers: dict[str, str] = {}
        self.requests: list[Seen] = []
        self._script: deque[str] = deque()
        self._always: str | None = None
        self._lock = threading.Lock()
        self.release = threading.Event()  # ends "slow" responses early at shutdown
        cdn = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                cdn._handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    # ------------------------------------------------------------------------------------ control

    def url(self, path: str = "/rules.json") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_artifact(self, body: bytes, etag: str | None) -> None:
        with self._lock:
            self.body, self.etag = body, etag

    def push(self, *behaviours: str) -> None:
        """Queue one-shot behaviours for the next requests."""
        with self._lock:
            self._script.extend(behaviours)

    def always(self, behaviour: str | None) -> None:
        """Answer every request with ``behaviour`` (None: serve normally again)."""
        with self._lock:
            self._always = behaviour

    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    # ------------------------------------------------------------------------------------ serving

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.requests.append(Seen(handler.path, dict(handler.headers.items())))
            behaviour = self._script.popleft() if self._script else self._always
            body, etag = self.body, self.etag
        if behaviour is not None and behaviour.isdigit():
            self._send(handler, int(behaviour), b'{"message": "nope"}')
        elif behaviour == "slow":
            self.release.wait(30)  # longer than any read timeout used in tests
            self._send(handler, 200, body, etag)
        elif behaviour == "truncated":
            handler.send_response(200)
            handler.send_header("Content-Length", str(len(body)))
            handler.send_header("Connection", "close")
            handler.end_headers()
            handler.wfile.write(body[: len(body) // 2])
            handler.wfile.flush()
            handler.close_connection = True
        elif behaviour in ("gzip", "gzip_bomb", "brotli"):
            payload = _BOMB if behaviour == "gzip_bomb" else gzip.compress(body)
            encoding = "br" if behaviour == "brotli" else "gzip"
            self._send(handler, 200, payload, etag, encoding=encoding)
        elif behaviour == "huge":
            handler.send_response(200)
            if etag is not None:
                handler.send_header("ETag", etag)
            handler.send_header("Content-Length", str(HUGE_BYTES))
            handler.end_headers()
            handler.close_connection = True  # nothing more is sent: the client must refuse at once
        elif behaviour == "chunked_huge":
            handler.send_response(200)
            if etag is not None:
                handler.send_header("ETag", etag)
            handler.send_header("Transfer-Encoding", "chunked")
            handler.end_headers()
            chunk = b"x" * 65536
            try:
                for _ in range(HUGE_BYTES // len(chunk)):
                    handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                handler.wfile.write(b"0\r\n\r\n")
            except OSError:
                pass  # the client hung up past its cap
            handler.close_connection = True
        elif behaviour == "trickle":
            handler.send_response(200)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            try:
                for position in range(len(body)):
                    if self.release.wait(0.05):
                        break
                    handler.wfile.write(body[position : position + 1])
                    handler.wfile.flush()
            except OSError:
                pass  # the client gave up (its whole-download bound)
            handler.close_connection = True
        elif behaviour == "invalid_json":
            self._send(handler, 200, b'{"version": "1.0.0", "rules": ', '"broken"')
        elif behaviour is None:
            if etag is not None and handler.headers.get("If-None-Match") == etag:
                self._send(handler, 304, b"", etag)
            else:
                self._send(handler, 200, body, etag)
        else:
            raise AssertionError(f"unknown behaviour {behaviour}")

    def _send(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        etag: str | None = None,
        *,
        encoding: str | None = None,
    ) -> None:
        handler.send_response(status)
        if etag is not None:
            handler.send_header("ETag", etag)
        if encoding is not None:
            handler.send_header("Content-Encoding", encoding)
        for name, value in self.geo_headers.items():
            handler.send_header(name, value)
        if status != 304:
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if status != 304:
            handler.wfile.write(body)

    def start(self) -> FakeCdn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)


@contextmanager
def fake_cdn(body: bytes, etag: str | None = '"rev-1"') -> Iterator[FakeCdn]:
    cdn = FakeCdn(body, etag).start()
    try:
        yield cdn
    finally:
        cdn.stop()


def write_artifact(path: Path, name: str) -> Path:
    path.write_bytes(shared_artifact(name))
    return path
