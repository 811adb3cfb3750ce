"""Hybrid routing and the on-device helpers of the remote side (geo lookup), against real processes."""

from __future__ import annotations

from pathlib import Path

import grpc

from targetd.v1 import decisioning_service_pb2 as pb
from targetd.v1 import decisioning_service_pb2_grpc as pb_grpc
from targetd.v1 import delivery_pb2
from targetd_client.json_format import message_to_dict
from tests.delivery.grpcutil import Client
from tests.delivery.support import EdgeProcess, targetd

CONTEXT = {"channel": "web", "address": {"url": "https://www.acme.example/"}}
ON_DEVICE = delivery_pb2.DECISIONING_METHOD_ON_DEVICE
SERVER_SIDE = delivery_pb2.DECISIONING_METHOD_SERVER_SIDE


def test_hybrid_local_when_everything_is_local(clean_edge: EdgeProcess, data_dir: Path) -> None:
    with targetd(clean_edge, data_dir, "hybrid") as proc, Client(proc) as client:
        envelope = client.offers({"context": CONTEXT, "execute": {"mboxes": [{"name": "home", "index": 1}]}})
        assert envelope.meta.decisioning_method == ON_DEVICE
        assert list(envelope.meta.remote_mboxes) == []
        # pageLoad counts as target-global-mbox, which the artifact has locally.
        page = client.offers({"context": CONTEXT, "execute": {"pageLoad": {}}})
        assert page.meta.decisioning_method == ON_DEVICE
        assert page.response.execute.page_load.options[0].type == delivery_pb2.OPTION_TYPE_ACTIONS
        views = client.offers({"context": CONTEXT, "prefetch": {"views": [{"name": "checkout"}]}})
        assert views.meta.decisioning_method == ON_DEVICE
        assert clean_edge.decision_requests() == []  # nothing went to the Delivery API for decisions
        # ... but the display notifications of the executes did (through the outbox).
        received = clean_edge.wait_notifications(2)
        assert {r["notification"]["mbox"]["name"] for r in received} == {"home", "target-global-mbox"}


def test_hybrid_remote_when_anything_is_remote(clean_edge: EdgeProcess, data_dir: Path) -> None:
    with targetd(clean_edge, data_dir, "hybrid") as proc, Client(proc) as client:
        envelope = client.offers(
            {
                "context": CONTEXT,
                "execute": {
                    "mboxes": [{"name": "home", "index": 1}, {"name": "recommendations", "index": 2}]
                },
                "prefetch": {"mboxes": [{"name": "not-in-the-artifact", "index": 1}]},
            }
        )
        assert envelope.meta.decisioning_method == SERVER_SIDE
        assert list(envelope.meta.remote_mboxes) == ["recommendations", "not-in-the-artifact"]
        [sent] = clean_edge.decision_requests()  # the whole request went remote
        names = [m["name"] for m in sent["body"]["execute"]["mboxes"]]
        assert names == ["home", "recommendations"]
        assert sent["body"]["prefetch"]["mboxes"][0]["name"] == "not-in-the-artifact"
        # A per-call method overrides the configured one.
        local = client.stub.GetOffers(
            pb.GetOffersRequest(
                request=envelope.request, decisioning_method=delivery_pb2.DECISIONING_METHOD_ON_DEVICE
            ),
            timeout=10,
        )
        assert local.envelope.meta.decisioning_method == ON_DEVICE
        assert local.envelope.response.status == 206  # on-device with remote dependencies


def test_hybrid_goes_remote_before_the_artifact_is_ready(clean_edge: EdgeProcess, data_dir: Path) -> None:
    missing = f"{clean_edge.base}/nobody/production/v1/rules.json"  # 404: never ready
    with (
        targetd(clean_edge, data_dir, "hybrid", "--artifact-location", missing) as proc,
        Client(proc, wait_ready=False) as client,
    ):
        assert not client.stub.GetStatus(pb.GetStatusRequest(), timeout=5).ready
        envelope = client.offers({"context": CONTEXT, "execute": {"mboxes": [{"name": "home", "index": 1}]}})
        assert envelope.meta.decisioning_method == SERVER_SIDE
        assert len(clean_edge.decision_requests()) == 1
        # on-device, by contrast, is refused with UNAVAILABLE while not ready
        try:
            client.stub.GetOffers(
                pb.GetOffersRequest(request=envelope.request, decisioning_method=ON_DEVICE), timeout=5
            )
            raise AssertionError("on-device succeeded before the artifact was ready")
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.UNAVAILABLE


def _geo_banner(client: Client, ip: str | None) -> dict[str, object]:
    context: dict[str, object] = {"channel": "web"}
    if ip:
        context["geo"] = {"ipAddress": ip}
    envelope = client.offers(
        {"context": context, "execute": {"mboxes": [{"name": "geo-banner", "index": 1}]}}
    )
    content: dict[str, object] = message_to_dict(envelope.response)["execute"]["mboxes"][0]["options"][0][
        "content"
    ]
    return content


def test_on_device_geo_lookup(clean_edge: EdgeProcess, data_dir: Path) -> None:
    with targetd(clean_edge, data_dir, "on-device") as proc, Client(proc) as client:
        events = pb_grpc.DecisioningServiceStub(client.channel).SubscribeEvents(
            pb.SubscribeEventsRequest(types=[pb.EVENT_TYPE_GEO_LOCATION_UPDATED]), timeout=30
        )
        assert _geo_banner(client, "203.0.113.10")["region"] == "us"
        assert _geo_banner(client, "198.51.100.7")["region"] == "other"  # GB in the edge's table
        assert _geo_banner(client, None)["region"] == "other"  # no IP: no lookup
        geo_events = []
        for response in events:
            if response.event.type == pb.EVENT_TYPE_GEO_LOCATION_UPDATED:
                geo_events.append(response.event.geo_context)
            if len(geo_events) == 2:
                break
        events.cancel()
        assert [g.country_code for g in geo_events] == ["US", "GB"]
        assert geo_events[0].ip_address == "203.0.113.10"

        # A failing or hanging geo service: the decision is made without geo, promptly.
        clean_edge.fault(status=500, path="/v1/geo")
        assert _geo_banner(client, "192.0.2.1")["region"] == "other"
        clean_edge.fault(status=0, delay_ms=5000, path="/v1/geo")  # longer than geo_timeout (1000 ms)
        assert _geo_banner(client, "192.0.2.2")["region"] == "other"
        clean_edge.clear_fault()
        # A cached answer needs no lookup: it works while the geo service fails.
        clean_edge.fault(status=500, path="/v1/geo")
        assert _geo_banner(client, "203.0.113.10")["region"] == "us"


def test_hybrid_get_attributes_local_and_remote(clean_edge: EdgeProcess, data_dir: Path) -> None:
    with targetd(clean_edge, data_dir, "hybrid") as proc, Client(proc) as client:
        local = client.stub.GetAttributes(pb.GetAttributesRequest(mbox_names=["product1"]), timeout=10)
        assert local.envelope.meta.decisioning_method == ON_DEVICE
        assert local.attributes["product1"].fields["discount"].number_value == 10
        remote = client.stub.GetAttributes(
            pb.GetAttributesRequest(mbox_names=["product1", "recommendations"]), timeout=10
        )
        assert remote.envelope.meta.decisioning_method == SERVER_SIDE
        assert list(remote.envelope.meta.remote_mboxes) == ["recommendations"]
        assert remote.attributes["product1"].fields["showReviews"].bool_value is True
        assert "recommendations" in remote.attributes  # answered (empty) by the Delivery API
