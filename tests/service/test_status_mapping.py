"""The one place where domain errors become gRPC status codes (service/status.py): a domain error keeps
its code and message; anything else is a bug — INTERNAL, logged once with an error id the caller gets."""

from __future__ import annotations

import logging
from typing import Any

import grpc
import pytest

from targetd_server.errors import InvalidRequestError
from targetd_server.service.status import maps_errors


class _Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


class _Context:
    def __init__(self) -> None:
        self.trailing: Any = ()

    def set_trailing_metadata(self, metadata: Any) -> None:
        self.trailing = metadata

    async def abort(self, code: grpc.StatusCode, details: str = "") -> None:
        raise _Aborted(code, details)


class _Servicer:
    @maps_errors
    async def Invalid(self, request: Any, context: Any) -> None:
        raise InvalidRequestError("Either pageLoad or mboxes is required in execute", field="request.execute")

    @maps_errors
    async def Broken(self, request: Any, context: Any) -> None:
        raise KeyError("a bug")


async def test_a_domain_error_keeps_its_code_message_and_field() -> None:
    context = _Context()
    with pytest.raises(_Aborted) as raised:
        await _Servicer().Invalid(None, context)  # type: ignore[arg-type]
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details == "request.execute: Either pageLoad or mboxes is required in execute"
    assert ("targetd-field", "request.execute") in context.trailing


async def test_a_bug_is_internal_logged_once_with_the_error_id_the_caller_gets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="targetd.service")
    with pytest.raises(_Aborted) as raised:
        await _Servicer().Broken(None, _Context())  # type: ignore[arg-type]
    assert raised.value.code == grpc.StatusCode.INTERNAL
    error_id = raised.value.details.split("error id ")[1].split(")")[0]
    records = [r for r in caplog.records if r.name == "targetd.service"]
    assert len(records) == 1
    assert error_id in records[0].getMessage() and records[0].exc_info is not None
    assert "a bug" not in raised.value.details  # no internals in the caller's message
