"""``AsyncTargetClient``: :class:`TargetClient`'s interface on grpc.aio (coroutines instead of futures).

Options, validation, conversions and event rules are the sync client's (``_options``, ``_convert``,
``_events``); only the transport differs.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from typing import Any, TypeVar

import grpc
import grpc.aio

from targetd.v1 import decisioning_service_pb2 as pb
from targetd.v1 import decisioning_service_pb2_grpc as pb_grpc
from targetd_client import _convert, _options
from targetd_client._attributes import Attributes
from targetd_client._channel import aio_channel, call_metadata
from targetd_client._errors import TargetClientError, TargetdRpcError, error_from_status
from targetd_client._events import Backoff, ConnectionState, TargetEvent, call_event_callbacks, to_event
from targetd_client._options import CallOptions, ClientSettings
from targetd_client._status import status_to_dict
from targetd_client._subscriber import events_request, subscribe_request

log = logging.getLogger("targetd_client")

R = TypeVar("R")


async def _error(error: grpc.aio.AioRpcError) -> TargetdRpcError:
    return error_from_status(error.code(), error.details(), error.trailing_metadata())


class AsyncTargetClient:
    """A Target client served by targetd, for asyncio. Create it with :meth:`create` inside a running loop;
    ``await client.close()`` or use ``async with``.

    Loop affinity: the loop that called :meth:`create`; call every method there. Event callbacks run on that
    loop in the client's event task (a coroutine callback is awaited before the next event).
    """

    def __init__(self, settings: ClientSettings | Mapping[str, Any] | None = None) -> None:
        if not isinstance(settings, ClientSettings):
            raise TargetClientError("Please use AsyncTargetClient.create static method instead")
        self._settings = settings
        self._channel = aio_channel(settings)
        self._stub = pb_grpc.DecisioningServiceStub(self._channel)
        self._metadata = call_metadata(settings)
        self._closed = False
        self._events_task: asyncio.Task[None] | None = None
        if settings.events:
            self._events_task = asyncio.get_running_loop().create_task(
                self._run_events(), name="targetd-client-events"
            )

    @staticmethod
    def create(options: Mapping[str, Any] | None) -> AsyncTargetClient:
        """:meth:`TargetClient.create` for asyncio: same options and errors. Must run inside the event loop
        that will use the client (it starts the event task there)."""
        return AsyncTargetClient(_options.validate_client_options(options))

    async def get_offers(self, options: Mapping[str, Any]) -> _convert.TargetDeliveryResponse:
        """:meth:`TargetClient.get_offers`; ``callback`` / ``err_callback`` are called before returning (or
        raising)."""
        request, call = _options.get_offers_call(options, self._settings)
        return await self._invoke(self._stub.GetOffers, request, call, _convert.get_offers_result)

    async def get_attributes(
        self, mbox_names: Sequence[str], options: Mapping[str, Any] | None = None
    ) -> Attributes:
        """:meth:`TargetClient.get_attributes`."""
        request, call = _options.get_attributes_call(mbox_names, options, self._settings)
        return await self._invoke(self._stub.GetAttributes, request, call, _convert.get_attributes_result)

    async def send_notifications(self, options: Mapping[str, Any]) -> _convert.TargetDeliveryResponse:
        """:meth:`TargetClient.send_notifications`."""
        request, call = _options.send_notifications_call(options, self._settings)
        return await self._invoke(
            self._stub.SendNotifications, request, call, _convert.send_notifications_result
        )

    async def get_status(self, *, timeout: float | None = None) -> dict[str, Any]:  # noqa: ASYNC109
        """:meth:`TargetClient.get_status`."""
        deadline = timeout / 1000 if timeout is not None else self._settings.timeout_s
        try:
            reply = await self._stub.GetStatus(
                pb.GetStatusRequest(), timeout=deadline, metadata=self._metadata
            )
        except grpc.aio.AioRpcError as error:
            raise await _error(error) from None
        return status_to_dict(reply)

    async def subscribe_events(
        self, types: Sequence[str] | None = None, *, include_artifact_payload: bool = False
    ) -> AsyncGenerator[TargetEvent, None]:
        """:meth:`TargetClient.subscribe_events` as an async iterator (``aclose()`` or break to cancel)."""
        stream = self._stub.SubscribeEvents(
            subscribe_request(types, include_artifact_payload), metadata=self._metadata
        )
        try:
            async for response in stream:
                yield to_event(response.event)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                raise await _error(error) from None
        finally:
            stream.cancel()

    async def _invoke(self, method: Any, request: Any, call: CallOptions, convert: Callable[[Any], R]) -> R:
        if self._closed:
            raise TargetClientError("the client is closed: create a new one")
        try:
            reply = await method(request, timeout=call.timeout_s, metadata=self._metadata)
        except grpc.aio.AioRpcError as error:
            failure = await _error(error)
            if call.err_callback is not None:
                await _maybe_await(call.err_callback(failure))
            raise failure from None
        result = convert(reply)
        if call.callback is not None:
            await _maybe_await(call.callback(result))
        return result

    async def _run_events(self) -> None:
        settings = self._settings
        backoff = Backoff(settings.reconnect_initial_delay_s, settings.reconnect_max_delay_s)
        state = ConnectionState()
        request = events_request(settings)
        while not self._closed:
            stream = self._stub.SubscribeEvents(request, metadata=self._metadata)
            state.connected()
            try:
                async for response in stream:
                    backoff.reset()
                    for event in state.on_message(response.event):
                        for result in call_event_callbacks(settings.events, event):
                            await _maybe_await(result, event["type"])
                log.info("targetd event stream ended; reconnecting")
            except grpc.aio.AioRpcError as error:
                if self._closed:
                    return
                log.warning("targetd event stream failed (%s); reconnecting", error.code().name)
            except Exception:
                log.exception("targetd event stream: unexpected error; reconnecting")
            finally:
                stream.cancel()
            await asyncio.sleep(backoff.next_delay())

    async def close(self) -> None:
        """Stop the event task and close the channel. Idempotent."""
        if self._closed:
            return
        self._closed = True
        task, self._events_task = self._events_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self._channel.close()

    async def __aenter__(self) -> AsyncTargetClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def _maybe_await(result: Any, name: str = "callback") -> None:
    if inspect.isawaitable(result):
        try:
            await result
        except Exception:
            log.exception("%s callback raised", name)


__all__ = ["AsyncTargetClient"]
