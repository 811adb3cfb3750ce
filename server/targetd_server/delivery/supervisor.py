"""The serving process's side of the notification sender: it starts the sender process
(``python -m targetd_server.delivery.sender OUTBOX_FILE``, :mod:`.sender`), reads its status lines, restarts
it with backoff when it dies, and tells GetStatus, the metrics and the logs what state it is in.

States (``OutboxStatus.sender_state``): ``starting`` (spawned, no report yet), ``running`` (reporting;
``flushing`` while it drains at shutdown, ``storage_error`` while the store fails, ``paused`` while every
Delivery API host it sends to keeps failing: circuit open, see :mod:`.breaker`), ``backing_off`` (it
died: restarted after ``RESTART_BASE_S`` doubling to ``RESTART_MAX_S``; back to the base once a sender
ran ``STABLE_S``), ``stopped``. Each death is logged as an error with its exit status and counted
(``targetd_outbox_sender_restarts_total``).

Stop: :meth:`SenderSupervisor.stop` closes the sender's stdin (its stop signal, as when the serving
process dies: so it never outlives a killed server by more than its flush); the sender flushes for
``outbox_flush_timeout`` and exits. After that long plus ``STOP_SLACK_S`` it is killed; rows not delivered
stay on disk for the next start.

Loop affinity: create, :meth:`start`, :meth:`stop` on the serving event loop; the properties anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Final

from targetd_server.config import Settings
from targetd_server.delivery import outbox_metrics as metrics
from targetd_server.delivery.sender_protocol import settings_line

log = logging.getLogger("targetd.sender")

__all__ = ["RESTART_BASE_S", "RESTART_MAX_S", "SenderSupervisor"]

RESTART_BASE_S: Final = 0.5
RESTART_MAX_S: Final = 30.0
STABLE_S: Final = 60.0
STOP_SLACK_S: Final = 3.0
MAX_LINE: Final = 64 * 1024


class SenderSupervisor:
    """Runs and watches one sender process for the outbox file ``path``; see the module docstring."""

    def __init__(self, settings: Settings, path: Path) -> None:
        self._settings = settings
        self._path = path
        self.state = "stopped"
        self.restarts = 0
        self.pid = 0
        self.delivered_rows = 0  # since this serving process started, across sender processes
        self.delivered_notifications = 0
        self.last_error = ""
        self._last: dict[str, Any] = {}  # the current sender's last report
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    @property
    def healthy(self) -> bool:
        """Whether a sender is up and its store works (not dead, not failing its store): it delivers, or
        waits for a failing Delivery API (``paused``)."""
        return self.state in ("running", "flushing", "paused")

    def start(self) -> None:
        """Start supervising (the first sender is spawned at once)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._supervise())

    async def _supervise(self) -> None:
        backoff = RESTART_BASE_S
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                rc = await self._run_once()
            except OSError as exc:  # cannot spawn (resources): back off as for a death
                rc = None
                self.last_error = f"cannot start the sender process: {exc}"
                log.error("outbox: %s", self.last_error)
            self.pid = 0
            metrics.OUTBOX_SENDER_UP.set(0)
            if self._stopping.is_set():
                break
            if time.monotonic() - started >= STABLE_S:
                backoff = RESTART_BASE_S
            self.restarts += 1
            metrics.OUTBOX_SENDER_RESTARTS.inc()
            self.state = "backing_off"
            if rc is not None:
                self.last_error = f"the sender process exited with status {rc}"
                log.error("outbox: %s; restarting it in %.1f s", self.last_error, backoff)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), backoff)
            backoff = min(RESTART_MAX_S, backoff * 2)
        self.state = "stopped"

    async def _run_once(self) -> int:
        self.state = "starting"
        self._last = {}
        proc = self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "targetd_server.delivery.sender",
            str(self._path),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=MAX_LINE,
        )
        self.pid = proc.pid
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(settings_line(self._settings))
        with contextlib.suppress(ConnectionError):
            await proc.stdin.drain()
        log.info("outbox: sender process %d started for %s", proc.pid, self._path)
        while True:
            try:
                line = await proc.stdout.readline()
            except ValueError:  # a line over MAX_LINE: not ours to parse
                continue
            if not line:
                break
            self._report(line)
        return await proc.wait()

    def _report(self, line: bytes) -> None:
        try:
            report: dict[str, Any] = json.loads(line)
        except ValueError:
            return
        last = self._last
        rows = int(report.get("delivered_rows", 0))
        notifications = int(report.get("delivered_notifications", 0))
        new_rows = rows - int(last.get("delivered_rows", 0))
        new_notifications = notifications - int(last.get("delivered_notifications", 0))
        self.delivered_rows += new_rows
        self.delivered_notifications += new_notifications
        metrics.OUTBOX_DELIVERED.inc(max(0, new_rows))
        metrics.OUTBOX_NOTIFICATIONS_DELIVERED.inc(max(0, new_notifications))
        for kind, count in (report.get("failures") or {}).items():
            metrics.outbox_send_failures(str(kind)).inc(
                max(0, int(count) - int((last.get("failures") or {}).get(kind, 0)))
            )
        for kind, count in (report.get("quarantined") or {}).items():
            metrics.outbox_sender_quarantined(str(kind)).inc(
                max(0, int(count) - int((last.get("quarantined") or {}).get(kind, 0)))
            )
        metrics.OUTBOX_IN_FLIGHT.set(int(report.get("in_flight", 0)))
        metrics.OUTBOX_CIRCUITS_OPEN.set(len(report.get("open_hosts") or ()))
        self._last = report
        self.state = str(report.get("state", "running"))
        metrics.OUTBOX_SENDER_UP.set(1 if self.healthy else 0)
        if report.get("last_error"):
            self.last_error = str(report["last_error"])

    async def stop(self) -> None:
        """Stop the sender after its flush (see the module docstring). Safe to call more than once."""
        self._stopping.set()
        proc = self._proc
        if proc is not None and proc.returncode is None:
            # The end of its stdin is the sender's stop signal: seen even while it is still starting (a
            # SIGTERM then would end it before its handler is installed, without a flush).
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), self._settings.outbox_flush_timeout + STOP_SLACK_S)
            except TimeoutError:
                log.error("outbox: the sender process %d did not stop in time; killed", proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if self._task is not None:
            await self._task
            self._task = None
        self.state = "stopped"
