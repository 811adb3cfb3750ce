"""Remote-side figures, one run, each beside its baseline (``.venv/bin/python bench/remote.py``):

* Delivery API call through :class:`DeliveryApi` (proto → JSON → pooled aiohttp → JSON → proto) vs. a bare
  pooled ``aiohttp`` POST of the same JSON body, both against the local edge stand-in on loopback;
* outbox ``enqueue`` + its group's commit (WAL, real file) per row, for groups of 1 (c=1) and 64 rows
  (calls under load), vs. a bare SQLite INSERT + commit.

The api lives on an event loop in a thread of its own, as in the server. Delivery throughput (the sender
process) is measured by bench/run.py's sustained-delivery row.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from targetd.json_format import message_to_dict, parse_dict  # noqa: E402
from targetd.v1 import delivery_pb2  # noqa: E402
from targetd_server.config import Settings  # noqa: E402
from targetd_server.delivery import DeliveryApi, Outbox  # noqa: E402

SAMPLE = REPO / "deploy" / "sample"
REQUEST = {
    "requestId": "bench",
    "id": {"tntId": "0123456789abcdef.28_0"},
    "context": {"channel": "web", "address": {"url": "https://www.acme.example/"}},
    "execute": {"mboxes": [{"name": "home", "index": 1}, {"name": "product1", "index": 2}]},
}


def _us(samples: list[float]) -> str:
    samples.sort()
    p50 = statistics.median(samples) * 1e6
    p95 = samples[int(len(samples) * 0.95)] * 1e6
    p99 = samples[int(len(samples) * 0.99)] * 1e6
    return f"p50 {p50:7.0f} µs  p95 {p95:7.0f} µs  p99 {p99:7.0f} µs  max {samples[-1] * 1e6:7.0f} µs"


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    # The edge stand-in in its own process, as in the tests (an in-process one would share our GIL).
    edge_proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("targetd-edge")),
            "--listen",
            "127.0.0.1:0",
            "--root",
            str(SAMPLE),
            "--data-dir",
            str(tmp / "edge"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
    )
    assert edge_proc.stdout is not None
    port = int(edge_proc.stdout.readline().rsplit(":", 1)[1])
    settings = Settings(
        client="acmeclient",
        organization_id="o@AdobeOrg",
        server_domain=f"127.0.0.1:{port}",
        secure=False,
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="bench-loop", daemon=True)
    thread.start()
    request = parse_dict(REQUEST, delivery_pb2.DeliveryRequest())
    body = json.dumps(message_to_dict(request)).encode()
    url = f"http://127.0.0.1:{port}/rest/v1/delivery"
    n = 300

    async def latencies() -> tuple[DeliveryApi, list[float], list[float]]:
        api = DeliveryApi(settings)  # on the loop: the outbox's threads send through it
        params = {"imsOrgId": "o", "sessionId": "s"}
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:

            async def post_bare() -> None:
                async with session.post(url, params=params, data=body) as reply:
                    await reply.json()

            for _ in range(30):
                await api.execute(request, session_id="s", cluster=None)
                await post_bare()
            bare, ours = [], []
            for _ in range(n):
                t = time.perf_counter()
                await post_bare()
                bare.append(time.perf_counter() - t)
                t = time.perf_counter()
                await api.execute(request, session_id="s", cluster=None)
                ours.append(time.perf_counter() - t)
        return api, bare, ours

    api, bare, ours = asyncio.run_coroutine_threadsafe(latencies(), loop).result(120)
    print(f"delivery call, bare aiohttp POST + json       : {_us(bare)}   (n={n}, edge stand-in process)")
    print(f"delivery call, DeliveryApi.execute (proto<->JSON): {_us(ours)}")

    conn = sqlite3.connect(tmp / "bare.sqlite3", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, payload BLOB)")
    note = delivery_pb2.DeliveryRequest()
    note.CopyFrom(request)
    note.ClearField("execute")
    note.notifications.add(
        id="n", type=delivery_pb2.METRIC_TYPE_DISPLAY, timestamp=1, tokens=["t" * 88]
    ).mbox.name = "home"
    payload = note.SerializeToString()
    m = 5000
    bare_insert = []
    for _ in range(m):
        t = time.perf_counter()
        conn.execute("INSERT INTO t (payload) VALUES (?)", (payload,))
        bare_insert.append(time.perf_counter() - t)
    outbox = Outbox(tmp / "outbox.sqlite3")

    async def enqueue_groups(group: int) -> list[float]:
        # one loop turn's calls share a group: a group of 1 is c=1, larger groups are calls under load
        times = []
        for _ in range(m // group):
            t = time.perf_counter()
            futures = [outbox.enqueue(note, session_id="s", cluster=None) for _ in range(group)]
            await futures[-1]
            times.append((time.perf_counter() - t) / group)
        return times

    enq = asyncio.run(enqueue_groups(1))
    enq64 = asyncio.run(enqueue_groups(64))
    print(
        f"sqlite INSERT + commit (WAL, NORMAL), bare    : {_us(bare_insert)}   (n={m}, {len(payload)} B rows)"
    )
    print(f"outbox.enqueue + its group's commit, 1/group  : {_us(enq)}")
    print(f"outbox.enqueue + its group's commit, 64/group : {_us(enq64)} per row")
    outbox.close()
    asyncio.run_coroutine_threadsafe(api.aclose(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    edge_proc.terminate()
    edge_proc.wait(10)


if __name__ == "__main__":
    main()
