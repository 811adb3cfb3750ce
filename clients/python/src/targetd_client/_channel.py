"""gRPC channels to targetd (plaintext, TLS, mTLS), spread over several connections (``channels``), and
per-call metadata (the bearer token).

``channels: N`` (N > 1) opens N channels, each with a connection of its own
(``grpc.use_local_subchannel_pool``: gRPC would otherwise share one connection between channels of the same
target and options), and sends each call on the next one in turn. A server with ``--workers`` spreads
connections — not calls — over its workers by a hash of the connection's addresses, so N connections reach
every worker with high probability (each of W workers is missed by all N with probability (1 - 1/W)^N: with
N = 4 W, below 2 %). Across pods in Kubernetes, prefer a headless Service with ``round_robin``
(docs/operations.md).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import grpc
import grpc.aio

from targetd_client._options import ClientSettings

_DEFAULT_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
)


def _options(settings: ClientSettings) -> list[tuple[str, Any]]:
    merged = dict(_DEFAULT_OPTIONS)
    # gRPC's own reconnect backoff bounds how soon a failed channel can connect again: align it with ours.
    merged["grpc.initial_reconnect_backoff_ms"] = max(1, int(settings.reconnect_initial_delay_s * 1000))
    merged["grpc.min_reconnect_backoff_ms"] = max(1, int(settings.reconnect_initial_delay_s * 1000))
    merged["grpc.max_reconnect_backoff_ms"] = max(1, int(settings.reconnect_max_delay_s * 1000))
    if settings.tls_server_name:
        merged["grpc.ssl_target_name_override"] = settings.tls_server_name
    merged.update(dict(settings.channel_options))
    return list(merged.items())


def _credentials(settings: ClientSettings) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=settings.tls_root_certificates,
        private_key=settings.tls_client_key,
        certificate_chain=settings.tls_client_certificate,
    )


def _own(settings: ClientSettings) -> list[tuple[str, Any]]:
    return [*_options(settings), ("grpc.use_local_subchannel_pool", 1)]


def sync_channel(settings: ClientSettings) -> grpc.Channel:
    """A blocking-API channel to ``settings.address``; with ``channels`` > 1 a :class:`ChannelPool`."""

    def one(options: list[tuple[str, Any]]) -> grpc.Channel:
        if settings.tls:
            return grpc.secure_channel(settings.address, _credentials(settings), options=options)
        return grpc.insecure_channel(settings.address, options=options)

    if settings.channels <= 1:
        return one(_options(settings))
    return ChannelPool([one(_own(settings)) for _ in range(settings.channels)])


def aio_channel(settings: ClientSettings) -> grpc.aio.Channel:
    """A grpc.aio channel to ``settings.address`` (create it on the loop that will use it); with
    ``channels`` > 1 an :class:`AioChannelPool`."""

    def one(options: list[tuple[str, Any]]) -> grpc.aio.Channel:
        if settings.tls:
            return grpc.aio.secure_channel(settings.address, _credentials(settings), options=options)
        return grpc.aio.insecure_channel(settings.address, options=options)

    if settings.channels <= 1:
        return one(_options(settings))
    return AioChannelPool([one(_own(settings)) for _ in range(settings.channels)])


class _Spread:
    """A multi-callable that sends each call (``__call__``, ``future``, ``with_call``) on the next of its
    channels' multi-callables in turn. Thread-safe: ``itertools.cycle`` advances atomically."""

    __slots__ = ("_next",)

    def __init__(self, callables: list[Any]) -> None:
        self._next: Callable[[], Any] = itertools.cycle(callables).__next__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._next()(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._next(), name)


class ChannelPool(grpc.Channel):
    """Several blocking channels behind the ``grpc.Channel`` interface: a stub made on it sends each call
    on the next channel in turn. Thread affinity: none."""

    def __init__(self, channels: list[grpc.Channel]) -> None:
        self.channels = channels

    def _spread(self, kind: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return _Spread([getattr(channel, kind)(method, *args, **kwargs) for channel in self.channels])

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._spread("unary_unary", method, args, kwargs)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._spread("unary_stream", method, args, kwargs)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._spread("stream_unary", method, args, kwargs)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._spread("stream_stream", method, args, kwargs)

    def subscribe(self, callback: Any, try_to_connect: bool = False) -> None:
        self.channels[0].subscribe(callback, try_to_connect)

    def unsubscribe(self, callback: Any) -> None:
        self.channels[0].unsubscribe(callback)

    def close(self) -> None:
        for channel in self.channels:
            channel.close()

    def __enter__(self) -> ChannelPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AioChannelPool(grpc.aio.Channel):
    """Several grpc.aio channels behind the ``grpc.aio.Channel`` interface (see :class:`ChannelPool`).
    Loop affinity: the loop the channels were made on."""

    def __init__(self, channels: list[grpc.aio.Channel]) -> None:
        self.channels = channels

    def _spread(self, kind: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return _Spread([getattr(channel, kind)(method, *args, **kwargs) for channel in self.channels])

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._spread("unary_unary", method, args, kwargs)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._spread("unary_stream", method, args, kwargs)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._spread("stream_unary", method, args, kwargs)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._spread("stream_stream", method, args, kwargs)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self.channels[0].get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self.channels[0].wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        for channel in self.channels:
            await channel.channel_ready()

    async def close(self, grace: float | None = None) -> None:
        for channel in self.channels:
            await channel.close(grace)

    async def __aenter__(self) -> AioChannelPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def call_metadata(settings: ClientSettings) -> tuple[tuple[str, str], ...]:
    """Metadata sent with every call: ``authorization: Bearer <auth_token>`` when a token is set."""
    if settings.auth_token:
        return (("authorization", f"Bearer {settings.auth_token}"),)
    return ()
