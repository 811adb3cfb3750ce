"""The gRPC floor: a grpc.aio server configured exactly like targetd's, whose only RPC echoes its bytes.

``python bench/floor_server.py --listen 127.0.0.1:0 [any targetd serve flag]`` prints
``floor listening on 127.0.0.1:PORT`` and serves ``/bench.Echo/Echo`` (a generic bytes handler: no protobuf
parsing, no work) until SIGTERM. It uses the same channel options (``server_options(settings)``), the same
interceptors for the same settings, and registers health and reflection like ``start_server``, on the same
default asyncio event loop, so the only difference from targetd is the handler's work.

With ``--canned-offers FILE`` (a serialized ``GetOffersResponse``) it also serves ``DecisioningService``
through the generated servicer, answering every GetOffers with that message: the floor for the real
request/response messages (protobuf parsing and serialising, the same reply size) with no decisioning.

``--burn-us 50,100`` adds ``/bench.Echo/Burn50`` and ``/bench.Echo/Burn100``: echoes whose handler first
spends that many µs (calibrated at start) in a pure-Python loop. They show how much handler time a call can
afford against the goals; the loop's working set is tiny, so real code of the same hot-loop cost costs more
inside a server (its code and data are evicted by the gRPC runtime between calls).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from targetd.v1 import decisioning_service_pb2 as pb
from targetd.v1 import decisioning_service_pb2_grpc as pb_grpc
from targetd_server.config import Settings, add_arguments, load_settings
from targetd_server.service.interceptors import TokenAuthInterceptor
from targetd_server.service.server import server_options

SERVICE = "bench.Echo"
METHOD = f"/{SERVICE}/Echo"


async def _echo(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    return request


def _spin(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def _iterations_per_us() -> float:
    """Loop iterations of :func:`_spin` per µs on this machine (median of a few timings)."""
    samples = []
    for _ in range(7):
        started = time.perf_counter()
        _spin(200_000)
        samples.append(200_000 / ((time.perf_counter() - started) * 1e6))
    return statistics.median(samples)


def _burner(iterations: int) -> Callable[[bytes, Any], Awaitable[bytes]]:
    async def burn(request: bytes, context: Any) -> bytes:
        _spin(iterations)
        return request

    return burn


class CannedDecisioning(pb_grpc.DecisioningServiceServicer):
    """GetOffers answers a fixed reply: the cost of the messages without the decisioning."""

    def __init__(self, reply: pb.GetOffersResponse) -> None:
        self.reply = reply

    async def GetOffers(
        self, request: pb.GetOffersRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GetOffersResponse:
        return self.reply


async def serve(
    settings: Settings, canned: pb.GetOffersResponse | None = None, burn_us: Sequence[int] = ()
) -> None:
    interceptors = [TokenAuthInterceptor(settings.auth_token)] if settings.auth_token else []
    server = grpc.aio.server(interceptors=interceptors, options=server_options(settings))
    methods: dict[str, grpc.RpcMethodHandler[Any, Any]] = {"Echo": grpc.unary_unary_rpc_method_handler(_echo)}
    if burn_us:
        per_us = _iterations_per_us()
        for us in burn_us:
            methods[f"Burn{us}"] = grpc.unary_unary_rpc_method_handler(_burner(round(us * per_us)))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, methods),))
    if canned is not None:
        # The other RPCs keep the generated base class's UNIMPLEMENTED answers.
        servicer = CannedDecisioning(canned)  # type: ignore[abstract]
        pb_grpc.add_DecisioningServiceServicer_to_server(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    port = server.add_insecure_port(settings.listen)
    if port == 0:
        raise OSError(f"cannot listen on {settings.listen}")
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    print(f"floor listening on {settings.listen.rsplit(':', 1)[0]}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--canned-offers", help="serialized GetOffersResponse that GetOffers answers")
    parser.add_argument("--burn-us", default="", help="comma-separated µs: add /bench.Echo/Burn<µs> methods")
    add_arguments(parser)
    args = parser.parse_args()
    canned = None
    if args.canned_offers:
        canned = pb.GetOffersResponse.FromString(Path(args.canned_offers).read_bytes())
    burn_us = [int(x) for x in args.burn_us.split(",") if x.strip()]
    asyncio.run(serve(load_settings(args, environ={}), canned, burn_us))


if __name__ == "__main__":
    main()
