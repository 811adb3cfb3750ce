"""SPEC §5: the SDK's documented examples, verbatim apart from the import and the server address, against a
real targetd (on-device, artifact from the local edge stand-in, notifications to its Delivery API)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.delivery.support import EdgeProcess, targetd
from tests.support import TargetdProcess, eventually

POLL = ["--polling-interval", "200", "--polling-interval-minimum", "200"]


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[EdgeProcess]:
    with EdgeProcess(tmp_path / "edge") as process:
        yield process


@pytest.fixture
def server(edge: EdgeProcess, tmp_path: Path) -> Iterator[TargetdProcess]:
    with targetd(edge, tmp_path / "targetd", "on-device", *POLL) as process:
        yield process


def wait_ready(address: str) -> None:
    """Wait until targetd has applied its artifact (the SDK's ``create`` returns only then)."""
    from targetd_client import TargetClient

    with TargetClient.create({"client": "c", "organization_id": "o", "targetd_address": address}) as client:
        eventually(lambda: client.get_status()["ready"])


def test_events_example(
    server: TargetdProcess, edge: EdgeProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    from targetd_client import TargetClient

    # ---- SPEC §5, verbatim but for the import above, the server address and the placeholder's body
    def client_ready_callback():  # type: ignore[no-untyped-def]  # no argument: must still work
        print("client ready")

    def artifact_download_succeeded(event):  # type: ignore[no-untyped-def]
        print("The artifact was successfully downloaded from {}".format(event.artifact_location))  # noqa: UP032

    def artifact_download_failed(event):  # type: ignore[no-untyped-def]
        print("... {} ... {}".format(event.artifact_location, str(event.error)))  # noqa: UP032

    client_options = {"client": "acmeclient", "organization_id": "1234567890@AdobeOrg",
                      "events": {"client_ready": client_ready_callback,
                                 "artifact_download_succeeded": artifact_download_succeeded,
                                 "artifact_download_failed": artifact_download_failed},
                      "targetd_address": server.address}  # fmt: skip
    target_client = TargetClient.create(client_options)
    # ---- end of the example
    location = f"{edge.base}/acmeclient/production/v1/rules.json"
    seen: list[str] = []

    def printed(text: str) -> list[str] | None:
        seen.extend(capsys.readouterr().out.splitlines())
        return [line for line in seen if line.startswith(text)] or None

    try:
        eventually(lambda: printed("client ready"))
        eventually(lambda: printed(f"The artifact was successfully downloaded from {location}"))
        edge.fault(path="/acmeclient/", status=403, count=1)
        failed = eventually(lambda: printed(f"... {location} ... "))
        assert failed is not None and "Artifact request is not authorized" in failed[0]
        assert seen.count("client ready") == 1
    finally:
        target_client.close()


def test_prefetch_then_send_notifications_example(server: TargetdProcess, edge: EdgeProcess) -> None:
    from targetd_client import (
        DeliveryRequest,
        MboxRequest,
        MetricType,
        Notification,
        NotificationMbox,
        PrefetchRequest,
        TargetClient,
    )

    client_options = {"client": "acmeclient", "organization_id": "1234567890@AdobeOrg",
                      "targetd_address": server.address}  # fmt: skip
    wait_ready(server.address)
    target_client = TargetClient.create(client_options)
    try:
        # ---- SPEC §5, verbatim but for the placeholders (which mbox and option to read)
        mboxes = [MboxRequest(name="home"), MboxRequest(name="product1")]
        delivery_request = DeliveryRequest(prefetch=PrefetchRequest(mboxes=mboxes))
        response = target_client.get_offers({"request": delivery_request})
        state = response["response"].prefetch.mboxes[1].state
        event_token = response["response"].prefetch.mboxes[1].options[0].event_token

        notification = Notification(id="1", type=MetricType.DISPLAY, timestamp=1621530726000,
                                    mbox=NotificationMbox(name="product1", state=state),
                                    tokens=[event_token])  # fmt: skip
        target_client.send_notifications({"request": DeliveryRequest(notifications=[notification])})
        # ---- end of the example
        assert response["response"].prefetch.mboxes[1].name == "product1"
        assert event_token  # on-device prefetch carries no state (Target's edge adds it server-side)
        assert response["meta"]["decisioning_method"] == "on-device"
        received = eventually(
            lambda: [n for r in edge.notifications() for n in _notifications(r) if n.get("id") == "1"] or None
        )
        assert received is not None and received[0]["type"] == "display"
        assert received[0]["tokens"] == [event_token]
        assert received[0]["mbox"]["name"] == "product1"
        assert received[0]["mbox"].get("state") == state  # None: no state on-device
    finally:
        target_client.close()


def _notifications(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The notification of one entry of the edge stand-in's notification log."""
    notification = record.get("notification")
    return [notification] if isinstance(notification, dict) else []
