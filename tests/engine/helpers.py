"""Helpers for the engine tests: shared artifacts (read in place), requests from JSON, fixed clock/ids."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from targetd.v1 import delivery_pb2
from targetd_client.json_format import message_to_dict, parse_dict
from targetd_server.engine import CompiledArtifact, DecisionResult, compile_artifact, decide
from targetd_server.engine.allocation import allocation_for

CONFORMANCE = Path(__file__).resolve().parents[2] / ".." / "shared" / "conformance"
CLIENT = "someClientId"
CHROME_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_3) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/80.0.3987.163 Safari/537.36"
)
FIREFOX_MAC = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:73.0) Gecko/20100101 Firefox/73.0"
SAFARI_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_3) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/13.0.5 Safari/605.1.15"
)


@cache
def raw_artifact(name: str) -> Any:
    """A shared test artifact (``TEST_ARTIFACT_X``) or ``artifact`` (the big sample), parsed."""
    path = CONFORMANCE / "artifact.json" if name == "artifact" else CONFORMANCE / "artifacts" / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8"))


@cache
def artifact(name: str) -> CompiledArtifact:
    """The compiled shared artifact."""
    return compile_artifact(raw_artifact(name))


def utc_ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    """Epoch milliseconds of a UTC date (month 1-12)."""
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp() * 1000)


def request(
    body: dict[str, Any],
    *,
    user_agent: str = CHROME_MAC,
    url: str = "http://local-target-test/",
    visitor: dict[str, Any] | None = None,
) -> delivery_pb2.DeliveryRequest:
    """A DeliveryRequest with a web context (given UA and URL) and a visitor id."""
    data = {
        "id": visitor if visitor is not None else {"tntId": "338e3c1e51f7416a8e1ccba4f81acea0.28_0"},
        "context": {"channel": "web", "address": {"url": url}, "userAgent": user_agent},
        **body,
    }
    return parse_dict(data, delivery_pb2.DeliveryRequest())


def counter_ids() -> Callable[[], str]:
    """Deterministic ids: ``id-1``, ``id-2``, ..."""
    numbers = itertools.count(1)
    return lambda: f"id-{next(numbers)}"


def run(name: str, req: delivery_pb2.DeliveryRequest, **kwargs: Any) -> DecisionResult:
    """``decide`` against a shared artifact with the suite's client code and deterministic ids."""
    kwargs.setdefault("client", CLIENT)
    kwargs.setdefault("id_generator", counter_ids())
    return decide(artifact(name), req, **kwargs)


def as_dict(message: Any) -> dict[str, Any]:
    """Delivery API JSON of a message."""
    return message_to_dict(message)


def visitor_in(activity_id: int, low: float, high: float, client: str = CLIENT) -> str:
    """A tntId whose allocation for ``activity_id`` lies in ``[low, high]``."""
    for number in range(10000):
        candidate = f"visitor{number}"
        if low <= allocation_for(f"{client}.{activity_id}.{candidate}.0") <= high:
            return candidate
    raise AssertionError("no visitor found")
