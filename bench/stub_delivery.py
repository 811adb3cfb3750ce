"""A loopback stand-in for Adobe's Delivery API and CDN, so that nothing the benchmarked targetd sends leaves
the machine (display notifications of on-device decisions, a location-hint request, an artifact poll).

``python bench/stub_delivery.py [--delay-ms MS]`` prints ``stub listening on 127.0.0.1:PORT`` and answers
every POST with ``200 {"status": 200}`` after ``MS`` milliseconds (default 0; the delivery rows use 50, an
ordinary edge round trip), ``GET /counts`` with the counts so far, and every other request with 404, until
SIGTERM; on exit it prints one JSON line with the number of requests per method and path and the
notifications received (``notifications``: all, ``unique_notifications``: distinct ids). It is a minimal HTTP/1.1 keep-alive responder on asyncio
(no per-request threads), because it shares the machine's cores with what is measured: its CPU time is
reported apart (``helper µs``). FOR BENCHMARKS ONLY: it accepts anything and decides nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from collections import Counter
from typing import Any

BODY = json.dumps({"status": 200}).encode()
OK = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(BODY)).encode()
    + b"\r\n\r\n"
    + BODY
)
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
COUNTS: Counter[str] = Counter()
NOTIFICATION_IDS: set[str] = set()
DELAY_S = 0.0


def counts() -> dict[str, Any]:
    notifications = COUNTS["notifications"]
    requests = {key: value for key, value in COUNTS.items() if key != "notifications"}
    return {
        "requests": requests,
        "notifications": notifications,
        "unique_notifications": len(NOTIFICATION_IDS),
    }


def count_notifications(body: bytes) -> None:
    try:
        notifications = json.loads(body).get("notifications") or []
    except ValueError:
        return
    COUNTS["notifications"] += len(notifications)
    NOTIFICATION_IDS.update(str(item.get("id")) for item in notifications)


class Stub(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip() or 0)
            if len(self.buffer) < end + 4 + length:
                return  # wait for the rest of the body
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            method, _, rest = head.partition(" ")
            path = rest.split(" ", 1)[0].split("?", 1)[0]
            assert self.transport is not None
            if method == "GET" and path == "/counts":
                data = json.dumps(counts()).encode()
                self.transport.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                    + str(len(data)).encode()
                    + b"\r\n\r\n"
                    + data
                )
                continue
            COUNTS[f"{method} {path}"] += 1
            if method != "POST":
                self.transport.write(NOT_FOUND)
                continue
            if b'"notifications"' in body:
                count_notifications(body)
            if DELAY_S > 0:  # answers on one connection stay in order: every one waits the same
                asyncio.get_running_loop().call_later(DELAY_S, self.answer)
            else:
                self.transport.write(OK)

    def answer(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(OK)


async def main() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Stub, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"stub listening on 127.0.0.1:{port}", flush=True)
    await stop.wait()
    server.close()
    print(json.dumps(counts()), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="loopback Delivery API stand-in (benchmarks only)")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="answer every POST after this delay")
    DELAY_S = parser.parse_args().delay_ms / 1000
    asyncio.run(main())
