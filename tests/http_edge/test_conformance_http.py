"""Every shared conformance vector, sent as its Delivery API JSON to ``POST /rest/v1/delivery``, gets the
same answer as over gRPC (GetOffers, hybrid), compared both ways with the strict matcher
(``tests.engine.jest_match``: Jest ``toMatchObject``, arrays of the same length); and where the vector's
expected output does not depend on a mocked clock or geo lookup, the HTTP answer matches it too.

One real targetd (gRPC + HTTP on port 0) per suite artifact and configuration, read from
``../shared/conformance`` in place; the requests hybrid forwards (an mbox the artifact does not decide)
reach the local Delivery API stand-in (``targetd-edge``, a real process).
 Values that each call generates afresh (``requestId`` when the request
has none, a generated ``tntId``, and inside a trace the clock's values and the notification ids) are
compared by presence only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest

from targetd.json_format import message_to_dict, parse_dict
from targetd.v1 import decisioning_service_pb2 as pb
from targetd.v1 import decisioning_service_pb2_grpc as pb_grpc
from targetd.v1 import delivery_pb2
from targetd_server.service.server import RunningServer
from tests.delivery.support import EdgeProcess
from tests.engine.jest_match import mismatches
from tests.engine.test_conformance import SUITES, _hydrate, _load
from tests.http_edge.support import delivery_url, serving, settings

SESSION = "conformance-session"


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    with EdgeProcess(tmp_path_factory.mktemp("edge")) as process:
        yield process


def _suites() -> list[str]:
    return sorted(path.name for path in SUITES.glob("*.json"))


def _groups(suite: dict[str, Any]) -> Iterator[tuple[Any, dict[str, Any], list[tuple[str, dict[str, Any]]]]]:
    """The suite's cases grouped by (artifact, conf): one server each."""
    groups: dict[str, tuple[Any, dict[str, Any], list[tuple[str, dict[str, Any]]]]] = {}
    for key, case in suite["test"].items():
        artifact = case.get("artifact", suite.get("artifact"))
        conf = case.get("conf", suite.get("conf"))
        ident = json.dumps([artifact, conf], sort_keys=True)
        groups.setdefault(ident, (artifact, conf, []))[2].append((key, case))
    yield from groups.values()


def _generated(request: dict[str, Any]) -> set[str]:
    """Keys whose values the call generates (absent from the request)."""
    keys = set()
    if "requestId" not in request:
        keys.add("requestId")
    if not request.get("id", {}).get("tntId"):
        keys.add("tntId")
    return keys


# Inside a trace, what the clock and the id generator give each call: compared by presence only.
_TRACE_GENERATED = frozenset(
    {"current_timestamp", "current_time", "current_day", "timestamp", "impressionId", "id"}
)


def _masked(value: Any, keys: set[str] | frozenset[str], in_trace: bool = False) -> Any:
    if isinstance(value, dict):
        masked = {}
        for key, item in value.items():
            generated = key in keys or (in_trace and key in _TRACE_GENERATED)
            if generated and isinstance(item, str | int | float):
                masked[key] = "<generated>"
            else:
                masked[key] = _masked(item, keys, in_trace or key == "trace")
        return masked
    if isinstance(value, list):
        return [_masked(item, keys, in_trace) for item in value]
    return value


async def _over_grpc(stub: Any, case_input: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The gRPC answer and whether it was decided on-device."""
    call = pb.GetOffersRequest(
        session_id=case_input.get("sessionId", SESSION),
        decisioning_method=delivery_pb2.DECISIONING_METHOD_HYBRID,
    )
    parse_dict(case_input["request"], call.request, ignore_unknown=True)
    hint = case_input.get("targetLocationHint", case_input.get("locationHint"))
    if hint is not None:
        call.target_location_hint = hint
    reply = await stub.GetOffers(call, timeout=10)
    on_device = reply.envelope.meta.decisioning_method == delivery_pb2.DECISIONING_METHOD_ON_DEVICE
    return message_to_dict(reply.envelope.response, including_empty_repeated=True), on_device


async def _over_http(session: aiohttp.ClientSession, url: str, case_input: dict[str, Any]) -> dict[str, Any]:
    hint = case_input.get("targetLocationHint", case_input.get("locationHint"))
    cookies = {"mboxEdgeCluster": hint} if hint is not None else None
    params = {"imsOrgId": "org", "sessionId": case_input.get("sessionId", SESSION)}
    async with session.post(url, params=params, json=case_input["request"], cookies=cookies) as reply:
        assert reply.status == 200, await reply.text()
        answer: dict[str, Any] = await reply.json()
        return answer


def test_every_suite_is_run() -> None:
    assert len(_suites()) >= 14


@pytest.mark.parametrize("suite_name", _suites())
async def test_vector_over_http_is_the_grpc_answer(
    tmp_path: Path, edge: EdgeProcess, suite_name: str
) -> None:
    suite = _hydrate(_load(SUITES / suite_name))
    problems: list[str] = []
    checked = 0
    for index, (artifact, conf, cases) in enumerate(_groups(suite)):
        payload = tmp_path / f"artifact-{index}.json"
        payload.write_text(json.dumps(artifact))
        config = settings(
            tmp_path / str(index),
            client=conf["client"],
            organization_id=conf["organizationId"],
            artifact_payload="@" + str(payload),
            telemetry_enabled=conf.get("telemetryEnabled", True) is not False,
            server_domain=f"127.0.0.1:{edge.port}",
            edge_host_template=f"127.0.0.1:{edge.port}",
        )
        running: RunningServer
        async with (
            serving(config) as running,
            grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel,
            aiohttp.ClientSession() as session,
        ):
            stub = pb_grpc.DecisioningServiceStub(channel)
            for key, case in cases:
                grpc_answer, on_device = await _over_grpc(stub, case["input"])
                http_answer = await _over_http(session, delivery_url(running), case["input"])
                keys = _generated(case["input"]["request"])
                expected, received = _masked(grpc_answer, keys), _masked(http_answer, keys)
                found = mismatches(received, expected) + mismatches(expected, received)
                mocked = case.get("mockDate") is not None or case.get("mockGeo") is not None
                if "output" in case and on_device and not mocked:
                    found += mismatches(http_answer, case["output"])
                problems += [f"{key}: {problem}" for problem in found]
                checked += 1
    assert checked == len(suite["test"])
    assert not problems, "\n".join(problems)
