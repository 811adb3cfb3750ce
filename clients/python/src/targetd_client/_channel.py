"""gRPC channels to targetd (plaintext, TLS, mTLS) and per-call metadata (the bearer token)."""

from __future__ import annotations

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


def sync_channel(settings: ClientSettings) -> grpc.Channel:
    """A blocking-API channel to ``settings.address``."""
    if settings.tls:
        return grpc.secure_channel(settings.address, _credentials(settings), options=_options(settings))
    return grpc.insecure_channel(settings.address, options=_options(settings))


def aio_channel(settings: ClientSettings) -> grpc.aio.Channel:
    """A grpc.aio channel to ``settings.address`` (create it on the loop that will use it)."""
    if settings.tls:
        return grpc.aio.secure_channel(settings.address, _credentials(settings), options=_options(settings))
    return grpc.aio.insecure_channel(settings.address, options=_options(settings))


def call_metadata(settings: ClientSettings) -> tuple[tuple[str, str], ...]:
    """Metadata sent with every call: ``authorization: Bearer <auth_token>`` when a token is set."""
    if settings.auth_token:
        return (("authorization", f"Bearer {settings.auth_token}"),)
    return ()
