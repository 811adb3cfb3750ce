"""``targetd serve --workers N``: N full replicas of the service in N worker processes that share the
listening port (``SO_REUSEPORT``, on only in this mode), under this supervisor.

* The supervisor checks the port once (in use: :class:`ListenError`), starts worker 0 on the configured
  address, learns its port (port 0 picks one) and starts the others on that port. Each worker is a whole
  targetd (``service.serve``): its own Target client, artifact polling, event bus and outbox file (claimed
  with ``flock`` under ``data_dir``; a restarted worker adopts the rows of a dead one's file).
* Metrics: before the first worker starts, ``PROMETHEUS_MULTIPROC_DIR`` is set to a fresh directory
  (``data_dir/metrics/<supervisor pid>``, removed at exit), so every worker writes its metrics there and the
  supervisor's admin port (``metrics_listen``) serves them all (``targetd_server.metrics``). ``/readyz`` is
  200 while at least one worker is live and every live worker reports ready.
* Supervision: a worker that exits while the supervisor is not stopping is restarted on the same port,
  after a backoff of 0.1 s doubling up to :data:`MAX_BACKOFF` while workers keep dying within
  :data:`STABLE_SECONDS` of their start (reset once one lives longer). Its live gauges are dropped
  (``mark_process_dead``); its counters stay in the sums.
* SIGTERM/SIGINT: every worker gets SIGTERM and its graceful stop (``grace_period``, the outbox flush, and
  :data:`STOP_MARGIN` more); a worker still running then is killed. A worker whose supervisor dies (its
  pipe closes) stops itself.

Processes are started with ``multiprocessing``'s *spawn* method (a fresh interpreter: gRPC is not
fork-safe); :class:`Settings` travels pickled. Loop affinity: the supervisor runs on its own asyncio loop
(:func:`run`); nothing here is called from a worker's loop except :func:`_worker_main`'s callbacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Final

from prometheus_client import CollectorRegistry, multiprocess
from prometheus_client.metrics_core import Metric

from targetd_server.config import Settings
from targetd_server.errors import ConfigError
from targetd_server.logs import configure_logging
from targetd_server.service import check_listen, serve, split_address, start_admin

log = logging.getLogger("targetd.workers")

__all__ = ["MAX_BACKOFF", "STABLE_SECONDS", "STOP_MARGIN", "run"]

MAX_BACKOFF: Final = 10.0
STABLE_SECONDS: Final = 30.0
STOP_MARGIN: Final = 10.0
START_TIMEOUT: Final = 60.0  # a worker that has not bound its port by then is a failed start


# ------------------------------------------------------------------------------------------ the worker


def _worker_main(settings: Settings, index: int, conn: Connection) -> None:
    """A worker process: the whole service on ``settings.listen`` with ``SO_REUSEPORT``; reports its bound
    port on ``conn`` and stops (SIGTERM to itself) when ``conn`` closes (the supervisor is gone)."""
    configure_logging(settings.log_level, settings.log_format)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_WorkerField(index))

    def listening(port: int) -> None:
        conn.send(port)
        loop = asyncio.get_running_loop()
        loop.add_reader(conn.fileno(), lambda: os.kill(os.getpid(), signal.SIGTERM))

    try:
        asyncio.run(serve(settings, announce=False, on_listening=listening))
    except ConfigError as error:  # found while starting (a TLS file, data_dir): said once, no traceback
        print(f"targetd: worker {index}: configuration error: {error}", file=sys.stderr)
        sys.exit(2)


class _WorkerField(logging.Filter):
    """Adds ``worker: <index>`` to every log record of a worker."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self.index
        return True


# ------------------------------------------------------------------------------------------ the supervisor


@dataclasses.dataclass
class _Worker:
    index: int
    process: BaseProcess
    conn: Connection
    started: float
    port: asyncio.Future[int]
    exited: asyncio.Future[int | None]


class Supervisor:
    """Starts, watches and stops the workers (see the module docstring). One per process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.host, self.port = split_address(settings.listen)
        self.metrics_dir = settings.data_path / "metrics" / str(os.getpid())
        self._context = multiprocessing.get_context("spawn")
        self._workers: dict[int, _Worker] = {}
        self._stopping = False
        self._started = False  # every worker has bound its port once
        self._backoff = 0.0
        self._restarts: set[asyncio.Task[None]] = set()
        self._collector: _WorkersCollector | None = None  # made with the directory, by run()

    # -------------------------------------------------------------------------------- workers

    def _start(self, index: int, listen: str) -> _Worker:
        loop = asyncio.get_running_loop()
        ours, theirs = self._context.Pipe()
        settings = dataclasses.replace(self.settings, listen=listen, metrics_listen=None)
        process = self._context.Process(
            target=_worker_main, args=(settings, index, theirs), name=f"targetd-worker-{index}", daemon=False
        )
        process.start()
        theirs.close()
        worker = _Worker(index, process, ours, time.monotonic(), loop.create_future(), loop.create_future())
        self._workers[index] = worker

        def readable() -> None:
            try:
                port = ours.recv()
            except (EOFError, OSError):
                loop.remove_reader(ours.fileno())
                return
            if not worker.port.done():
                worker.port.set_result(int(port))

        def exited() -> None:
            loop.remove_reader(process.sentinel)
            with contextlib.suppress(ValueError, OSError):
                loop.remove_reader(ours.fileno())
            process.join(0)
            if not worker.port.done():
                worker.port.set_exception(RuntimeError(f"worker {index} exited ({process.exitcode})"))
                worker.port.exception()  # retrieved: a restarted worker's start is awaited by no one
            worker.exited.set_result(process.exitcode)
            self._exited(worker)

        loop.add_reader(ours.fileno(), readable)
        loop.add_reader(process.sentinel, exited)
        log.info("worker started", extra={"worker": index, "pid": process.pid})
        return worker

    def _exited(self, worker: _Worker) -> None:
        if worker.process.pid is not None:
            multiprocess.mark_process_dead(worker.process.pid, str(self.metrics_dir))  # type: ignore[no-untyped-call]
        worker.conn.close()
        if self._stopping or not self._started or self._workers.get(worker.index) is not worker:
            return  # (a worker that dies during the start makes the start fail: no restart)
        lived = time.monotonic() - worker.started
        stable = lived >= STABLE_SECONDS or not self._backoff
        self._backoff = 0.1 if stable else min(MAX_BACKOFF, 2 * self._backoff)
        log.warning(
            "worker exited; restarting",
            extra={"worker": worker.index, "exit_code": worker.process.exitcode, "delay_s": self._backoff},
        )
        task = asyncio.get_running_loop().create_task(self._restart(worker.index, self._backoff))
        self._restarts.add(task)
        task.add_done_callback(self._restarts.discard)

    async def _restart(self, index: int, delay: float) -> None:
        await asyncio.sleep(delay)
        if not self._stopping:
            self._start(index, f"{self._host_text()}:{self.port}")

    def _host_text(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    def worker_pids(self) -> set[str]:
        """The pids of the workers running now, as the ``pid`` labels of per-worker gauges spell them."""
        return {str(w.process.pid) for w in self._workers.values() if not w.exited.done() and w.process.pid}

    def ready(self) -> bool:
        """Whether at least one worker is live and every live worker reports ``targetd_ready`` 1."""
        if self._collector is None:
            return False
        values = [
            sample.value
            for family in self._collector.collect()
            if family.name == "targetd_ready"
            for sample in family.samples
        ]
        return bool(values) and all(value == 1 for value in values)

    # -------------------------------------------------------------------------------- lifecycle

    async def run(self, *, announce: bool = True) -> int:
        """Start the workers, serve the admin port, supervise until SIGTERM/SIGINT, stop. Raises
        :class:`ListenError` when the port (or the admin port) is in use."""
        check_listen(self.settings.listen)
        for extra in (self.settings.metrics_listen, self.settings.http_listen):
            if extra:  # the admin port (ours) and the HTTP edge's (the workers share it)
                check_listen(extra)
        shutil.rmtree(self.metrics_dir, ignore_errors=True)
        self.metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(self.metrics_dir)
        self._collector = collector = _WorkersCollector(str(self.metrics_dir), self.worker_pids)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        admin = None
        try:
            first = self._start(0, self.settings.listen)
            self.port = await asyncio.wait_for(first.port, START_TIMEOUT)
            shared = f"{self._host_text()}:{self.port}"
            others = [self._start(index, shared) for index in range(1, self.settings.workers)]
            await asyncio.wait_for(asyncio.gather(*(w.port for w in others)), START_TIMEOUT)
            self._started = True
            if self.settings.metrics_listen:
                registry = CollectorRegistry()
                registry.register(collector)
                admin = await start_admin(self.settings.metrics_listen, registry, self.ready)
            address = f"{self._host_text()}:{self.port}"
            log.info("listening", extra={"address": address, "workers": self.settings.workers})
            if announce:
                print(f"targetd listening on {address}", flush=True)
                if admin is not None:
                    admin_host = (self.settings.metrics_listen or "").rsplit(":", 1)[0]
                    print(f"targetd admin listening on {admin_host}:{admin.port}", flush=True)
            await stop.wait()
            log.info("shutting down", extra={"workers": len(self._workers)})
        except (RuntimeError, TimeoutError) as exc:
            log.error("workers failed to start: %s", exc)
            return 1
        finally:
            await self._stop_workers()
            if admin is not None:
                await admin.stop()
            shutil.rmtree(self.metrics_dir, ignore_errors=True)
        log.info("stopped")
        return 0

    async def _stop_workers(self) -> None:
        self._stopping = True
        for task in list(self._restarts):
            task.cancel()
        workers = [w for w in self._workers.values() if not w.exited.done()]
        for worker in workers:
            with contextlib.suppress(ProcessLookupError):
                worker.process.terminate()
        limit = self.settings.grace_period + self.settings.outbox_flush_timeout + STOP_MARGIN
        _, late = await asyncio.wait([w.exited for w in workers], timeout=limit) if workers else ((), ())
        for worker in workers:
            if not worker.exited.done():
                log.warning("worker did not stop in time; killed", extra={"worker": worker.index})
                worker.process.kill()
        if late:
            await asyncio.wait(late, timeout=STOP_MARGIN)


class _WorkersCollector:
    """The workers' metrics (prometheus-client's MultiProcessCollector over the directory), keeping of the
    per-worker gauges (``liveall``: a ``pid`` label) only the series of live workers: helper processes a
    worker starts (the outbox sender) import the same metrics and would otherwise add series of their own
    (e.g. ``targetd_ready`` 0)."""

    def __init__(self, path: str, pids: Callable[[], set[str]]) -> None:
        self._inner = multiprocess.MultiProcessCollector(None, path=path)  # type: ignore[no-untyped-call]
        self._pids = pids

    def collect(self) -> Iterable[Metric]:
        live = self._pids()
        for family in self._inner.collect():  # type: ignore[no-untyped-call]
            if any("pid" in sample.labels for sample in family.samples):
                family.samples = [s for s in family.samples if s.labels.get("pid", "") in live]
            yield family


def run(settings: Settings, *, announce: bool = True) -> int:
    """Run ``settings.workers`` workers under a supervisor until SIGTERM/SIGINT; the exit status (0, or 1
    when the workers could not start). Raises ``ListenError`` when the address is in use."""
    return asyncio.run(Supervisor(settings).run(announce=announce))
