"""The Target SDK family's shared on-device conformance suite, run through targetd's application layer.

Every test of every ``../shared/conformance/suites/*.json`` is its own pytest id. The vectors are read in
place (never copied). Each case "downloads" (compiles) the hydrated artifact and records its telemetry
entry as the artifact provider does, then decides through the application layer's on-device path
(``targetd_server.calls.on_device.decide_on_device``: the call's options, identity, the one request
completion, the engine, the envelope and the one notification request the SDK would send), with
``mockDate`` as the clock and ``mockGeo`` as the geo-lookup result. Results are compared with Jest
``toMatchObject`` rules (see ``jest_match``).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from targetd.json_format import message_to_dict, parse_dict
from targetd.v1 import decisioning_service_pb2 as pb
from targetd.v1 import delivery_pb2
from targetd_server.calls import CallOptions
from targetd_server.calls.on_device import decide_on_device
from targetd_server.config import Settings
from targetd_server.engine import TelemetryProvider, compile_artifact, geo_from_lookup, needs_geo_lookup
from tests.engine.jest_match import mismatches

CONFORMANCE = Path(__file__).resolve().parents[2] / ".." / "shared" / "conformance"
SUITES = CONFORMANCE / "suites"
ARTIFACTS = CONFORMANCE / "artifacts"


@cache
def _load(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)


def _hydrate(value: Any) -> Any:
    """Replace, at any depth, ``"artifact": "TEST_ARTIFACT_X"`` by the parsed artifact file."""
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            if key == "artifact" and isinstance(item, str) and (ARTIFACTS / f"{item}.json").exists():
                result[key] = _load(ARTIFACTS / f"{item}.json")
            else:
                result[key] = _hydrate(item)
        return result
    if isinstance(value, list):
        return [_hydrate(item) for item in value]
    return value


def _cases() -> list[Any]:
    cases = []
    for suite_path in sorted(SUITES.glob("*.json")):
        suite = _load(suite_path)
        for key in suite["test"]:
            cases.append(pytest.param(suite_path.name, key, id=f"{suite_path.stem}::{key}"))
    return cases


def _mock_clock(mock_date: dict[str, Any] | None) -> Any:
    if not mock_date:
        return lambda: time.time_ns() // 1_000_000
    moment = datetime(
        mock_date["year"],
        mock_date["month"] + 1,  # JavaScript months are 0-based
        mock_date["date"],
        mock_date.get("hours", 0),
        mock_date.get("minutes", 0),
        mock_date.get("seconds", 0),
        tzinfo=UTC,
    )
    millis = int(moment.timestamp() * 1000)
    return lambda: millis


def test_suite_has_cases() -> None:
    assert SUITES.is_dir(), f"conformance suites not found at {SUITES}"
    assert len(_cases()) >= 51


@pytest.mark.parametrize(("suite_name", "test_key"), _cases())
def test_conformance(suite_name: str, test_key: str) -> None:
    suite = _hydrate(_load(SUITES / suite_name))
    case = suite["test"][test_key]
    conf = case.get("conf", suite.get("conf"))
    artifact_json = case.get("artifact", suite.get("artifact"))
    clock = _mock_clock(case.get("mockDate"))
    telemetry = TelemetryProvider(enabled=conf.get("telemetryEnabled", True) is not False)

    # What the artifacts layer does on a download: validate/compile, then record the download's telemetry.
    started = time.perf_counter()
    artifact = compile_artifact(artifact_json)
    telemetry.add_artifact_request_entry(
        timestamp_ms=clock(), execution_ms=(time.perf_counter() - started) * 1000, parsing_ms=0.0
    )
    assert artifact.raw == artifact_json

    options = case["input"]
    request = parse_dict(options["request"], delivery_pb2.DeliveryRequest(), ignore_unknown=True)
    geo = None
    if case.get("mockGeo") is not None:
        assert needs_geo_lookup(artifact, request), "the case mocks a geo lookup the engine would not need"
        geo = geo_from_lookup(case["mockGeo"])
    else:
        assert not needs_geo_lookup(artifact, request)

    call = pb.GetOffersRequest(request=request)
    if options.get("sessionId") is not None:
        call.session_id = options["sessionId"]
    hint = options.get("targetLocationHint", options.get("locationHint"))
    if hint is not None:
        call.target_location_hint = hint
    settings = Settings(
        client=conf["client"], organization_id=conf["organizationId"], telemetry_enabled=telemetry.enabled
    )
    outcome = decide_on_device(
        call.request,
        CallOptions.of(call),
        artifact,
        settings=settings,
        geo=geo,
        telemetry=telemetry,
        clock=clock,
    )
    result_response = outcome.envelope.response

    if "output" in case:
        received = message_to_dict(result_response, including_empty_repeated=True)
        problems = mismatches(received, case["output"])
        assert not problems, "\n".join(problems) + "\n" + json.dumps(received, indent=1)[:6000]

    if "notificationOutput" in case:
        sent = outcome.outbound
        expected = case["notificationOutput"]
        if expected is None:
            assert sent is None, f"nothing may be sent, got {message_to_dict(sent) if sent else None}"
        else:
            assert sent is not None, "expected one notification request, none was built"
            payload = message_to_dict(sent, including_empty_repeated=True)
            problems = mismatches(payload, expected["request"])
            assert not problems, "\n".join(problems) + "\n" + json.dumps(payload, indent=1)[:6000]
