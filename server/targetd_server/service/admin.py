"""The admin HTTP port (``settings.metrics_listen``): ``/metrics`` (Prometheus text format), ``/healthz``
(200 while the process is alive), ``/readyz`` (200 when decisions can be served, 503 otherwise), 404 on any
other path. An aiohttp server on the event loop of its caller: the serving process without workers, the
supervisor with ``--workers N`` (docs/operations.md).

A scrape renders the registry on the loop (about a millisecond for targetd's few dozen series); the
server accepts at most 100 connections at once (aiohttp's backlog) and reads no request body.

Loop affinity: :func:`start_admin` and :meth:`AdminServer.stop` on one event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

__all__ = ["AdminServer", "start_admin"]


@dataclass
class AdminServer:
    """A started admin server and its bound port."""

    runner: web.AppRunner
    port: int

    async def stop(self) -> None:
        """Close the listener and the open connections."""
        await self.runner.cleanup()


async def start_admin(listen: str, registry: CollectorRegistry, ready: Callable[[], bool]) -> AdminServer:
    """Serve the admin paths on ``host:port`` (port 0: any free port). ``ready()`` answers ``/readyz`` and
    must not block. Raises OSError when the address cannot be bound (e.g. in use)."""

    async def metrics(request: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(request: web.Request) -> web.Response:
        if ready():
            return web.Response(text="ready\n")
        return web.Response(status=503, text="not ready\n")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    host, _, port = listen.rpartition(":")
    site = web.TCPSite(runner, host or "127.0.0.1", int(port), reuse_port=False)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    return AdminServer(runner, int(runner.addresses[0][1]))
