"""Small gRPC helpers for the remote-side tests (sync stubs against a real targetd process)."""

from __future__ import annotations

from typing import Any

import grpc

from targetd.v1 import decisioning_service_pb2 as pb
from targetd.v1 import decisioning_service_pb2_grpc as pb_grpc
from targetd.v1 import delivery_pb2
from targetd_client.json_format import parse_dict
from tests.support import TargetdProcess, eventually


def request(data: dict[str, Any]) -> delivery_pb2.DeliveryRequest:
    return parse_dict(data, delivery_pb2.DeliveryRequest())


class Client:
    """A channel + stub to a targetd process, waiting for readiness."""

    def __init__(self, proc: TargetdProcess, *, wait_ready: bool = True) -> None:
        self.channel = grpc.insecure_channel(proc.address)
        self.stub = pb_grpc.DecisioningServiceStub(self.channel)
        if wait_ready:
            eventually(lambda: self.stub.GetStatus(pb.GetStatusRequest(), timeout=2).ready)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.channel.close()

    def offers(self, data: dict[str, Any], timeout: float = 10, **options: Any) -> pb.TargetDeliveryResponse:
        reply = self.stub.GetOffers(pb.GetOffersRequest(request=request(data), **options), timeout=timeout)
        return reply.envelope


def rpc_error(call: Any) -> grpc.RpcError:
    try:
        call()
    except grpc.RpcError as error:
        return error
    raise AssertionError("the call succeeded")


def trailing(error: grpc.RpcError) -> dict[str, str]:
    metadata: Any = error.trailing_metadata()
    return {str(k): str(v) for k, v in (metadata or ())}
