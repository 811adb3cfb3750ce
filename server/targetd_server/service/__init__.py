"""The gRPC layer: proto ↔ domain mapping, status codes, interceptors, health and reflection.

Public API: :func:`serve` (run until SIGTERM/SIGINT), :func:`start_server` / :class:`RunningServer` (an
in-process server, e.g. for tests) and :func:`server_options`.
"""

from targetd_server.service.server import RunningServer, serve, server_options, start_server

__all__ = ["RunningServer", "serve", "server_options", "start_server"]
