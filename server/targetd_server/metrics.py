"""Prometheus metrics of the service, in one registry.

Every layer records into the collectors defined here (so names stay consistent); the admin port
(``settings.metrics_listen``, ``targetd_server.service.admin``) serves them at ``/metrics``. Recording is
cheap (no string building per call): label children are resolved once and cached.

The gRPC metrics carry the grpc-ecosystem (go-grpc-prometheus) names and labels; the method handlers
record them for every RPC (``targetd_server.service.rpc_metrics``) into plain numbers, added to the
Prometheus children at each collection (:class:`RpcMetrics`).

**Multiprocess mode** (``targetd serve --workers N``): the supervisor sets ``PROMETHEUS_MULTIPROC_DIR``
before it starts the workers, so every collector here keeps its values in files there (prometheus-client's
multiprocess mode) and the supervisor's admin port serves all the workers at once. The rules for every
metric defined here, checked on :data:`REGISTRY` by ``tests/service/test_metrics.py``:

* a Gauge declares a *live* ``multiprocess_mode`` (:data:`LIVE_MODES`; use :func:`gauge`), so that the
  values of a dead worker go away with it (``liveall`` keeps one series per worker, with a ``pid`` label);
* no ``Gauge.set_function``: a callback cannot be read from another process. Use :func:`sampled`: a
  callback at scrape time in one process, refreshed every :data:`SAMPLE_SECONDS` by each worker otherwise;
* no Info or Enum (unsupported there): a gauge with labels, set to 1 (``targetd_build_info``).

Counters and histograms need nothing: the workers' values are summed, those of dead workers included.
A helper process that imports these metrics in a worker (it inherits the directory) writes files of its
own: whoever restarts such a process calls :func:`process_gone` with the dead one's pid, so that its live
gauges go (the supervisor does it for the workers). Per-worker (``liveall``) series of processes that are
not workers are left out of the admin port's answer (``targetd_server.workers``).
"""

from __future__ import annotations

import os
import platform
from bisect import bisect_left
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess

REGISTRY: Final = CollectorRegistry(auto_describe=True)

#: True in a worker of ``--workers N`` (prometheus-client reads the same variable when it is imported).
MULTIPROCESS: Final = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
LIVE_MODES: Final = frozenset(("liveall", "livesum", "livemax", "livemin", "livemostrecent"))
SAMPLE_SECONDS: Final = 1.0


def gauge(name: str, documentation: str, labels: tuple[str, ...] = (), *, mode: str) -> Gauge:
    """A Gauge in :data:`REGISTRY` with a live multiprocess ``mode`` (ValueError otherwise)."""
    if mode not in LIVE_MODES:
        raise ValueError(f"gauge {name}: multiprocess mode {mode!r} is not one of {sorted(LIVE_MODES)}")
    return Gauge(name, documentation, labels, registry=REGISTRY, multiprocess_mode=mode)  # type: ignore[arg-type]


_SAMPLED: Final[dict[int, tuple[Gauge, Callable[[], float]]]] = {}


def sampled(target: Gauge, read: Callable[[], float]) -> None:
    """Make ``target`` report ``read()``: at each scrape in one process, every :data:`SAMPLE_SECONDS` (by
    :func:`refresh_sampled`) in a worker. A later call for the same gauge replaces the callback, so the set
    stays bounded by the gauges defined here. Any thread; ``read`` must not block."""
    if MULTIPROCESS:
        _SAMPLED[id(target)] = (target, read)
    else:
        target.set_function(read)


def process_gone(pid: int) -> None:
    """Drop the live gauges of a dead process of this worker (multiprocess mode; else nothing)."""
    if MULTIPROCESS:
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def refresh_sampled() -> None:
    """Set every :func:`sampled` gauge from its callback and flush the gRPC metrics (a worker calls it
    every SAMPLE_SECONDS, on its event loop)."""
    for target, read in list(_SAMPLED.values()):
        target.set(read())
    flush_rpc_metrics()  # a worker's gRPC metrics reach its files every SAMPLE_SECONDS


# -------------------------------------------------------------------------------- gRPC (grpc-ecosystem)


class _FlushFirst:
    """Registered in :data:`REGISTRY` before the gRPC collectors (a registry collects in registration
    order), so that every collection (a scrape, ``get_sample_value``) first adds the gRPC metrics
    recorded since the last one (see :class:`RpcMetrics`)."""

    def collect(self) -> list[Any]:
        flush_rpc_metrics()
        return []

    def describe(self) -> list[Any]:
        return []


REGISTRY.register(_FlushFirst())

_GRPC_LABELS: Final = ("grpc_type", "grpc_service", "grpc_method")
GRPC_STARTED: Final = Counter(
    "grpc_server_started", "Total number of RPCs started on the server.", _GRPC_LABELS, registry=REGISTRY
)
GRPC_HANDLED: Final = Counter(
    "grpc_server_handled",
    "Total number of RPCs completed on the server, regardless of success or failure.",
    [*_GRPC_LABELS, "grpc_code"],
    registry=REGISTRY,
)
GRPC_SECONDS: Final = Histogram(
    "grpc_server_handling_seconds",
    "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
    _GRPC_LABELS,
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
GRPC_RECEIVED: Final = Counter(
    "grpc_server_msg_received",
    "Total number of RPC stream messages received on the server.",
    _GRPC_LABELS,
    registry=REGISTRY,
)
GRPC_SENT: Final = Counter(
    "grpc_server_msg_sent",
    "Total number of gRPC stream messages sent by the server.",
    _GRPC_LABELS,
    registry=REGISTRY,
)


class _Tally:
    """The increments of one counter child, kept as an int until :func:`flush_rpc_metrics` adds them."""

    __slots__ = ("child", "count")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.count = 0

    def inc(self, amount: int = 1) -> None:
        self.count += amount

    def flush(self) -> None:
        count, self.count = self.count, 0
        if count:
            self.child.inc(count)


class _Timings:
    """The observations of one histogram child, kept as bucket counts and a sum until
    :func:`flush_rpc_metrics` adds them (what ``Histogram.observe`` would have recorded, without its
    locks and checks per call)."""

    __slots__ = ("bounds", "child", "counts", "total")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.bounds: tuple[float, ...] = tuple(child._upper_bounds)  # ends with +Inf
        self.counts = [0] * len(self.bounds)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1  # the first bucket with seconds <= bound
        self.total += seconds

    def flush(self) -> None:
        counts, self.counts = self.counts, [0] * len(self.bounds)
        total, self.total = self.total, 0.0
        if any(counts):
            # prometheus-client's own fields (no public API adds a count to a bucket); the version is
            # pinned in constraints.txt and tests/service/test_metrics.py compares the result with observe
            self.child._sum.inc(total)
            for bucket, count in zip(self.child._buckets, counts, strict=True):
                if count:
                    bucket.inc(count)


class RpcMetrics:
    """The gRPC metrics of one RPC method (see :func:`rpc_metrics`): ``started``, ``received`` and ``sent``
    (``.inc()``), ``seconds`` (``.observe(s)``) and :meth:`handled` (``.inc()``) record into plain
    numbers (~0.1 µs each), added to the Prometheus children by :func:`flush_rpc_metrics` — at every
    collection of :data:`REGISTRY` (a scrape) and every :data:`SAMPLE_SECONDS` in a worker.

    Loop affinity: recorded and flushed on the server's event loop thread (the admin server and the
    sampling task run there too), so the plain numbers need no lock."""

    __slots__ = ("_handled", "labels", "received", "seconds", "sent", "started")

    def __init__(self, labels: tuple[str, str, str]) -> None:
        self.labels = labels
        self.started = _Tally(GRPC_STARTED.labels(*labels))
        self.received = _Tally(GRPC_RECEIVED.labels(*labels))
        self.sent = _Tally(GRPC_SENT.labels(*labels))
        self.seconds = _Timings(GRPC_SECONDS.labels(*labels))
        self._handled: dict[str, _Tally] = {}

    def handled(self, code: str) -> _Tally:
        """The ``grpc_server_handled_total`` tally for status ``code`` (Go's name, e.g. ``OK``)."""
        tally = self._handled.get(code)
        if tally is None:
            tally = self._handled[code] = _Tally(GRPC_HANDLED.labels(*self.labels, code))
        return tally

    def flush(self) -> None:
        """Add what was recorded since the last flush to the Prometheus children."""
        self.started.flush()
        self.received.flush()
        self.sent.flush()
        self.seconds.flush()
        for tally in list(self._handled.values()):
            tally.flush()


_RPC: Final[dict[tuple[str, str, str], RpcMetrics]] = {}  # bounded by the server's registered methods


def rpc_metrics(grpc_type: str, service: str, method: str) -> RpcMetrics:
    """The metrics of one method, made once (the server's registered methods bound them)."""
    labels = (grpc_type, service, method)
    rpc = _RPC.get(labels)
    if rpc is None:
        rpc = _RPC[labels] = RpcMetrics(labels)
    return rpc


def flush_rpc_metrics() -> None:
    """Add every method's recorded gRPC metrics to the Prometheus children (see :class:`RpcMetrics`)."""
    for rpc in list(_RPC.values()):
        rpc.flush()


# ---------------------------------------------------------------------------------------- targetd's own

READY: Final = gauge("targetd_ready", "1 when decisions can be served.", mode="liveall")
SUBSCRIBERS: Final = gauge("targetd_event_subscribers", "Open SubscribeEvents streams.", mode="liveall")
ARTIFACT_AGE: Final = gauge(
    "targetd_artifact_age_seconds",
    "Seconds since the applied artifact was fetched (NaN before the first one).",
    mode="livemax",
)
ARTIFACT_REVISION: Final = gauge(
    "targetd_artifact_revision",
    "CRC-32 of the applied artifact's revision (its ETag or digest; GetStatus has the string); 0 before the "
    "first one. Differs between workers or replicas while they serve different artifacts.",
    mode="liveall",
)
ARTIFACT_FETCHES: Final = Counter(
    "targetd_artifact_fetches",
    "Artifact downloads, by result: applied, not_modified, failed.",
    ["result"],
    registry=REGISTRY,
)
DECISIONS: Final = Counter(
    "targetd_decisions",
    "GetOffers/GetAttributes decisions, by the method used (on-device, server-side) and the decisioning "
    "method asked for (mode: the call's, else the configured one).",
    ["method", "mode"],
    registry=REGISTRY,
)
BUILD_INFO: Final = gauge(
    "targetd_build_info",
    "Always 1; the labels name the build.",
    ("version", "python", "grpc"),
    mode="livemax",
)


def set_build_info(version: str, grpc_version: str) -> None:
    """Set ``targetd_build_info`` (once, at start)."""
    BUILD_INFO.labels(version, platform.python_version(), grpc_version).set(1)


@lru_cache(maxsize=16)
def decision_counter(method: str, mode: str) -> Any:
    """The cached child counter for (the method used, the method asked for)."""
    return DECISIONS.labels(method, mode)


def artifact_fetched(result: str) -> None:
    """Count one artifact download: ``applied``, ``not_modified`` or ``failed``."""
    ARTIFACT_FETCHES.labels(result).inc()


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
