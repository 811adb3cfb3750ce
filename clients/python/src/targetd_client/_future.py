"""The future returned by a call made with ``callback`` / ``err_callback``."""

from __future__ import annotations

import concurrent.futures
from typing import TypeVar

T = TypeVar("T")

__all__ = ["CallFuture"]


class CallFuture(concurrent.futures.Future[T]):
    """A ``concurrent.futures.Future`` that also answers to the SDK's ``multiprocessing`` ``AsyncResult``
    methods (``get``, ``wait``, ``ready``, ``successful``), so SDK code that waits on the call's result keeps
    working. It resolves after ``callback`` / ``err_callback`` has returned. Thread-safe."""

    def get(self, timeout: float | None = None) -> T:
        """The result (``timeout`` in seconds); raises the call's error, or ``TimeoutError``."""
        return self.result(timeout)

    def wait(self, timeout: float | None = None) -> None:
        """Wait until the call has finished (``timeout`` in seconds)."""
        concurrent.futures.wait([self], timeout)

    def ready(self) -> bool:
        """Whether the call has finished."""
        return self.done()

    def successful(self) -> bool:
        """Whether the call succeeded; raises ``ValueError`` while it is running (as ``AsyncResult``)."""
        if not self.done():
            raise ValueError("the call has not finished")
        return not self.cancelled() and self.exception() is None
