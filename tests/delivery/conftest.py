"""Fixtures: one local edge stand-in process per module (state cleared per test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.delivery.support import EdgeProcess


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    with EdgeProcess(tmp_path_factory.mktemp("edge")) as process:
        yield process


@pytest.fixture
def clean_edge(edge: EdgeProcess) -> EdgeProcess:
    edge.clear_fault()
    edge.call("DELETE", "/_edge/notifications")
    return edge


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "targetd"
