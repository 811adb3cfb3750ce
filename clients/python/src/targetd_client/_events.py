"""Client events: the event object, the per-connection dispatch rules and the reconnect backoff.

Shared by the sync client (a background thread) and the asyncio client (a task). Nothing here does I/O.

Dispatch rules, per connection of the SubscribeEvents stream:
* the first message is STATE; ``client_ready`` is emitted at once when STATE says the server is ready (so
  after every reconnect, including to a restarted server), else when the live ``client_ready`` arrives;
* events the server replays after STATE (sequence not above STATE's) are emitted only when they are new to
  this client: on the first connection, or after a reconnect when the server's sequence went backwards (a
  restarted server) or beyond what was seen;
* ``heartbeat`` and ``shutdown`` are passed on as they come.
"""

from __future__ import annotations

import datetime
import json
import logging
import random
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

from targetd.v1 import decisioning_service_pb2 as pb
from targetd_client._errors import ArtifactDownloadError
from targetd_client.json_format import message_to_dict

log = logging.getLogger("targetd_client")

__all__ = ["Backoff", "ConnectionState", "TargetEvent"]

EVENT_NAMES_BY_TYPE: Final = {
    pb.EVENT_TYPE_CLIENT_READY: "client_ready",
    pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_SUCCEEDED: "artifact_download_succeeded",
    pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_FAILED: "artifact_download_failed",
    pb.EVENT_TYPE_GEO_LOCATION_UPDATED: "geo_location_updated",
    pb.EVENT_TYPE_STATE: "state",
    pb.EVENT_TYPE_HEARTBEAT: "heartbeat",
    pb.EVENT_TYPE_SHUTDOWN: "shutdown",
}
_SOURCES: Final = {
    pb.ARTIFACT_SOURCE_REMOTE: "remote",
    pb.ARTIFACT_SOURCE_FILE: "file",
    pb.ARTIFACT_SOURCE_PAYLOAD: "payload",
    pb.ARTIFACT_SOURCE_DISK_CACHE: "disk_cache",
}


class TargetEvent(Mapping[str, Any]):
    """One event, readable as a dict (``event["artifact_location"]``, as the SDK passes it) and by attribute
    (``event.artifact_location``). Keys: ``type`` (the event name) and the event's payload:

    * ``artifact_download_succeeded``: ``artifact_location``, ``artifact_payload`` (the parsed artifact when
      the client was created with ``include_artifact_payload``, else None), ``artifact`` (a dict about it);
    * ``artifact_download_failed``: ``artifact_location``, ``error`` (an :class:`ArtifactDownloadError`);
    * ``geo_location_updated``: ``geo_context`` (a Delivery API ``Geo`` dict: ``ipAddress``, ``city``, ...);
    * ``state``: ``ready``, ``artifact_location``, ``artifact``.

    Every event also has ``sequence`` (the server's event number) and ``time`` (a UTC datetime or None).
    """

    __slots__ = ("_data",)

    def __init__(self, data: dict[str, Any]) -> None:
        object.__setattr__(self, "_data", data)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(f"{self._data.get('type')} event has no {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("events are read-only")

    def __repr__(self) -> str:
        return f"TargetEvent({self._data!r})"


def artifact_dict(info: pb.ArtifactInfo) -> dict[str, Any]:
    return {
        "location": info.location,
        "source": _SOURCES.get(info.source),
        "revision": info.revision,
        "version": info.version,
        "size_bytes": info.size_bytes,
        "generated_at": info.generated_at,
        "client_code": info.client_code,
        "environment": info.environment,
        "workspace": info.workspace,
        "mbox_count": info.mbox_count,
        "view_count": info.view_count,
        "rule_count": info.rule_count,
    }


def to_event(event: pb.Event, name: str | None = None) -> TargetEvent:
    """The :class:`TargetEvent` for a stream message (``name`` overrides the type's name)."""
    data: dict[str, Any] = {
        "type": name or EVENT_NAMES_BY_TYPE.get(event.type, "unknown"),
        "sequence": event.sequence,
        "time": event.time.ToDatetime(tzinfo=datetime.UTC) if event.HasField("time") else None,
    }
    kind = event.type
    if kind in (pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_SUCCEEDED, pb.EVENT_TYPE_STATE):
        data["artifact_location"] = event.artifact_location
        data["artifact"] = artifact_dict(event.artifact) if event.HasField("artifact") else None
    if kind == pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_SUCCEEDED:
        data["artifact_payload"] = json.loads(event.artifact_payload) if event.artifact_payload else None
    elif kind == pb.EVENT_TYPE_ARTIFACT_DOWNLOAD_FAILED:
        data["artifact_location"] = event.artifact_location
        error = event.error
        data["error"] = ArtifactDownloadError(error.message, kind=error.kind, http_status=error.http_status)
    elif kind == pb.EVENT_TYPE_GEO_LOCATION_UPDATED:
        data["geo_context"] = message_to_dict(event.geo_context)
    elif kind == pb.EVENT_TYPE_STATE:
        data["ready"] = event.ready
    return TargetEvent(data)


class ConnectionState:
    """Applies the module's dispatch rules; one instance per client, :meth:`connected` per stream.

    Not thread-safe: used by the one thread (or task) that reads the stream.
    """

    def __init__(self) -> None:
        self._last_seen = 0  # highest sequence passed on over every connection so far
        self._state_sequence = 0  # STATE's sequence on this connection
        self._replay_is_new = True
        self._ready_emitted = False
        self._got_state = False

    def connected(self) -> None:
        """A new stream is open: expect STATE first."""
        self._got_state = False
        self._ready_emitted = False

    def on_message(self, event: pb.Event) -> list[TargetEvent]:
        """The events to pass to callbacks for one stream message, in order."""
        kind = event.type
        if kind == pb.EVENT_TYPE_STATE:
            first = self._last_seen == 0
            restarted = event.sequence < self._last_seen
            self._replay_is_new = first or restarted
            if restarted:
                self._last_seen = 0
            self._state_sequence = event.sequence
            self._got_state = True
            out = [to_event(event)]
            if event.ready:
                self._ready_emitted = True
                out.append(to_event(event, "client_ready"))
            return out
        if kind in (pb.EVENT_TYPE_HEARTBEAT, pb.EVENT_TYPE_SHUTDOWN):
            return [to_event(event)]
        replayed = self._got_state and event.sequence <= self._state_sequence
        new = event.sequence > self._last_seen
        self._last_seen = max(self._last_seen, event.sequence)
        if kind == pb.EVENT_TYPE_CLIENT_READY:
            if self._ready_emitted:
                return []
            self._ready_emitted = True
            return [to_event(event)]
        if replayed and not (self._replay_is_new or new):
            return []
        return [to_event(event)]


class Backoff:
    """Capped exponential backoff with jitter: attempt *n* waits a random time in [base/2, base] where
    base = min(maximum, initial * 2**n). :meth:`reset` after a successful connection."""

    def __init__(
        self, initial: float, maximum: float, *, rand: Callable[[float, float], float] = random.uniform
    ) -> None:
        self.initial = initial
        self.maximum = max(initial, maximum)
        self._attempt = 0
        self._rand = rand

    def next_delay(self) -> float:
        """The wait before the next attempt, in seconds."""
        base = min(self.maximum, self.initial * (2 ** min(self._attempt, 32)))
        self._attempt += 1
        return self._rand(base / 2, base)

    def reset(self) -> None:
        """Start again from ``initial``."""
        self._attempt = 0


def call_event_callbacks(
    callbacks: Mapping[str, list[tuple[Callable[..., Any], bool]]], event: TargetEvent
) -> list[Any]:
    """Call every callback registered for the event's name; return what they returned (coroutines for the
    asyncio client to await). A callback that raises is logged and does not stop the others."""
    results: list[Any] = []
    for callback, no_argument in callbacks.get(event["type"], ()):
        try:
            results.append(callback() if no_argument else callback(event))
        except Exception:
            log.exception("events[%r] callback raised", event["type"])
    return results
