"""The sync client's event thread: SubscribeEvents → ``events`` callbacks, reconnecting with backoff."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import grpc

from targetd.v1 import decisioning_service_pb2 as pb
from targetd.v1 import decisioning_service_pb2_grpc as pb_grpc
from targetd_client._errors import InvalidOptionsError
from targetd_client._events import (
    EVENT_NAMES_BY_TYPE,
    Backoff,
    ConnectionState,
    call_event_callbacks,
)
from targetd_client._options import ClientSettings

log = logging.getLogger("targetd_client")

_TYPES_BY_NAME = {name: kind for kind, name in EVENT_NAMES_BY_TYPE.items()}
_JOIN_TIMEOUT_S = 10.0


def subscribe_request(
    types: Sequence[str] | None, include_artifact_payload: bool
) -> pb.SubscribeEventsRequest:
    """The SubscribeEvents request for event names ``types`` (None: all)."""
    numbers: list[Any] = []
    for name in types or ():
        if name not in _TYPES_BY_NAME:
            raise InvalidOptionsError(f"Unknown event name {name!r}; use one of: {', '.join(_TYPES_BY_NAME)}")
        numbers.append(_TYPES_BY_NAME[name])
    return pb.SubscribeEventsRequest(types=numbers, include_artifact_payload=include_artifact_payload)


def events_request(settings: ClientSettings) -> pb.SubscribeEventsRequest:
    """The subscription of the ``events`` option: everything, the payload only when asked for."""
    return pb.SubscribeEventsRequest(include_artifact_payload=settings.include_artifact_payload)


class EventThread:
    """A daemon thread reading SubscribeEvents and calling the ``events`` callbacks on itself, in order.

    A broken or ended stream is opened again after a capped exponential backoff with jitter (reset once a
    stream delivers); see ``targetd_client._events`` for which events are passed on after a reconnect.
    """

    def __init__(
        self,
        stub: pb_grpc.DecisioningServiceStub,
        settings: ClientSettings,
        metadata: tuple[tuple[str, str], ...],
    ) -> None:
        self._stub = stub
        self._settings = settings
        self._metadata = metadata
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._call: Any = None
        self._thread = threading.Thread(target=self._run, name="targetd-client-events", daemon=True)

    def start(self) -> None:
        """Start reading the stream."""
        self._thread.start()

    def stop(self) -> None:
        """Cancel the stream and wait (bounded) for the thread; callbacks already running finish first."""
        self._stop.set()
        with self._lock:
            call = self._call
        if call is not None:
            call.cancel()
        if threading.current_thread() is not self._thread:
            self._thread.join(_JOIN_TIMEOUT_S)

    def _run(self) -> None:
        backoff = Backoff(self._settings.reconnect_initial_delay_s, self._settings.reconnect_max_delay_s)
        state = ConnectionState()
        request = events_request(self._settings)
        callbacks = self._settings.events
        while not self._stop.is_set():
            call = self._stub.SubscribeEvents(request, metadata=self._metadata)
            with self._lock:
                self._call = call
            if self._stop.is_set():
                call.cancel()
                break
            state.connected()
            try:
                for response in call:
                    backoff.reset()
                    for event in state.on_message(response.event):
                        call_event_callbacks(callbacks, event)
                log.info("targetd event stream ended; reconnecting")
            except grpc.RpcError as error:
                if self._stop.is_set():
                    break
                code: Any = getattr(error, "code", lambda: None)()
                level = logging.ERROR if code == grpc.StatusCode.UNAUTHENTICATED else logging.WARNING
                log.log(level, "targetd event stream failed (%s); reconnecting", getattr(code, "name", code))
            except Exception:
                log.exception("targetd event stream: unexpected error; reconnecting")
            finally:
                with self._lock:
                    self._call = None
            self._stop.wait(backoff.next_delay())
