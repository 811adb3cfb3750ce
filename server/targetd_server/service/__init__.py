"""The gRPC layer: proto ↔ domain mapping, status codes, interceptors, health and reflection.

Public API: :func:`serve` (run until SIGTERM/SIGINT), :func:`start_server` / :class:`RunningServer` (an
in-process server, e.g. for tests), :func:`server_options`, the admin HTTP port (:func:`start_admin`) and
the listen checks (:func:`check_listen`, :func:`listen_error`, :func:`split_address`).
"""

from targetd_server.service.admin import AdminServer, start_admin
from targetd_server.service.listen import check_listen, listen_error, split_address
from targetd_server.service.server import RunningServer, serve, server_options, start_server

__all__ = [
    "AdminServer",
    "RunningServer",
    "check_listen",
    "listen_error",
    "serve",
    "server_options",
    "split_address",
    "start_admin",
    "start_server",
]
