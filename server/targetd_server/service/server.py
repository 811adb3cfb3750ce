"""Building and running the gRPC server: servicer, health, reflection, interceptors, limits, TLS,
graceful shutdown.

Loop affinity: everything here runs on one asyncio event loop (grpc.aio).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import signal
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from targetd.v1 import decisioning_service_pb2 as pb
from targetd_server import __version__, metrics, tracing
from targetd_server.calls import TargetClient
from targetd_server.config import Settings
from targetd_server.errors import ConfigError
from targetd_server.http_edge import HttpEdge
from targetd_server.native import log_native_status
from targetd_server.service.admin import AdminServer, start_admin
from targetd_server.service.handlers import add_servicer
from targetd_server.service.interceptors import TokenAuthInterceptor
from targetd_server.service.listen import check_listen, listen_error
from targetd_server.service.rpc_metrics import MeteredRegistration
from targetd_server.service.servicer import DecisioningServicer

log = logging.getLogger("targetd.server")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["DecisioningService"].full_name


def server_options(settings: Settings) -> list[tuple[str, Any]]:
    """Channel arguments: message limits, keepalive enforcement, SO_REUSEPORT (only with workers)."""
    min_ping_ms = int(settings.keepalive_min_ping_interval * 1000)
    return [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        # Tolerate client keepalive pings down to the configured interval, also on idle connections
        # (clients commonly ping every 30 s); faster pings get the connection closed (GOAWAY).
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", min_ping_ms),
        ("grpc.http2.min_ping_interval_without_data_ms", min_ping_ms),
        ("grpc.http2.max_ping_strikes", 2),
        # The server pings idle clients too, so dead peers and their streams are noticed.
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        # Only the workers of `--workers N` share a port (SPEC §8); otherwise a port in use is an error.
        ("grpc.so_reuseport", 1 if settings.workers > 1 else 0),
        # Thousands of event subscribers reconnect at once after a restart; gRPC core's default queue of
        # 1,000 pending calls cancels part of such a burst.
        ("grpc.server.max_pending_requests", 20_000),
        ("grpc.server.max_pending_requests_hard_limit", 40_000),
        # GOAWAY after max_connection_age (0: never) so long-lived channels reconnect and rebalance.
        ("grpc.max_connection_age_ms", int(settings.max_connection_age * 1000) or 2**31 - 1),
        ("grpc.max_connection_age_grace_ms", int(settings.grace_period * 1000)),
    ]


def _read_pem(option: str, path: str) -> bytes:
    """The content of the PEM file of ``option``; :class:`ConfigError` naming the option when it cannot be
    read or holds no PEM block."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{option} {path}: cannot be read ({exc.strerror or exc})") from None
    if b"-----BEGIN " not in data:
        raise ConfigError(f"{option} {path}: not a PEM file")
    return data


def _credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """The TLS credentials (None: plaintext). Raises :class:`ConfigError` naming an unreadable file."""
    if not settings.tls_cert or not settings.tls_key:
        return None
    key = _read_pem("tls_key", settings.tls_key)
    cert = _read_pem("tls_cert", settings.tls_cert)
    ca = _read_pem("tls_client_ca", settings.tls_client_ca) if settings.tls_client_ca else None
    try:
        return grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
        )
    except (ValueError, RuntimeError) as exc:
        raise ConfigError(f"tls_cert/tls_key: not a usable certificate and key ({exc})") from None


@dataclass
class RunningServer:
    """A started server: its bound port and the parts shutdown needs."""

    server: grpc.aio.Server
    client: TargetClient
    health: health.aio.HealthServicer
    port: int
    settings: Settings
    http: HttpEdge | None = None  # the Delivery API over HTTP, when settings.http_listen is set

    async def stop(self) -> None:
        """Graceful stop: health NOT_SERVING first, SHUTDOWN to event subscribers, then in-flight calls get
        the grace period, then the client stops (flushing the outbox)."""
        await self.health.enter_graceful_shutdown()
        await self.client.begin_shutdown()  # subscribers get SHUTDOWN and leave
        stopping = [self.server.stop(self.settings.grace_period)]  # in-flight calls finish
        if self.http is not None:
            stopping.append(self.http.stop())  # in-flight HTTP requests too, in the same grace period
        await asyncio.gather(*stopping)
        await self.client.stop()  # then polling stops and the outbox flushes


def _bind_gauges(client: TargetClient) -> None:
    """Point the sampled gauges at this client (``metrics.sampled``: read at each scrape, or every second
    in a worker), and set ``targetd_build_info``."""

    def artifact_age() -> float:
        snapshot = client.artifacts.snapshot
        if snapshot is None or not snapshot.info.HasField("fetched_at"):
            return math.nan
        return max(0.0, time.time() - snapshot.info.fetched_at.ToSeconds())

    def artifact_revision() -> float:
        snapshot = client.artifacts.snapshot
        return float(zlib.crc32(snapshot.info.revision.encode())) if snapshot is not None else 0.0

    metrics.sampled(metrics.SUBSCRIBERS, lambda: client.events.subscriber_count)
    metrics.sampled(metrics.ARTIFACT_AGE, artifact_age)
    metrics.sampled(metrics.ARTIFACT_REVISION, artifact_revision)
    metrics.set_build_info(__version__, grpc.__version__)


async def start_server(settings: Settings, client: TargetClient | None = None) -> RunningServer:
    """Create, bind and start the server and its client. Health is NOT_SERVING until the client is ready."""
    credentials = _credentials(settings)  # before anything is opened: a bad file fails first
    payload = settings.artifact_payload
    if payload and payload.startswith("@") and not os.access(payload[1:], os.R_OK):
        raise ConfigError(f"artifact_payload {payload}: the file cannot be read")
    if client is None:
        try:
            client = TargetClient(settings)
        except OSError as exc:  # the outbox and the artifact cache live in data_dir
            raise ConfigError(f"data_dir {settings.data_dir}: {exc.strerror or exc}") from None
    # Tracing's interceptor when on (its span covers the whole call); the metrics are recorded by the
    # handlers, wrapped once as they are registered (rpc_metrics: an interceptor costs a coroutine chain
    # on every call); the token check instruments the calls it rejects.
    interceptors: list[grpc.aio.ServerInterceptor] = [*tracing.server_interceptors()]
    if settings.auth_token:
        interceptors.append(TokenAuthInterceptor(settings.auth_token))
    server = grpc.aio.server(interceptors=interceptors or None, options=server_options(settings))
    registration = MeteredRegistration(server)
    add_servicer(DecisioningServicer(client, max_response_bytes=settings.max_message_bytes), registration)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, registration)
    names = (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME)
    reflection.enable_server_reflection(names, registration)

    if settings.workers == 1:
        check_listen(settings.listen)  # in words, and before gRPC core logs its own plain-text error
    try:
        if credentials is None:
            port = server.add_insecure_port(settings.listen)
        else:
            port = server.add_secure_port(settings.listen, credentials)
    except RuntimeError:  # grpc: in use, not local, or a malformed address
        raise listen_error(settings.listen, reuse_port=settings.workers > 1) from None
    if port == 0:
        raise listen_error(settings.listen, reuse_port=settings.workers > 1)

    pending: set[asyncio.Task[None]] = set()

    def on_readiness(ready: bool) -> None:
        metrics.READY.set(1 if ready else 0)
        status = (
            health_pb2.HealthCheckResponse.SERVING if ready else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", SERVICE_NAME):
            task = asyncio.get_running_loop().create_task(health_servicer.set(name, status))
            pending.add(task)  # keep a reference until done
            task.add_done_callback(pending.discard)

    await health_servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    await health_servicer.set(SERVICE_NAME, health_pb2.HealthCheckResponse.NOT_SERVING)
    await server.start()
    _bind_gauges(client)
    client.add_readiness_listener(on_readiness)
    http = HttpEdge(settings, client) if settings.http_listen else None
    if http is not None:
        await http.start()
    await client.start()
    return RunningServer(server, client, health_servicer, port, settings, http)


async def _sample_gauges() -> None:
    while True:  # a worker's sampled gauges (metrics.MULTIPROCESS), until cancelled
        metrics.refresh_sampled()
        await asyncio.sleep(metrics.SAMPLE_SECONDS)


async def _start_admin(settings: Settings, running: RunningServer) -> AdminServer | None:
    if not settings.metrics_listen:
        return None
    try:
        return await start_admin(settings.metrics_listen, metrics.REGISTRY, lambda: running.client.ready)
    except OSError:
        await running.stop()
        raise listen_error(settings.metrics_listen) from None


async def serve(
    settings: Settings, *, announce: bool = True, on_listening: Callable[[int], None] | None = None
) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully. ``on_listening(port)`` is called on the loop
    once the server listens (a worker reports its port with it). Raises ``ListenError`` when the address or
    the admin address (``metrics_listen``) cannot be listened on, ``ConfigError`` for other bad settings."""
    if settings.metrics_listen:
        check_listen(settings.metrics_listen)
    tracing.configure_tracing(settings)
    log_native_status(log)
    running = await start_server(settings)
    admin = await _start_admin(settings, running)
    sampler = asyncio.get_running_loop().create_task(_sample_gauges()) if metrics.MULTIPROCESS else None
    if on_listening is not None:
        on_listening(running.port)
    host = settings.listen.rsplit(":", 1)[0]
    log.info("listening", extra={"address": f"{host}:{running.port}", "method": settings.decisioning_method})
    if announce:
        # One machine-readable line on stdout, so that scripts and tests learn the bound port.
        print(f"targetd listening on {host}:{running.port}", flush=True)
        if admin is not None:
            admin_host = (settings.metrics_listen or "").rsplit(":", 1)[0]
            print(f"targetd admin listening on {admin_host}:{admin.port}", flush=True)
        if running.http is not None:
            http_host = (settings.http_listen or "").rsplit(":", 1)[0]
            print(f"targetd http listening on {http_host}:{running.http.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down", extra={"grace_period_s": settings.grace_period})
    await running.stop()
    if sampler is not None:
        sampler.cancel()
        metrics.flush_rpc_metrics()  # the worker's last second of gRPC metrics, into its files
    if admin is not None:
        await admin.stop()
    await asyncio.to_thread(tracing.shutdown_tracing)  # the spans still queued
    log.info("stopped")
