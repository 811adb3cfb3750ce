"""``TargetClient``: the Target Python SDK's interface over a gRPC channel to targetd (blocking API)."""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any, Final, TypeVar, overload

import grpc

from targetd.v1 import decisioning_service_pb2 as pb
from targetd.v1 import decisioning_service_pb2_grpc as pb_grpc
from targetd_client import _convert, _options
from targetd_client._attributes import Attributes
from targetd_client._call_types import AsyncCallOptionsDict, CallOptionsDict, ErrCallbackOptionsDict
from targetd_client._channel import call_metadata, sync_channel
from targetd_client._errors import (
    InvalidOptionsError,
    StatusCode,
    TargetClientError,
    TargetdRpcError,
    error_from_rpc,
)
from targetd_client._events import TargetEvent, to_event
from targetd_client._future import CallFuture
from targetd_client._options import CallOptions, ClientSettings
from targetd_client._status import status_to_dict
from targetd_client._subscriber import EventThread, subscribe_request

log = logging.getLogger("targetd_client")

R = TypeVar("R")
_CALLBACK_THREAD_PREFIX: Final = "targetd-client-callback"

RPC_METHODS: Final = {
    "GetOffers": "get_offers",
    "GetAttributes": "get_attributes",
    "SendNotifications": "send_notifications",
    "SubscribeEvents": "subscribe_events",
    "GetStatus": "get_status",
}
"""The client method of every RPC of ``targetd.v1.DecisioningService`` (both clients)."""


class TargetClient:
    """A Target client served by targetd. Create it with :meth:`create`; close it with :meth:`close` or use
    it as a context manager.

    Thread affinity: none — every method may be called from any thread; one client (one gRPC channel) is
    meant to be shared by the whole process. Event callbacks run on the client's event thread; ``callback`` /
    ``err_callback`` of asynchronous calls run on a small worker pool. Never block them for long.
    """

    def __init__(self, settings: ClientSettings | Mapping[str, Any] | None = None) -> None:
        if not isinstance(settings, ClientSettings):
            raise TargetClientError("Please use TargetClient.create static method instead")
        self._settings = settings
        self._channel = sync_channel(settings)
        self._stub = pb_grpc.DecisioningServiceStub(self._channel)
        self._metadata = call_metadata(settings)
        self._lock = threading.Lock()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._closed = False
        self._events: EventThread | None = None
        if settings.events:
            self._events = EventThread(self._stub, settings, self._metadata)
            self._events.start()

    @staticmethod
    def create(options: Mapping[str, Any] | None) -> TargetClient:
        """Validate ``options`` and return a client (the SDK's ``TargetClient.create``).

        Options: the SDK's (``client`` and ``organization_id`` required; ``decisioning_method``, ``timeout``
        in ms (default 3000, the deadline of every call), ``target_location_hint``, ``property_token``,
        ``environment_id``, ``events``; the SDK's artifact/polling/host options are accepted and left to the
        server's configuration), plus ``targetd_address`` (``host:port``, default ``$TARGETD_ADDRESS`` or
        ``127.0.0.1:50051``), ``tls`` / ``tls_root_certificates`` / ``tls_client_certificate`` /
        ``tls_client_key`` / ``tls_server_name``, ``auth_token``, ``include_artifact_payload``,
        ``reconnect_initial_delay`` / ``reconnect_max_delay`` (ms), ``channels`` (connections the calls
        are spread over, default 1: see docs/clients.md).

        Returns at once (as Node's SDK): ``client_ready`` is emitted on the event thread once targetd can
        serve decisions. Raises :class:`InvalidOptionsError` with the SDK's messages. Any thread.
        """
        return TargetClient(_options.validate_client_options(options))

    # ------------------------------------------------------------------------------------ calls

    @overload
    def get_offers(  # type: ignore[overload-overlap]  # a dict with callback is also a CallOptionsDict
        self, options: AsyncCallOptionsDict | ErrCallbackOptionsDict
    ) -> CallFuture[_convert.TargetDeliveryResponse]: ...
    @overload
    def get_offers(self, options: CallOptionsDict) -> _convert.TargetDeliveryResponse: ...
    @overload
    def get_offers(self, options: Mapping[str, Any]) -> Any: ...
    def get_offers(self, options: Any) -> Any:
        """The SDK's ``get_offers``: returns the ``TargetDeliveryResponse`` dict (``response["response"]`` is
        a :class:`DeliveryModel` of the ``DeliveryResponse``). With ``callback`` / ``err_callback`` it returns
        a :class:`CallFuture` at once (``result()``, or the SDK's ``get()``) and calls them with the result /
        the error. Raises :class:`InvalidOptionsError` for bad options and a :class:`TargetdRpcError`
        subclass (carrying the gRPC ``code``) when the call fails. Any thread."""
        request, call = _options.get_offers_call(options, self._settings)
        return self._invoke(self._stub.GetOffers, request, call, _convert.get_offers_result)

    @overload
    def get_attributes(  # type: ignore[overload-overlap]
        self, mbox_names: Sequence[str], options: AsyncCallOptionsDict | ErrCallbackOptionsDict
    ) -> CallFuture[Attributes]: ...
    @overload
    def get_attributes(
        self, mbox_names: Sequence[str], options: CallOptionsDict | None = None
    ) -> Attributes: ...
    @overload
    def get_attributes(self, mbox_names: Sequence[str], options: Mapping[str, Any] | None = None) -> Any: ...
    def get_attributes(self, mbox_names: Sequence[str], options: Any = None) -> Any:
        """The SDK's ``get_attributes``: returns an :class:`Attributes` (``get_value``, ``as_object``,
        ``get_response``); the mboxes are added to ``request.execute`` unless already requested. Async with
        ``callback`` as :meth:`get_offers`; raises as :meth:`get_offers`. Any thread."""
        request, call = _options.get_attributes_call(mbox_names, options, self._settings)
        return self._invoke(self._stub.GetAttributes, request, call, _convert.get_attributes_result)

    @overload
    def send_notifications(  # type: ignore[overload-overlap]  # a dict with callback is also a CallOptionsDict
        self, options: AsyncCallOptionsDict | ErrCallbackOptionsDict
    ) -> CallFuture[_convert.TargetDeliveryResponse]: ...
    @overload
    def send_notifications(self, options: CallOptionsDict) -> _convert.TargetDeliveryResponse: ...
    @overload
    def send_notifications(self, options: Mapping[str, Any]) -> Any: ...
    def send_notifications(self, options: Any) -> Any:
        """The SDK's ``send_notifications`` (always server-side): ``request.notifications`` is required.
        Returns the envelope of the Delivery API call; async with ``callback``; raises as :meth:`get_offers`.
        Any thread."""
        request, call = _options.send_notifications_call(options, self._settings)
        return self._invoke(self._stub.SendNotifications, request, call, _convert.send_notifications_result)

    def get_status(self, *, timeout: float | None = None) -> dict[str, Any]:
        """targetd's status (GetStatus): ``ready``, ``decisioning_method``, ``artifact`` (dict or None),
        ``last_error``, ``version``, ``client``, ``organization_id``, ... ``timeout`` in ms (default: the
        client's). Raises a :class:`TargetdRpcError` subclass. Any thread."""
        deadline = timeout / 1000 if timeout is not None else self._settings.timeout_s
        try:
            reply = self._stub.GetStatus(pb.GetStatusRequest(), timeout=deadline, metadata=self._metadata)
        except grpc.RpcError as error:
            raise error_from_rpc(error) from None
        return status_to_dict(reply)

    def subscribe_events(
        self, types: Sequence[str] | None = None, *, include_artifact_payload: bool = False
    ) -> Generator[TargetEvent, None, None]:
        """The raw SubscribeEvents stream as :class:`TargetEvent` objects, starting with ``state`` and the
        server's replayed events; ``types`` filters by event name (state, heartbeat and shutdown always come).
        No reconnect (that is what the ``events`` option does). Ends after ``shutdown``; close the iterator
        (or break out of the loop) to cancel the stream. Raises a :class:`TargetdRpcError` subclass while
        iterating. Any thread; iterate on one thread."""
        stream = self._stub.SubscribeEvents(
            subscribe_request(types, include_artifact_payload), metadata=self._metadata
        )
        try:
            for response in stream:
                yield to_event(response.event)
        except grpc.RpcError as error:
            if stream.code() != grpc.StatusCode.CANCELLED:
                raise error_from_rpc(error) from None
        finally:
            stream.cancel()

    def _invoke(
        self,
        method: Any,
        request: Any,
        call: CallOptions,
        convert: Callable[[Any], R],
    ) -> R | concurrent.futures.Future[Any]:
        if self._closed:
            raise TargetClientError("the client is closed: create a new one")
        if not call.is_async:
            try:
                reply = method(request, timeout=call.timeout_s, metadata=self._metadata)
            except grpc.RpcError as error:
                raise error_from_rpc(error) from None
            return convert(reply)
        future: CallFuture[Any] = CallFuture()
        rpc = method.future(request, timeout=call.timeout_s, metadata=self._metadata)
        executor = self._worker_pool()

        def on_done(done: Any) -> None:
            try:
                executor.submit(_complete, done, convert, call, future)
            except RuntimeError:  # the pool is shut down (client closed): finish here
                _complete(done, convert, call, future)

        rpc.add_done_callback(on_done)
        return future

    def _worker_pool(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=4, thread_name_prefix=_CALLBACK_THREAD_PREFIX
                )
            return self._executor

    # ------------------------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Stop the event thread, wait for pending callbacks, close the channel. Idempotent; any thread
        (from an event or callback of this client it does not wait for that thread)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            executor, self._executor = self._executor, None
        if self._events is not None:
            self._events.stop()
        if executor is not None:
            # From one of its own callbacks the pool cannot wait for itself: let pending work finish alone.
            in_pool = threading.current_thread().name.startswith(_CALLBACK_THREAD_PREFIX)
            executor.shutdown(wait=not in_pool)
        self._channel.close()

    def __enter__(self) -> TargetClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _complete(
    done: Any, convert: Callable[[Any], Any], call: CallOptions, future: concurrent.futures.Future[Any]
) -> None:
    """Finish an asynchronous call on a worker thread: convert, call the user's callback, resolve."""
    try:
        result = convert(done.result())
    except grpc.RpcError as error:
        failure: BaseException = error_from_rpc(error)
    except grpc.FutureCancelledError:
        failure = TargetdRpcError("the call was cancelled (the client was closed)", code=StatusCode.CANCELLED)
    except Exception as error:  # conversion failed: report it rather than lose it
        failure = error
    else:
        if call.callback is not None:
            try:
                call.callback(result)
            except Exception:
                log.exception("get_offers callback raised")
        future.set_result(result)
        return
    if call.err_callback is not None:
        try:
            call.err_callback(failure)
        except Exception:
            log.exception("err_callback raised")
    future.set_exception(failure)


__all__ = ["RPC_METHODS", "InvalidOptionsError", "TargetClient"]
