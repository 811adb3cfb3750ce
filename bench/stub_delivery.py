"""A loopback stand-in for Adobe's Delivery API and CDN, so that nothing the benchmarked targetd sends leaves
the machine (display notifications of on-device decisions, a location-hint request, an artifact poll).

``python bench/stub_delivery.py`` prints ``stub listening on 127.0.0.1:PORT`` and answers every POST with
``200 {"status": 200}`` and every other request with 404, until SIGTERM; on exit it prints one JSON line
with the number of requests per method and path. It is a minimal HTTP/1.1 keep-alive responder on asyncio
(no per-request threads), because it shares the machine's cores with what is measured: its CPU time is
reported apart (``helper µs``). FOR BENCHMARKS ONLY: it accepts anything and decides nothing.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections import Counter

BODY = json.dumps({"status": 200}).encode()
OK = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(BODY)).encode()
    + b"\r\n\r\n"
    + BODY
)
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
COUNTS: Counter[str] = Counter()


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
            self.buffer = self.buffer[end + 4 + length :]
            method, _, rest = head.partition(" ")
            path = rest.split(" ", 1)[0].split("?", 1)[0]
            COUNTS[f"{method} {path}"] += 1
            assert self.transport is not None
            self.transport.write(OK if method == "POST" else NOT_FOUND)


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
    print(json.dumps({"requests": dict(COUNTS)}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
