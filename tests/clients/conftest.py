"""Fixtures of the client tests: one local edge stand-in and one on-device targetd per test module.

(Modules that need a fresh pair per test define their own ``edge`` / ``server``.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.delivery.support import EdgeProcess, targetd
from tests.support import TargetdProcess


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeProcess]:
    with EdgeProcess(tmp_path_factory.mktemp("edge")) as process:
        yield process


@pytest.fixture(scope="module")
def server(edge: EdgeProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TargetdProcess]:
    with targetd(edge, tmp_path_factory.mktemp("targetd"), "on-device") as process:
        yield process
