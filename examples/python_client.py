"""targetd from Python, with the interface of Adobe's Target Python SDK.

Run targetd first (``make run`` serves the bundled sample artifact on 127.0.0.1:50051), then:

    .venv/bin/python examples/python_client.py          # TARGETD_ADDRESS=host:port to point elsewhere
"""

from __future__ import annotations

import os
import threading
import time

from targetd_client import (
    DeliveryRequest,
    MboxRequest,
    MetricType,
    Notification,
    NotificationMbox,
    PrefetchRequest,
    TargetClient,
    TargetClientError,
)

ready = threading.Event()


def client_ready() -> None:
    print("client ready")
    ready.set()


def main() -> int:
    options = {
        "client": "acmeclient",
        "organization_id": "1234567890@AdobeOrg",
        "targetd_address": os.environ.get("TARGETD_ADDRESS", "127.0.0.1:50051"),
        "events": {"client_ready": client_ready},
    }
    with TargetClient.create(options) as client:
        if not ready.wait(10):
            print("targetd is not ready: is it running? (make run)")
            return 1
        try:
            request = DeliveryRequest(
                prefetch=PrefetchRequest(mboxes=[MboxRequest(name="product1", index=1)])
            )
            response = client.get_offers({"request": request})
            mbox = response["response"].prefetch.mboxes[0]
            option = mbox.options[0]
            print(f"{mbox.name}: {option.content} via {response['meta']['decisioning_method']}")

            notification = Notification(
                id="example-1",
                type=MetricType.DISPLAY,
                timestamp=int(time.time() * 1000),
                mbox=NotificationMbox(name=mbox.name, state=mbox.state),
                tokens=[option.event_token],
            )
            client.send_notifications({"request": DeliveryRequest(notifications=[notification])})
            print("display notification sent")

            attributes = client.get_attributes(["home"])
            print(f"home attributes: {attributes.as_object('home')}")
        except TargetClientError as error:
            print(f"targetd call failed: {error}")
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
