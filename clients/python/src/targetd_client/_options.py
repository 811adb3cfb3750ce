"""Validation of the SDK options, and their translation into ``targetd.v1`` request messages.

Shared by :class:`TargetClient` and :class:`AsyncTargetClient`. Pure functions; they raise
:class:`InvalidOptionsError` with the Python SDK's messages.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from targetd.v1 import decisioning_service_pb2 as pb
from targetd.v1 import delivery_pb2
from targetd_client._errors import InvalidOptionsError
from targetd_client._model import DeliveryModel
from targetd_client.json_format import parse_dict

DEFAULT_ADDRESS: Final = "127.0.0.1:50051"
DEFAULT_TIMEOUT_MS: Final = 3000

_METHODS: Final = {
    "server-side": delivery_pb2.DECISIONING_METHOD_SERVER_SIDE,
    "on-device": delivery_pb2.DECISIONING_METHOD_ON_DEVICE,
    "hybrid": delivery_pb2.DECISIONING_METHOD_HYBRID,
}
_METHOD_ERROR: Final = "Invalid Decisioning Method.  Must be set to one of: hybrid,on-device,server-side"

EVENT_NAMES: Final = (
    "client_ready",
    "artifact_download_succeeded",
    "artifact_download_failed",
    "geo_location_updated",
    "state",
    "heartbeat",
    "shutdown",
)
"""Event names accepted in the ``events`` option: the SDK's four, then targetd's stream events."""

# SDK options that configure the Target client hosted by targetd (flags of `targetd serve`); accepted so that
# SDK option maps work unchanged, and not sent: the server's configuration decides.
SERVER_OPTIONS: Final = frozenset(
    {
        "server_domain",
        "secure",
        "polling_interval",
        "maximum_wait_ready",
        "artifact_location",
        "artifact_payload",
        "environment",
        "cdn_environment",
        "cdn_base_path",
        "version",
        "telemetry_enabled",
        "logger",
        "internal",
    }
)

EventCallback = Callable[..., Any]


@dataclass(frozen=True)
class ClientSettings:
    """The validated ``create`` options."""

    client: str
    organization_id: str
    address: str = DEFAULT_ADDRESS
    timeout_s: float | None = DEFAULT_TIMEOUT_MS / 1000
    decisioning_method: delivery_pb2.DecisioningMethod.ValueType = delivery_pb2.DECISIONING_METHOD_UNSPECIFIED
    target_location_hint: str | None = None
    property_token: str | None = None
    environment_id: int | None = None
    events: dict[str, list[tuple[EventCallback, bool]]] = field(default_factory=dict)
    include_artifact_payload: bool = False
    tls: bool = False
    tls_root_certificates: bytes | None = None
    tls_client_certificate: bytes | None = None
    tls_client_key: bytes | None = None
    tls_server_name: str | None = None
    auth_token: str | None = None
    reconnect_initial_delay_s: float = 0.25
    reconnect_max_delay_s: float = 15.0
    channel_options: tuple[tuple[str, Any], ...] = ()
    channels: int = 1


MAX_CHANNELS = 64


def takes_no_argument(callback: EventCallback) -> bool:
    """Whether ``callback`` must be called without the event (it declares no parameter to receive it)."""
    try:
        signature = inspect.signature(callback)
    except (TypeError, ValueError):  # builtins without a signature: give them the event
        return False
    for parameter in signature.parameters.values():
        if parameter.kind in (
            parameter.POSITIONAL_ONLY,
            parameter.POSITIONAL_OR_KEYWORD,
            parameter.VAR_POSITIONAL,
        ):
            return False
    return True


def _pem(value: Any, name: str) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    if isinstance(value, str | os.PathLike):
        text = str(value)
        if text.lstrip().startswith("-----BEGIN"):
            return text.encode()
        try:
            return Path(text).read_bytes()
        except OSError as error:
            raise InvalidOptionsError(
                f"{name}: cannot read {text!r} ({error.strerror}); give PEM bytes or a path"
            ) from None
    raise InvalidOptionsError(f"{name} must be PEM bytes, a PEM string or a file path")


def _milliseconds(options: Mapping[str, Any], name: str, default: float | None) -> float | None:
    value = options.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InvalidOptionsError(f"{name} must be a number of milliseconds >= 0")
    return float(value) / 1000


def _events(value: Any) -> dict[str, list[tuple[EventCallback, bool]]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidOptionsError("events must be a dict of event name to callable")
    events: dict[str, list[tuple[EventCallback, bool]]] = {}
    for name, callbacks in value.items():
        if name not in EVENT_NAMES:
            raise InvalidOptionsError(f"Unknown event name {name!r}; use one of: {', '.join(EVENT_NAMES)}")
        listed = list(callbacks) if isinstance(callbacks, list | tuple) else [callbacks]
        for callback in listed:
            if not callable(callback):
                raise InvalidOptionsError(f"events[{name!r}]: Callback must be a callable function")
        events[name] = [(callback, takes_no_argument(callback)) for callback in listed]
    return events


def validate_client_options(options: Mapping[str, Any] | None) -> ClientSettings:
    """Validate ``TargetClient.create`` options (the SDK's checks and messages first, then targetd's)."""
    if not options:
        raise InvalidOptionsError("Options are required")
    if not isinstance(options, Mapping):
        raise InvalidOptionsError("Options must be a dict")
    if not options.get("client"):
        raise InvalidOptionsError("Client is required")
    if not options.get("organization_id"):
        raise InvalidOptionsError("Organization Id is required")
    method = options.get("decisioning_method")
    if method is not None and str(method) not in _METHODS:
        raise InvalidOptionsError(_METHOD_ERROR)
    address = options.get("targetd_address") or os.environ.get("TARGETD_ADDRESS") or DEFAULT_ADDRESS
    if not isinstance(address, str):
        raise InvalidOptionsError("targetd_address must be a string such as '127.0.0.1:50051'")
    root = _pem(options.get("tls_root_certificates"), "tls_root_certificates")
    cert = _pem(options.get("tls_client_certificate"), "tls_client_certificate")
    key = _pem(options.get("tls_client_key"), "tls_client_key")
    if bool(cert) != bool(key):
        raise InvalidOptionsError(
            "tls_client_certificate and tls_client_key go together: set both or neither"
        )
    tls = bool(options.get("tls") or root or cert)
    token = options.get("auth_token")
    if token is not None and not isinstance(token, str):
        raise InvalidOptionsError("auth_token must be a string")
    environment_id = options.get("environment_id")
    if environment_id is not None and (
        isinstance(environment_id, bool) or not isinstance(environment_id, int)
    ):
        raise InvalidOptionsError("environment_id must be an integer")
    initial = _milliseconds(options, "reconnect_initial_delay", 250)
    maximum = _milliseconds(options, "reconnect_max_delay", 15000)
    channel_options = options.get("channel_options") or ()
    channels = options.get("channels", 1)
    if isinstance(channels, bool) or not isinstance(channels, int) or not 1 <= channels <= MAX_CHANNELS:
        raise InvalidOptionsError(f"channels must be an integer from 1 to {MAX_CHANNELS}")
    return ClientSettings(
        client=str(options["client"]),
        organization_id=str(options["organization_id"]),
        address=address,
        timeout_s=_milliseconds(options, "timeout", DEFAULT_TIMEOUT_MS),
        decisioning_method=(
            _METHODS[str(method)] if method is not None else delivery_pb2.DECISIONING_METHOD_UNSPECIFIED
        ),
        target_location_hint=_optional_str(options, "target_location_hint"),
        property_token=_optional_str(options, "property_token"),
        environment_id=environment_id,
        events=_events(options.get("events")),
        include_artifact_payload=bool(options.get("include_artifact_payload")),
        tls=tls,
        tls_root_certificates=root,
        tls_client_certificate=cert,
        tls_client_key=key,
        tls_server_name=_optional_str(options, "tls_server_name"),
        auth_token=token,
        reconnect_initial_delay_s=initial or 0.0,
        reconnect_max_delay_s=max(maximum or 0.0, initial or 0.0),
        channel_options=tuple((str(item[0]), item[1]) for item in channel_options),
        channels=channels,
    )


def _optional_str(options: Mapping[str, Any], name: str) -> str | None:
    value = options.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidOptionsError(f"{name} must be a string")
    return value


# ---------------------------------------------------------------------------------------------- calls


@dataclass(frozen=True)
class CallOptions:
    """What a call's options say besides the request message: callbacks and the deadline."""

    callback: Callable[[Any], Any] | None
    err_callback: Callable[[BaseException], Any] | None
    timeout_s: float | None

    @property
    def is_async(self) -> bool:
        """With ``callback`` or ``err_callback`` the call returns a future."""
        return self.callback is not None or self.err_callback is not None


def _call_options(options: Mapping[str, Any], settings: ClientSettings) -> CallOptions:
    callback = options.get("callback")
    err_callback = options.get("err_callback")
    if callback is not None and not callable(callback):
        raise InvalidOptionsError("Callback must be a callable function")
    if err_callback is not None and not callable(err_callback):
        raise InvalidOptionsError("Callback must be a callable function")
    if options.get("visitor") is not None:
        raise InvalidOptionsError(
            "The visitor option is not supported by targetd: pass the ECID in request.id and customer_ids"
        )
    timeout = _milliseconds(options, "timeout", None) if "timeout" in options else settings.timeout_s
    return CallOptions(callback=callback, err_callback=err_callback, timeout_s=timeout)


def _request(value: Any, *, required: bool) -> delivery_pb2.DeliveryRequest | None:
    if value is None:
        if required:
            raise InvalidOptionsError("Request object of type DeliveryRequest is required")
        return None
    if isinstance(value, delivery_pb2.DeliveryRequest):
        return value
    if isinstance(value, DeliveryModel) and isinstance(value.message, delivery_pb2.DeliveryRequest):
        return value.message  # e.g. response["request"] sent again
    if isinstance(value, Mapping):  # Delivery API JSON (camelCase), as sent over HTTP
        try:
            return parse_dict(value, delivery_pb2.DeliveryRequest())
        except ValueError as error:
            raise InvalidOptionsError(f"request: {error}") from None
    raise InvalidOptionsError("Request object of type DeliveryRequest is required")


def _customer_ids(value: Any) -> list[delivery_pb2.CustomerId]:
    if value is None:
        return []
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise InvalidOptionsError("customer_ids must be a list of CustomerId")
    ids: list[delivery_pb2.CustomerId] = []
    for item in value:
        if isinstance(item, delivery_pb2.CustomerId):
            ids.append(item)
        elif isinstance(item, Mapping):
            try:
                ids.append(parse_dict(item, delivery_pb2.CustomerId()))
            except ValueError as error:
                raise InvalidOptionsError(f"customer_ids: {error}") from None
        else:
            raise InvalidOptionsError("customer_ids must be a list of CustomerId")
    return ids


def _common(options: Mapping[str, Any], settings: ClientSettings) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name in ("target_cookie", "consumer_id", "session_id"):
        value = _optional_str(options, name)
        if value is not None:
            fields[name] = value
    hint = _optional_str(options, "target_location_hint") or settings.target_location_hint
    if hint is not None:
        fields["target_location_hint"] = hint
    fields["customer_ids"] = _customer_ids(options.get("customer_ids"))
    return fields


def _method(options: Mapping[str, Any], settings: ClientSettings) -> delivery_pb2.DecisioningMethod.ValueType:
    method = options.get("decisioning_method")
    if method is None:
        return settings.decisioning_method
    if str(method) not in _METHODS:
        raise InvalidOptionsError(_METHOD_ERROR)
    return _METHODS[str(method)]


def _with_client_defaults(request: delivery_pb2.DeliveryRequest, settings: ClientSettings) -> None:
    if settings.property_token is not None and not request.property.HasField("token"):
        request.property.token = settings.property_token
    if settings.environment_id is not None and not request.HasField("environment_id"):
        request.environment_id = settings.environment_id


def _require_options(options: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if not options:
        raise InvalidOptionsError("Options are required")
    if not isinstance(options, Mapping):
        raise InvalidOptionsError("Options must be a dict")
    return options


def get_offers_call(
    options: Mapping[str, Any] | None, settings: ClientSettings
) -> tuple[pb.GetOffersRequest, CallOptions]:
    """The GetOffers request for ``get_offers(options)``."""
    options = _require_options(options)
    call = _call_options(options, settings)
    request = _request(options.get("request"), required=True)
    message = pb.GetOffersRequest(
        request=request, decisioning_method=_method(options, settings), **_common(options, settings)
    )
    _with_client_defaults(message.request, settings)
    return message, call


def get_attributes_call(
    mbox_names: Sequence[str], options: Mapping[str, Any] | None, settings: ClientSettings
) -> tuple[pb.GetAttributesRequest, CallOptions]:
    """The GetAttributes request for ``get_attributes(mbox_names, options)``."""
    if isinstance(mbox_names, str) or not isinstance(mbox_names, Sequence):
        raise InvalidOptionsError("mbox_names must be a list of mbox names")
    if not all(isinstance(name, str) and name for name in mbox_names):
        raise InvalidOptionsError("mbox_names must be non-empty strings")
    options = options or {}
    call = _call_options(options, settings)
    request = _request(options.get("request"), required=False)
    message = pb.GetAttributesRequest(
        mbox_names=list(mbox_names),
        request=request,
        decisioning_method=_method(options, settings),
        **_common(options, settings),
    )
    if request is not None:
        _with_client_defaults(message.request, settings)
    return message, call


def send_notifications_call(
    options: Mapping[str, Any] | None, settings: ClientSettings
) -> tuple[pb.SendNotificationsRequest, CallOptions]:
    """The SendNotifications request for ``send_notifications(options)`` (always server-side)."""
    options = _require_options(options)
    call = _call_options(options, settings)
    request = _request(options.get("request"), required=True)
    assert request is not None
    if not request.notifications and not request.HasField("telemetry"):
        raise InvalidOptionsError("Notifications list is required in request")
    message = pb.SendNotificationsRequest(request=request, **_common(options, settings))
    _with_client_defaults(message.request, settings)
    return message, call
