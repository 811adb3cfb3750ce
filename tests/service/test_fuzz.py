"""Property-based fuzzing of every RPC against a real ``targetd serve`` child process (issue 12).

Three kinds of input, drawn by hypothesis: messages generated from the protos' descriptors (any field,
enum values in and out of range, long strings, long lists), mutations of the bytes of valid requests, and
raw bytes, each sent through a generic channel method of each of the five RPCs. For every call: no UNKNOWN
or INTERNAL, an answer within the call's deadline; after the run: the server is alive and answers, its
peak RSS stayed under :data:`RSS_BOUND`, and its log holds no traceback.

The server runs hybrid (on-device rules from the local edge stand-in, the rest through its Delivery
API), so that both paths see the input. ``TARGETD_FUZZ_EXAMPLES`` scales the run (default: 2,400 calls,
about a minute on 2 cores).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from targetd.v1 import decisioning_service_pb2 as pb
from targetd.v1 import delivery_pb2
from tests.delivery.support import EdgeProcess, targetd_args
from tests.support import REPO, wait_for_announcement

EXAMPLES: Final = int(os.environ.get("TARGETD_FUZZ_EXAMPLES", "800"))
DEADLINE: Final = 5.0  # seconds per call
RSS_BOUND: Final = 600 * 1024 * 1024  # peak resident set of the server, bytes (it idles near 80 MB)
SERVICE: Final = "/targetd.v1.DecisioningService/"
REQUESTS: Final[dict[str, type[Message]]] = {
    "GetOffers": pb.GetOffersRequest,
    "GetAttributes": pb.GetAttributesRequest,
    "SendNotifications": pb.SendNotificationsRequest,
    "GetStatus": pb.GetStatusRequest,
    "SubscribeEvents": pb.SubscribeEventsRequest,
}
BUGS: Final = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DEADLINE_EXCEEDED}
MBOX_NAMES: Final = ["home", "product1", "target-global-mbox", "a", "", "x" * 300]
HYPOTHESIS: Final = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


class Server:
    """``targetd serve`` with its stderr in a file (read after the run)."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        self._log_file = log.open("w")
        cmd = [sys.executable, "-m", "targetd_server.main", "serve", "--listen", "127.0.0.1:0", *args]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=self._log_file, text=True, cwd=REPO, env=os.environ.copy()
        )
        address = wait_for_announcement(self.proc, "targetd listening on ", 30)
        if address is None:
            self.stop()
            raise RuntimeError(f"targetd did not start: {log.read_text()}")
        self.address = address

    def peak_rss(self) -> int:
        """VmHWM of the server process, bytes."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log_file.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("fuzz")
    with EdgeProcess(root / "edge") as edge:
        process = Server(
            targetd_args(edge, root / "data", "hybrid", "--log-level", "warning"), root / "targetd.log"
        )
        try:
            yield process
        finally:
            process.stop()


@pytest.fixture(scope="module")
def channel(server: Server) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.address) as chan:
        grpc.channel_ready_future(chan).result(timeout=10)
        yield chan


# ---------------------------------------------------------------------------------------- strategies

_INTS: Final = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
_TEXT = st.one_of(
    st.sampled_from(MBOX_NAMES),
    st.text(max_size=24),
    st.builds(lambda n: "y" * n, st.sampled_from([8192, 8193, 20_000])),
)


def _scalar(field: Any) -> st.SearchStrategy[Any]:  # (upb and python descriptors alike)
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        return _TEXT
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=32)
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(allow_nan=True, allow_infinity=True, width=32)
    if kind == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        valid = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(valid), st.integers(-(2**31), 2**31 - 1))
    low, high = _INTS[kind]
    return st.one_of(st.integers(low, high), st.sampled_from([low, high, 0, 1, -1 if low else 2]))


def _count(draw: st.DrawFn) -> int:
    return draw(st.one_of(st.integers(0, 3), st.sampled_from([0, 1, 49, 51, 101])))


def _fill(draw: st.DrawFn, message: Message, depth: int) -> None:
    descriptor = message.DESCRIPTOR
    for field in descriptor.fields:
        if draw(st.integers(0, 3)) != 0:  # about one field in four is set
            continue
        entry = field.message_type
        if field.is_repeated and entry is not None and entry.GetOptions().map_entry:
            value_field = entry.fields_by_name["value"]
            target = getattr(message, field.name)
            for _ in range(_count(draw)):
                key = draw(_TEXT)
                if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                    if depth > 0:
                        _fill(draw, target[key], depth - 1)
                else:
                    target[key] = draw(_scalar(value_field))
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if depth <= 0:
                continue
            if field.is_repeated:
                container = getattr(message, field.name)
                for _ in range(min(_count(draw), 60)):
                    _fill(draw, container.add(), depth - 1)
            else:
                _fill(draw, getattr(message, field.name), depth - 1)
                getattr(message, field.name).SetInParent()
        elif field.is_repeated:
            getattr(message, field.name).extend(draw(st.lists(_scalar(field), max_size=_count(draw))))
        else:
            setattr(message, field.name, draw(_scalar(field)))


@st.composite
def generated(draw: st.DrawFn) -> tuple[str, bytes]:
    """A message of one RPC's request type built field by field from the descriptors."""
    method = draw(st.sampled_from(sorted(REQUESTS)))
    message = REQUESTS[method]()
    _fill(draw, message, depth=6)
    return method, message.SerializeToString()


@st.composite
def valid(draw: st.DrawFn) -> tuple[str, Message]:
    """A plausible request of one RPC: named mboxes, views, parameters, trace, notifications."""
    method = draw(st.sampled_from(["GetOffers", "GetAttributes", "SendNotifications"]))
    request = delivery_pb2.DeliveryRequest()
    request.context.channel = delivery_pb2.CHANNEL_TYPE_WEB
    request.context.address.url = draw(st.sampled_from(["http://local-target-test/", "https://a.b/c?d=e"]))
    for index in range(draw(st.integers(0, 8))):
        mbox = request.execute.mboxes.add(name=draw(st.sampled_from(MBOX_NAMES[:4])), index=index)
        mbox.parameters.update(draw(st.dictionaries(st.text(max_size=8), st.text(max_size=16), max_size=3)))
    if draw(st.booleans()):
        request.prefetch.views.add(name=draw(st.sampled_from(["home", "contact", ""])))
    if draw(st.booleans()):
        request.trace.authorization_token = "token"
    notification = request.notifications.add(id=draw(st.text(max_size=8)))
    if draw(st.booleans()):
        notification.timestamp = draw(st.integers(0, 2**40))
        notification.type = delivery_pb2.METRIC_TYPE_DISPLAY
    call: Message
    if method == "GetOffers":
        call = pb.GetOffersRequest(request=request, session_id="fuzz")
    elif method == "GetAttributes":
        call = pb.GetAttributesRequest(
            request=request, mbox_names=draw(st.lists(st.sampled_from(MBOX_NAMES[:4])))
        )
    else:
        call = pb.SendNotificationsRequest(request=request)
    return method, call


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    """The bytes of a valid request with bytes flipped, inserted, deleted or cut."""
    method, message = draw(valid())
    data = bytearray(message.SerializeToString())
    for _ in range(draw(st.integers(1, 6))):
        operation = draw(st.sampled_from(["flip", "insert", "delete", "cut"]))
        position = draw(st.integers(0, max(0, len(data) - 1)))
        if operation == "flip" and data:
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif operation == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif operation == "delete" and data:
            del data[position : position + draw(st.integers(1, 8))]
        elif operation == "cut":
            del data[position:]
    return method, bytes(data)


raw = st.tuples(st.sampled_from(sorted(REQUESTS)), st.binary(max_size=512))


# ---------------------------------------------------------------------------------------- calls


def _identity(value: bytes) -> bytes:
    """Bytes in, bytes out: the fuzz tests send and read raw messages."""
    return value


def _call(channel: grpc.Channel, method: str, data: bytes) -> grpc.StatusCode:
    """Send ``data`` to ``method`` as it is; the status code of the answer (a stream's first event)."""
    try:
        if method == "SubscribeEvents":
            stream = channel.unary_stream(
                SERVICE + method, request_serializer=_identity, response_deserializer=_identity
            )(data, timeout=DEADLINE)
            try:
                next(stream)
            finally:
                stream.cancel()
        else:
            channel.unary_unary(
                SERVICE + method, request_serializer=_identity, response_deserializer=_identity
            )(data, timeout=DEADLINE)
    except grpc.RpcError as error:
        code: grpc.StatusCode = error.code()
        return code
    return grpc.StatusCode.OK


def _check(channel: grpc.Channel, method: str, data: bytes) -> None:
    code = _call(channel, method, data)
    if code == grpc.StatusCode.CANCELLED and method == "SubscribeEvents":
        return  # our own cancel after the first event
    assert code not in BUGS, f"{method} answered {code.name} to {data[:200]!r}"


@pytest.mark.timeout(300)
@HYPOTHESIS
@given(case=generated())
def test_generated_messages(channel: grpc.Channel, case: tuple[str, bytes]) -> None:
    _check(channel, *case)


@pytest.mark.timeout(300)
@HYPOTHESIS
@given(case=valid())
def test_valid_requests(channel: grpc.Channel, case: tuple[str, Message]) -> None:
    method, message = case
    _check(channel, method, message.SerializeToString())


@pytest.mark.timeout(300)
@HYPOTHESIS
@given(case=mutated())
def test_mutated_requests(channel: grpc.Channel, case: tuple[str, bytes]) -> None:
    _check(channel, *case)


@pytest.mark.timeout(300)
@HYPOTHESIS
@given(case=raw)
def test_raw_bytes(channel: grpc.Channel, case: tuple[str, bytes]) -> None:
    _check(channel, *case)


def test_the_server_survived_within_its_memory_bound(server: Server, channel: grpc.Channel) -> None:
    """Runs after the fuzz tests of this module (pytest keeps the file's order)."""
    assert server.proc.poll() is None, "the server is alive"
    status = pb.GetStatusResponse.FromString(
        channel.unary_unary(
            SERVICE + "GetStatus", request_serializer=_identity, response_deserializer=_identity
        )(pb.GetStatusRequest().SerializeToString(), timeout=DEADLINE)
    )
    assert status.version
    peak = server.peak_rss()
    assert peak < RSS_BOUND, f"peak RSS {peak / 2**20:.0f} MB"
    log = server.log.read_text()
    where = log.find("Traceback")
    assert where < 0, log[max(0, where - 500) : where + 4000]
    assert len(log) < 1_000_000, "invalid input is logged rate-limited"
