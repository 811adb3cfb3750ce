"""Helpers for the HTTP edge tests: an in-process targetd (gRPC + HTTP on port 0) and a small client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from targetd_server.config import Settings
from targetd_server.http_edge import DELIVERY_PATH
from targetd_server.service.server import RunningServer, start_server
from tests.conftest import CONFORMANCE
from tests.support import eventually_async

AB_SIMPLE = CONFORMANCE / "artifacts" / "TEST_ARTIFACT_AB_SIMPLE.json"
CLIENT = "someClientId"
ORG = "someOrgId@AdobeOrg"
# Nothing listens on port 1 of the loopback: upstream calls (the location-hint ping, the outbox) fail fast.
NOWHERE = "127.0.0.1:1"


def settings(tmp_path: Path, **extra: Any) -> Settings:
    """On-device on AB_SIMPLE with the HTTP edge on a free loopback port; ``extra`` overrides."""
    base: dict[str, Any] = {
        "client": CLIENT,
        "organization_id": ORG,
        "decisioning_method": "on-device",
        "artifact_payload": "@" + str(AB_SIMPLE),
        "polling_interval": 0,
        "telemetry_enabled": False,
        "listen": "127.0.0.1:0",
        "http_listen": "127.0.0.1:0",
        "server_domain": NOWHERE,
        "edge_host_template": NOWHERE,
        "secure": False,
        "data_dir": str(tmp_path / "targetd"),
        "grace_period": 1.0,
        "outbox_flush_timeout": 0.5,
    }
    return Settings(**{**base, **extra})


async def _ready(running: RunningServer) -> bool:
    return running.client.ready


@asynccontextmanager
async def serving(config: Settings, *, wait_ready: bool = True) -> AsyncIterator[RunningServer]:
    """A started server (ready unless ``wait_ready`` is false), stopped on exit."""
    running = await start_server(config)
    try:
        if wait_ready:
            await eventually_async(lambda: _ready(running))
        yield running
    finally:
        await running.stop()


def delivery_url(running: RunningServer, scheme: str = "http") -> str:
    assert running.http is not None
    return f"{scheme}://127.0.0.1:{running.http.port}{DELIVERY_PATH}"


async def post_json(
    session: aiohttp.ClientSession,
    url: str,
    body: Any,
    *,
    params: dict[str, str] | None = None,
    **kwargs: Any,
) -> tuple[int, Any]:
    """POST ``body`` as JSON (sessionId ``s-1`` unless ``params`` say otherwise); (status, JSON answer)."""
    query = {"imsOrgId": ORG, "sessionId": "s-1"} if params is None else params
    async with session.post(url, params=query, json=body, **kwargs) as reply:
        return reply.status, await reply.json(content_type=None)
