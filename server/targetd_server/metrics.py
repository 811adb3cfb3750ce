"""Prometheus metrics of the service, in one registry.

Every layer records into the collectors defined here (so names stay consistent); the gRPC layer serves
them on ``settings.metrics_listen`` at ``/metrics``. Recording is cheap (no string building per call):
label children are resolved once and cached.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY: Final = CollectorRegistry(auto_describe=True)

RPC_REQUESTS: Final = Counter(
    "targetd_rpc_requests",
    "Unary RPCs handled, by method and status code.",
    ["method", "code"],
    registry=REGISTRY,
)
RPC_SECONDS: Final = Histogram(
    "targetd_rpc_duration_seconds",
    "Server-side handling time of unary RPCs.",
    ["method"],
    buckets=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
READY: Final = Gauge("targetd_ready", "1 when decisions can be served.", registry=REGISTRY)
SUBSCRIBERS: Final = Gauge("targetd_event_subscribers", "Open SubscribeEvents streams.", registry=REGISTRY)
ARTIFACT_AGE: Final = Gauge(
    "targetd_artifact_age_seconds",
    "Seconds since the applied artifact was fetched (NaN before the first one).",
    registry=REGISTRY,
)
DECISIONS: Final = Counter(
    "targetd_decisions",
    "GetOffers/GetAttributes calls by the method actually used.",
    ["method"],
    registry=REGISTRY,
)

HTTP_REQUESTS: Final = Counter(
    "targetd_http_requests",
    "Delivery API over HTTP (the HTTP edge): requests handled, by route and HTTP status.",
    ["route", "status"],
    registry=REGISTRY,
)
HTTP_SECONDS: Final = Histogram(
    "targetd_http_duration_seconds",
    "Delivery API over HTTP (the HTTP edge): handling time, by route.",
    ["route"],
    buckets=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)


@lru_cache(maxsize=64)
def http_counter(route: str, status: int) -> Any:
    """The cached child counter for (route, HTTP status)."""
    return HTTP_REQUESTS.labels(route, str(status))


@lru_cache(maxsize=8)
def http_timer(route: str) -> Any:
    """The cached child histogram for an HTTP route."""
    return HTTP_SECONDS.labels(route)


@lru_cache(maxsize=256)
def rpc_counter(method: str, code: str) -> Any:
    """The cached child counter for (method, code)."""
    return RPC_REQUESTS.labels(method, code)


@lru_cache(maxsize=64)
def rpc_timer(method: str) -> Any:
    """The cached child histogram for a method."""
    return RPC_SECONDS.labels(method)


@lru_cache(maxsize=8)
def decision_counter(method: str) -> Any:
    """The cached child counter for a decisioning method (``on-device`` / ``server-side``)."""
    return DECISIONS.labels(method)


def serve_metrics(listen: str) -> None:
    """Serve ``/metrics`` on ``host:port`` from a daemon thread (prometheus_client's own server)."""
    host, _, port = listen.rpartition(":")
    start_http_server(int(port), addr=host or "127.0.0.1", registry=REGISTRY)
