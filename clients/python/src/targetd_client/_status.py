"""GetStatus reply → a plain dict (shared by both clients)."""

from __future__ import annotations

import datetime
from typing import Any

from targetd.v1 import decisioning_service_pb2 as pb
from targetd_client._convert import method_name
from targetd_client._events import artifact_dict


def status_to_dict(reply: pb.GetStatusResponse) -> dict[str, Any]:
    """``get_status()``'s value: readiness, configuration, the artifact applied and the last error."""
    last_fetch = (
        reply.last_fetch_time.ToDatetime(tzinfo=datetime.UTC) if reply.HasField("last_fetch_time") else None
    )
    error = reply.last_error
    return {
        "ready": reply.ready,
        "decisioning_method": method_name(reply.decisioning_method),
        "artifact_location": reply.artifact_location,
        "artifact": artifact_dict(reply.artifact) if reply.HasField("artifact") else None,
        "last_fetch_time": last_fetch,
        "artifact_age_seconds": reply.artifact_age_seconds,
        "last_error": (
            {"kind": error.kind, "message": error.message, "http_status": error.http_status}
            if reply.HasField("last_error")
            else None
        ),
        "subscriber_count": reply.subscriber_count,
        "last_sequence": reply.last_sequence,
        "version": reply.version,
        "client": reply.client,
        "organization_id": reply.organization_id,
    }
