"""The one place where errors become HTTP status codes and Target's error JSON (the HTTP twin of
``service/status.py``).

Target's edge answers every failure with the Delivery API's ``UnexpectedError`` body,
``{"status": <int>, "message": "<text>"}`` (reference/target-openapi, common/components/UnexpectedError.yaml),
with the same status on the HTTP response. Domain errors (:mod:`targetd_server.errors`) map here by kind;
HTTP-protocol failures (wrong content type, oversized body, bad token, unknown route) are
:class:`HttpProblem`, which carries its own status. Nothing else in the package chooses a status code.

Thread affinity: none (pure functions).
"""

from __future__ import annotations

import json
from typing import Final

from aiohttp import web

from targetd_server.errors import (
    ConfigError,
    InvalidRequestError,
    NotReadyError,
    OverloadedError,
    TargetdError,
    UnimplementedError,
    UpstreamError,
    UpstreamRejectedError,
    UpstreamTimeoutError,
)

__all__ = ["HttpProblem", "error_response", "problem_response", "status_for"]

# Most specific first: the first isinstance match wins.
_STATUS: Final[tuple[tuple[type[TargetdError], int], ...]] = (
    (InvalidRequestError, 400),
    (NotReadyError, 503),
    (UnimplementedError, 501),
    (UpstreamTimeoutError, 504),
    (UpstreamRejectedError, 502),  # refined below: Target's own 4xx is relayed
    (UpstreamError, 502),
    (OverloadedError, 503),
    (ConfigError, 500),
)


class HttpProblem(Exception):
    """An HTTP-level failure of the caller's request (not a domain error): ``status`` and a message."""

    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.message = message
        self.headers = headers or {}
        super().__init__(message)


def status_for(error: TargetdError) -> int:
    """The HTTP status for a domain error: INVALID_ARGUMENT's twin is 400, not ready 503, a Target timeout
    504, Target's own 4xx is relayed as is (the caller's request is what Target refused), any other upstream
    failure 502, a full bounded resource 503. Anything unmapped is 500 (a bug)."""
    if isinstance(error, UpstreamRejectedError) and error.status is not None and 400 <= error.status < 500:
        return error.status
    for kind, status in _STATUS:
        if isinstance(error, kind):
            return status
    return 500


def problem_response(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """Target's error body with ``status`` on the response too."""
    body = json.dumps({"status": status, "message": message}, separators=(",", ":")).encode()
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


def error_response(error: TargetdError) -> web.Response:
    """The response for a domain error (see :func:`status_for`); 503s say when to retry."""
    status = status_for(error)
    headers = {"Retry-After": "1"} if status == 503 else None
    return problem_response(status, str(error), headers)
