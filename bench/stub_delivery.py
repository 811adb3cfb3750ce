"""A loopback stand-in for Adobe's Delivery API and CDN, so that nothing the benchmarked targetd sends leaves
the machine (display notifications of on-device decisions, a location-hint request, an artifact poll).

``python bench/stub_delivery.py`` prints ``stub listening on 127.0.0.1:PORT`` and answers every POST with
``200 {"status": 200}`` and every GET with 404, until SIGTERM; on exit it prints one JSON line with the
number of requests per method and path. FOR BENCHMARKS ONLY: it accepts anything and decides nothing.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

COUNTS: Counter[str] = Counter()
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _count(self) -> None:
        with LOCK:
            COUNTS[f"{self.command} {self.path.split('?', 1)[0]}"] += 1

    def do_POST(self) -> None:
        self._count()
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"status": 200}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._count()
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"stub listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever(poll_interval=0.2)
    with LOCK:
        print(json.dumps({"requests": dict(COUNTS)}), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
