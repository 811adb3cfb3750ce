"""targetd's request handling without gRPC: the servicer in-process, timed and profiled (cProfile).

``python bench/handler.py [--number N] [--repeat N] [targetd serve flags]`` starts the real
``TargetClient`` (the artifact from the flags, e.g. ``--artifact-payload @...``) on an asyncio loop and
calls ``DecisioningServicer.GetOffers`` / ``GetAttributes`` directly, doing per call exactly the work a gRPC
call adds around the handler in targetd but not in the floor: parse the request bytes, run the handler
(which returns the encoded reply). Prints one JSON object: µs per call for each step (median of
``--repeat`` batches), and the functions with the most own time under cProfile, so that the cost above the
gRPC floor can be named by ``file:function``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import pstats
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import cases
import grpc

from targetd.v1 import decisioning_service_pb2 as pb
from targetd.v1 import delivery_pb2
from targetd_client.json_format import parse_dict
from targetd_server.calls import TargetClient
from targetd_server.config import add_arguments, load_settings
from targetd_server.service.servicer import DecisioningServicer


class _Context:
    """The parts of ``grpc.aio.ServicerContext`` a unary handler uses."""

    def time_remaining(self) -> float | None:
        return None

    def set_trailing_metadata(self, metadata: Any) -> None:
        return None

    async def abort(self, code: grpc.StatusCode, details: str = "", *args: Any) -> None:
        raise RuntimeError(f"{code.name}: {details}")

    def invocation_metadata(self) -> tuple[Any, ...]:
        return ()


def _requests(artifact: dict[str, Any]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for case in cases.CASES:
        request = delivery_pb2.DeliveryRequest()
        parse_dict(cases.delivery_request(case, artifact), request)
        if case == cases.ATTRIBUTES_1:
            out[case] = pb.GetAttributesRequest(
                mbox_names=cases.attribute_mboxes(case), request=request
            ).SerializeToString()
        else:
            out[case] = pb.GetOffersRequest(request=request).SerializeToString()
    return out


def _short(key: tuple[str, int, str], repo: str) -> str:
    file, _line, func = key
    markers = (repo + "/server/", repo + "/api/python/src/", repo + "/clients/python/src/")
    for marker in (*markers, "site-packages/", "lib/python3.11/"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{file}:{func}"


async def _measure(args: argparse.Namespace) -> dict[str, Any]:
    settings = load_settings(args, environ={})
    client = TargetClient(settings)
    ready = asyncio.Event()
    client.add_readiness_listener(lambda now: ready.set() if now else None)
    await client.start()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(ready.wait(), 30.0)
    if not client.ready:
        await client.stop()
        return {"ok": False, "error": "the TargetClient did not become ready in 30 s"}
    servicer = DecisioningServicer(client)
    context: Any = _Context()
    raw = _requests(cases.load_artifact())
    results: dict[str, Any] = {}
    try:
        for case, data in raw.items():
            handle: Callable[[bytes], Awaitable[Any]]
            if case == cases.ATTRIBUTES_1:

                async def handle(b: bytes) -> Any:
                    return await servicer.GetAttributes(pb.GetAttributesRequest.FromString(b), context)

                parse: Callable[[bytes], Any] = pb.GetAttributesRequest.FromString
                decode: Callable[[bytes], Any] = pb.GetAttributesResponse.FromString
            else:

                async def handle(b: bytes) -> Any:
                    return await servicer.GetOffers(pb.GetOffersRequest.FromString(b), context)

                parse = pb.GetOffersRequest.FromString
                decode = pb.GetOffersResponse.FromString

            async def whole(b: bytes = data, h: Callable[[bytes], Awaitable[Any]] = handle) -> None:
                await h(b)

            reply = decode(await handle(data))  # (the servicer returns the encoded reply)
            for _ in range(max(args.number // 4, 20)):
                await whole()
            whole_us, parse_us, serialize_us = [], [], []
            for _ in range(args.repeat):
                started = time.perf_counter()
                for _ in range(args.number):
                    await whole()
                whole_us.append((time.perf_counter() - started) / args.number * 1e6)
                started = time.perf_counter()
                for _ in range(args.number):
                    parse(data)
                parse_us.append((time.perf_counter() - started) / args.number * 1e6)
                started = time.perf_counter()
                for _ in range(args.number):
                    reply.SerializeToString()
                serialize_us.append((time.perf_counter() - started) / args.number * 1e6)
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(args.number):
                await whole()
            profiler.disable()
            stats = pstats.Stats(profiler)
            table = stats.stats  # type: ignore[attr-defined]
            total = sum(entry[2] for entry in table.values())
            repo = str(cases.REPO)
            own = sorted(table.items(), key=lambda item: item[1][2], reverse=True)[: args.top]
            cumulative = sorted(
                ((k, v) for k, v in table.items() if repo in k[0]), key=lambda item: item[1][3], reverse=True
            )[: args.top]
            results[case] = {
                "us_per_call": statistics.median(whole_us),
                "parse_us": statistics.median(parse_us),
                "serialize_us": statistics.median(serialize_us),
                "reply_bytes": reply.ByteSize(),
                "profile_own": [
                    {
                        "function": _short(k, repo),
                        "calls_per_call": v[1] / args.number,
                        "own_us_per_call": v[2] / args.number * 1e6,
                        "percent": round(100 * v[2] / total, 1),
                    }
                    for k, v in own
                ],
                "profile_cumulative": [
                    {"function": _short(k, repo), "cum_us_per_call": v[3] / args.number * 1e6}
                    for k, v in cumulative
                ],
                "profiled_us_per_call": total / args.number * 1e6,
            }
    finally:
        await client.stop()
    return {"ok": True, "cases": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=1000, help="calls per timed batch")
    parser.add_argument("--repeat", type=int, default=5, help="timed batches (median taken)")
    parser.add_argument("--top", type=int, default=20, help="functions listed per profile")
    add_arguments(parser)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(_measure(args))), flush=True)


if __name__ == "__main__":
    main()
