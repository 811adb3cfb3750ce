"""Test helpers: real targetd processes on ephemeral loopback ports, and ``eventually``."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[1]


def eventually(check: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.02) -> T:
    """Call ``check`` until it returns without raising (and not None/False); return its value.

    Raises the last AssertionError/exception when ``timeout`` passes. A bounded loop, never a bare sleep.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
            if value is not None and value is not False:
                return value
            error: BaseException = AssertionError(f"condition still false after {timeout}s")
        except Exception as exc:  # retried until the deadline
            error = exc
        if time.monotonic() >= deadline:
            raise error
        time.sleep(interval)


async def eventually_async(
    check: Callable[[], Awaitable[T]], *, timeout: float = 10.0, interval: float = 0.02
) -> T:
    """The asyncio form of :func:`eventually`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = await check()
            if value is not None and value is not False:
                return value
            error: BaseException = AssertionError(f"condition still false after {timeout}s")
        except Exception as exc:
            error = exc
        if time.monotonic() >= deadline:
            raise error
        await asyncio.sleep(interval)


def wait_for_announcement(proc: subprocess.Popen[str], prefix: str, timeout: float) -> str | None:
    """Read ``proc``'s stdout until a line starts with ``prefix`` (e.g. ``targetd listening on ``) and
    return the address that ends it; None when the process exits or ``timeout`` seconds pass first."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            line = proc.stdout.readline()
            if line.startswith(prefix):
                return line.split()[-1]
            if not line and proc.poll() is not None:
                return None
        elif proc.poll() is not None:
            return None
    return None


class TargetdProcess:
    """``targetd serve`` as a real child process on an ephemeral loopback port.

    Use as a context manager; ``address`` is ``127.0.0.1:<port>`` once started. Stops with SIGTERM.
    """

    def __init__(
        self, args: Sequence[str], *, env: dict[str, str] | None = None, start_timeout: float = 20.0
    ):
        self.args = list(args)
        self.env = {**os.environ, **(env or {})}
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[str] | None = None
        self.address = ""
        self.returncode: int | None = None

    def start(self) -> TargetdProcess:
        cmd = [sys.executable, "-m", "targetd_server.main", "serve", "--listen", "127.0.0.1:0", *self.args]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env, cwd=REPO
        )
        address = wait_for_announcement(self.proc, "targetd listening on ", self.start_timeout)
        if address:
            self.address = address
            return self
        self.stop(kill=True)
        raise RuntimeError(f"targetd did not start: {self.stderr()}")

    def stderr(self) -> str:
        if self.proc is None or self.proc.stderr is None or self.proc.poll() is None:
            return ""
        return self.proc.stderr.read()

    def stop(self, *, kill: bool = False, timeout: float = 30.0) -> int:
        """SIGTERM (or SIGKILL) and wait; returns the exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.returncode = self.proc.wait(timeout=timeout)
        return self.returncode

    def __enter__(self) -> TargetdProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        for stream in (self.proc.stdout, self.proc.stderr) if self.proc else ():
            if stream:
                stream.close()
