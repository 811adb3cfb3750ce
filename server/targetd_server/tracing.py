"""Optional OpenTelemetry tracing (``settings.tracing``, off by default): one span per gRPC call
(opentelemetry-instrumentation-grpc's grpc.aio server interceptor, which also continues a caller's
``traceparent``), one client span per HTTP request targetd makes (opentelemetry-instrumentation-aiohttp-
client's trace config on the one HTTP client stack, ``targetd_server.transport``), which carries the trace
context to the Delivery API in the ``traceparent`` header. Sampled parent-based: a caller's sampled trace is
followed, new traces are sampled with ``tracing_sample_ratio``. Exported over OTLP/gRPC to
``tracing_endpoint`` by a batch processor (its own thread; a queue of 2,048 spans, spans past it dropped);
the standard ``OTEL_*`` variables of the SDK (e.g. ``OTEL_BSP_SCHEDULE_DELAY``) apply.

Off, nothing of OpenTelemetry is imported and calls pay nothing. The cost when on is measured by
``bench/tracing_cost.py`` (docs/operations.md).

Thread affinity: :func:`configure_tracing` and :func:`shutdown_tracing` once per process, on its main
thread (a worker configures its own); the others from any thread.
"""

# ruff: noqa: PLC0415  -- OpenTelemetry is imported only when tracing is on
from __future__ import annotations

import logging
from typing import Any

from targetd_server import __version__
from targetd_server.config import Settings

log = logging.getLogger("targetd.tracing")

__all__ = ["configure_tracing", "http_trace_configs", "server_interceptors", "shutdown_tracing"]

_provider: Any = None


def configure_tracing(settings: Settings) -> bool:
    """Install the tracer provider when ``settings.tracing`` is on (once per process: later calls keep the
    first configuration); returns whether tracing is on."""
    global _provider
    if not settings.tracing:
        return _provider is not None
    if _provider is not None:
        return True
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    resource = Resource.create({"service.name": "targetd", "service.version": __version__})
    provider = TracerProvider(
        resource=resource, sampler=ParentBased(TraceIdRatioBased(settings.tracing_sample_ratio))
    )
    endpoint = settings.tracing_endpoint
    exporter = OTLPSpanExporter(endpoint=endpoint, insecure=endpoint.startswith("http://"))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _provider = provider
    log.info("tracing on", extra={"endpoint": endpoint, "sample_ratio": settings.tracing_sample_ratio})
    return True


def server_interceptors() -> list[Any]:
    """The gRPC server interceptors of tracing (none when it is off): put them first."""
    if _provider is None:
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    return [aio_server_interceptor(tracer_provider=_provider)]  # type: ignore[no-untyped-call]


def http_trace_configs() -> list[Any]:
    """The aiohttp trace configs of tracing (none when it is off): a client span per request and the
    ``traceparent`` header."""
    if _provider is None:
        return []
    from opentelemetry.instrumentation.aiohttp_client import create_trace_config

    return [create_trace_config(tracer_provider=_provider)]


def shutdown_tracing() -> None:
    """Export the spans still queued (bounded by the SDK's export timeout, 30 s) and stop the exporter."""
    global _provider
    provider, _provider = _provider, None
    if provider is not None:
        provider.shutdown()
