"""TargetClient and AsyncTargetClient against a real targetd process: calls, futures and callbacks, errors
with their codes, token auth, TLS, events, and reconnecting to a restarted server."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from targetd_client import (
    AsyncTargetClient,
    AttributeNotFoundError,
    DeliveryRequest,
    ExecuteRequest,
    InvalidArgumentError,
    MboxRequest,
    OptionType,
    StatusCode,
    TargetClient,
    TargetClientError,
    TargetdRpcError,
    UnauthenticatedError,
    UnavailableError,
)
from tests.conftest import CONFORMANCE
from tests.support import TargetdProcess, eventually, eventually_async

AB_SIMPLE = CONFORMANCE / "artifacts" / "TEST_ARTIFACT_AB_SIMPLE.json"
ORG = "1234567890@AdobeOrg"
BASE = ["--client", "acmeclient", "--organization-id", ORG, "--log-format", "text"]


def on_device(data: Path, *extra: str) -> list[str]:
    return [
        *BASE,
        "--decisioning-method",
        "on-device",
        "--artifact-payload",
        f"@{AB_SIMPLE}",
        "--polling-interval",
        "0",
        "--target-location-hint",
        "28",
        "--data-dir",
        str(data),
        *extra,
    ]


def options(address: str, **more: Any) -> dict[str, Any]:
    return {"client": "acmeclient", "organization_id": ORG, "targetd_address": address, **more}


def magician() -> DeliveryRequest:
    return DeliveryRequest(execute=ExecuteRequest(mboxes=[MboxRequest(name="mbox-magician", index=1)]))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TargetdProcess]:
    with TargetdProcess(on_device(tmp_path / "data")) as process:
        yield process


def test_get_offers_and_get_attributes(server: TargetdProcess) -> None:
    with TargetClient.create(options(server.address)) as client:
        response = client.get_offers({"request": magician(), "session_id": "s1"})
        mbox = response["response"].execute.mboxes[0]
        assert mbox.name == "mbox-magician"
        content = mbox.options[0].content
        assert set(content) == {"doMagic", "importantValue"}
        assert mbox.options[0].type == OptionType.JSON and mbox.options[0].eventToken is None
        assert response["meta"] == {
            "decisioning_method": "on-device",
            "remote_mboxes": [],
            "remote_views": [],
        }
        assert response["target_cookie"]["name"] == "mbox"
        assert "session#s1#" in response["target_cookie"]["value"]
        assert response["response_tokens"][0]["activity.decisioningMethod"] == "on-device"

        cookie = response["target_cookie"]["value"]  # the same visitor: the same experience
        attributes = client.get_attributes(["mbox-magician"], {"target_cookie": cookie})
        assert attributes.get_value("mbox-magician", "doMagic") is content["doMagic"]
        assert attributes.as_object("mbox-magician") == content
        assert set(attributes.as_object()) == {"mbox-magician"}
        missing = attributes.get_value("mbox-magician", "nope")
        assert isinstance(missing, AttributeNotFoundError)
        assert str(missing) == "Attribute 'nope' does not exist for mbox 'mbox-magician'"
        assert attributes.get_response()["response"].execute.mboxes[0].name == "mbox-magician"

        status = client.get_status()
        assert status["ready"] and status["client"] == "acmeclient" and status["organization_id"] == ORG
        assert status["artifact"]["source"] == "payload"


def test_callback_makes_the_call_asynchronous(server: TargetdProcess) -> None:
    with TargetClient.create(options(server.address)) as client:
        results: list[Any] = []
        done = threading.Event()

        def on_result(result: Any) -> None:
            results.append(result)
            done.set()

        future = client.get_offers({"request": magician(), "callback": on_result})
        assert isinstance(future, concurrent.futures.Future)
        response = future.get(timeout=10)  # the SDK's AsyncResult.get
        assert future.ready() and future.successful() and future.result() is response
        assert done.is_set() and results[0] is response
        assert response["response"].execute.mboxes[0].name == "mbox-magician"

        errors: list[BaseException] = []
        bad = client.get_offers(
            {
                "request": DeliveryRequest(execute=ExecuteRequest()),
                "callback": on_result,
                "err_callback": errors.append,
            }
        )
        with pytest.raises(InvalidArgumentError):
            bad.result(timeout=10)
        assert not bad.successful()
        assert isinstance(errors[0], InvalidArgumentError)

        attributes = client.get_attributes(["mbox-magician"], {"callback": lambda a: None}).result(timeout=10)
        assert isinstance(attributes.get_value("mbox-magician", "doMagic"), bool)


def test_errors_carry_the_grpc_code_and_field(server: TargetdProcess) -> None:
    with TargetClient.create(options(server.address)) as client:
        with pytest.raises(InvalidArgumentError) as raised:
            client.get_offers({"request": DeliveryRequest(execute=ExecuteRequest())})
        assert raised.value.code is StatusCode.INVALID_ARGUMENT
        assert raised.value.field == "request.execute"
        assert "Either pageLoad or mboxes is required in execute" in raised.value.details
    with TargetClient.create(options("127.0.0.1:1", timeout=2000)) as down:
        with pytest.raises(UnavailableError) as unavailable:
            down.get_status()
        assert unavailable.value.code is StatusCode.UNAVAILABLE


def test_token_auth(tmp_path: Path) -> None:
    with TargetdProcess(on_device(tmp_path / "data", "--auth-token", "s3cret")) as process:
        with TargetClient.create(options(process.address)) as anonymous:
            with pytest.raises(UnauthenticatedError) as raised:
                anonymous.get_offers({"request": magician()})
            assert raised.value.code is StatusCode.UNAUTHENTICATED
        with TargetClient.create(options(process.address, auth_token="wrong")) as wrong:
            with pytest.raises(TargetdRpcError) as raised_wrong:
                wrong.get_status()
            assert raised_wrong.value.code is StatusCode.UNAUTHENTICATED
        with TargetClient.create(options(process.address, auth_token="s3cret")) as client:
            assert client.get_offers({"request": magician()})["response"].execute.mboxes[0].name


def test_tls(tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    key_path, cert_path = tmp_path / "key.pem", tmp_path / "cert.pem"
    cert.private_key_pem.write_to_path(str(key_path))
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    extra = ["--tls-cert", str(cert_path), "--tls-key", str(key_path)]
    with TargetdProcess(on_device(tmp_path / "data", *extra)) as process:
        settings = options(process.address, tls_root_certificates=ca.cert_pem.bytes())
        with TargetClient.create(settings) as client:
            assert client.get_status()["ready"]
        plaintext = TargetClient.create(options(process.address, timeout=2000))
        with plaintext, pytest.raises(TargetdRpcError):
            plaintext.get_status()


def test_events_and_reconnect_after_a_restart_on_the_same_port(tmp_path: Path) -> None:
    ready: list[None] = []
    states: list[Any] = []
    shutdowns: list[Any] = []
    events = {
        "client_ready": lambda: ready.append(None),
        "state": states.append,
        "shutdown": shutdowns.append,
    }
    first = TargetdProcess(on_device(tmp_path / "data")).start()
    address = first.address
    client = TargetClient.create(
        options(address, events=events, reconnect_initial_delay=50, reconnect_max_delay=400)
    )
    try:
        eventually(lambda: len(ready) == 1)
        assert states[0].ready is True and states[0]["ready"] is True
        first.stop()
        eventually(lambda: len(shutdowns) == 1)
        second = TargetdProcess(on_device(tmp_path / "data", "--listen", address)).start()
        try:
            assert second.address == address
            eventually(lambda: len(ready) == 2, timeout=20)
            assert len(states) >= 2
            assert client.get_offers({"request": magician()})["response"].execute.mboxes[0].name
        finally:
            second.stop()
    finally:
        client.close()
        first.stop()
    assert len(ready) == 2


def test_subscribe_events_stream(server: TargetdProcess) -> None:
    with TargetClient.create(options(server.address)) as client:
        stream = client.subscribe_events(["client_ready"])
        first = next(stream)
        second = next(stream)
        stream.close()
        assert first.type == "state" and first.ready is True
        assert second.type == "client_ready"


async def test_async_client(server: TargetdProcess) -> None:
    ready = asyncio.Event()
    seen: list[str] = []

    async def on_ready() -> None:
        ready.set()

    async with AsyncTargetClient.create(
        options(server.address, events={"client_ready": on_ready, "state": lambda e: seen.append(e.type)})
    ) as client:
        await asyncio.wait_for(ready.wait(), 10)
        assert seen == ["state"]
        called: list[Any] = []
        response = await client.get_offers({"request": magician(), "callback": called.append})
        assert called == [response]
        assert response["response"].execute.mboxes[0].name == "mbox-magician"
        attributes = await client.get_attributes(["mbox-magician"])
        assert isinstance(attributes.get_value("mbox-magician", "doMagic"), bool)
        assert (await client.get_status())["ready"]
        with pytest.raises(InvalidArgumentError) as raised:
            await client.get_offers({"request": DeliveryRequest(execute=ExecuteRequest())})
        assert raised.value.field == "request.execute"
        stream = client.subscribe_events()
        first = await anext(stream)
        await stream.aclose()
        assert first.type == "state"

        async def subscribers() -> int:
            return int((await client.get_status())["subscriber_count"]) == 1 or None  # type: ignore[return-value]

        await eventually_async(subscribers)


async def test_async_client_reconnects_after_a_restart(tmp_path: Path) -> None:
    ready: list[None] = []
    first = TargetdProcess(on_device(tmp_path / "data")).start()
    address = first.address
    second: TargetdProcess | None = None
    client = AsyncTargetClient.create(
        options(
            address,
            events={"client_ready": lambda: ready.append(None)},
            reconnect_initial_delay=50,
            reconnect_max_delay=400,
        )
    )
    try:

        async def count(n: int) -> bool:
            return len(ready) == n

        await eventually_async(lambda: count(1))
        first.stop()
        second = TargetdProcess(on_device(tmp_path / "data", "--listen", address)).start()
        await eventually_async(lambda: count(2), timeout=20)
        response = await client.get_offers({"request": magician()})
        assert response["response"].execute.mboxes[0].name == "mbox-magician"
    finally:
        await client.close()
        first.stop()
        if second is not None:
            second.stop()


def test_close_from_a_callback_does_not_deadlock(server: TargetdProcess) -> None:
    client = TargetClient.create(options(server.address))
    closed = threading.Event()

    def close_now(result: Any) -> None:
        client.close()
        closed.set()

    future = client.get_offers({"request": magician(), "callback": close_now})
    assert future.result(timeout=10)["response"].execute.mboxes[0].name == "mbox-magician"
    assert closed.wait(10)
    with pytest.raises(TargetClientError, match="closed"):
        client.get_offers({"request": magician()})


def test_heartbeat_events(tmp_path: Path) -> None:
    beats: list[Any] = []
    with TargetdProcess(on_device(tmp_path / "data", "--heartbeat-interval", "0.1")) as process:
        client = TargetClient.create(options(process.address, events={"heartbeat": beats.append}))
        with client:
            eventually(lambda: len(beats) >= 2)
    assert beats[0].type == "heartbeat" and beats[0]["sequence"] >= 0
