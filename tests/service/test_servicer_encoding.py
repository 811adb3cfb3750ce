"""The servicer's unary methods return their replies encoded (service/servicer.py): the envelope replies
are framed by hand, so their bytes must be exactly protobuf's own for every length of envelope (a
length varint of one, two and three bytes), and they must decode back to the same message."""

from __future__ import annotations

import pytest

from targetd.v1 import decisioning_service_pb2 as pb
from targetd_server.service.servicer import envelope_reply


def _envelope(payload_chars: int) -> pb.TargetDeliveryResponse:
    envelope = pb.TargetDeliveryResponse()
    envelope.response.request_id = "r" * payload_chars
    envelope.response.status = 200
    envelope.target_cookie.name = "mbox"
    return envelope


@pytest.mark.parametrize("payload_chars", [0, 1, 100, 126, 127, 128, 300, 16_383, 16_384, 70_000])
def test_an_envelope_reply_is_protobufs_own_encoding(payload_chars: int) -> None:
    envelope = _envelope(payload_chars)
    for reply_type in (pb.GetOffersResponse, pb.SendNotificationsResponse):
        expected = reply_type(envelope=envelope).SerializeToString()
        assert envelope_reply(envelope) == expected
        assert reply_type.FromString(envelope_reply(envelope)).envelope == envelope


def test_an_empty_envelope_is_still_sent_as_a_present_field() -> None:
    # protobuf writes a set-but-empty submessage as tag + zero length; a reply must say "envelope present"
    reply = pb.GetOffersResponse.FromString(envelope_reply(pb.TargetDeliveryResponse()))
    assert reply.HasField("envelope")
