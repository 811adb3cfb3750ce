"""The artifact provider: fetch, validate and compile, swap atomically, persist, poll, and tell the bus.

Lifecycle: :meth:`ArtifactProvider.start` applies ``artifact_payload``, or the last-known-good disk copy
(HTTP locations), or reads a local file, at once; then a background task fetches the configured location:
at once when nothing was applied yet (a disk copy is revalidated at once too; never after a payload, even
a refused one — Node fetches nothing when given a payload but at its polling interval), then every
``polling_interval`` (with up to 10 % jitter, so that replicas spread out). A failed attempt publishes
``artifact_download_failed`` and is retried with exponential backoff (full jitter): indefinitely while no
artifact is applied, else up to :data:`MAX_RETRIES` times for retryable failures (5xx, network, timeout)
before waiting for the next poll. A fetched artifact is parsed, checked against the artifact
schema and compiled in a worker thread (:mod:`targetd_server.artifacts.building`) and installed with one
assignment of :attr:`ArtifactProvider.snapshot`; anything that fails on the way leaves the current
snapshot in place. Downloads are bounded (:class:`~targetd_server.artifacts.sources.HttpSource`: size as
sent and decompressed, the whole download's time). A refused revision (its ETag, or its digest) is not
downloaded again: the next fetches send it as ``If-None-Match`` and a 304 means "still refused" (no new
event), and with nothing applied yet the retries back off up to :data:`REJECTED_BACKOFF_CAP`.

Loop affinity: construct, start, stop and read on the server's event loop; the download is awaited on the
loop (aiohttp, :mod:`targetd_server.artifacts.sources`); blocking work (file I/O, JSON parsing, compiling)
runs in worker threads via ``asyncio.to_thread``, so the loop never blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Final

from targetd.v1 import decisioning_service_pb2 as pb
from targetd_server import metrics
from targetd_server.artifacts.building import Built, artifact_info, build
from targetd_server.artifacts.cache import DiskCache
from targetd_server.artifacts.snapshot import ArtifactSnapshot
from targetd_server.artifacts.sources import (
    ArtifactFetchError,
    Fetched,
    Source,
    artifact_location,
    initial_payload,
    is_remote,
    make_source,
)
from targetd_server.config import Settings
from targetd_server.engine import TelemetryProvider, geo_from_lookup
from targetd_server.events import EventBus

log = logging.getLogger("targetd.artifacts")

MAX_RETRIES: Final = 10  # retries of one poll for retryable failures (Node: 10)
BACKOFF_BASE: Final = 0.1  # seconds; doubles per attempt
BACKOFF_CAP: Final = 30.0  # seconds; also capped by the polling interval
REJECTED_BACKOFF_CAP: Final = 300.0  # seconds, after a refused artifact; also capped by the interval
JITTER: Final = 0.1  # polls run up to 10 % after the interval
SAVE_TIMEOUT: Final = 10.0  # seconds stop() waits for a cache write in progress


def effective_polling_interval(settings: Settings) -> int:
    """``polling_interval`` in ms as Node applies it: 0 stays off, else at least the minimum."""
    if settings.polling_interval == 0:
        return 0
    return max(settings.polling_interval_minimum, settings.polling_interval)


class ArtifactProvider:
    """Owns the current :class:`ArtifactSnapshot` and keeps it fresh; see the module docstring.

    ``on_applied`` is called on the loop after every install (the Target client uses it for readiness).
    """

    def __init__(
        self,
        settings: Settings,
        bus: EventBus,
        *,
        on_applied: Callable[[ArtifactSnapshot], None] | None = None,
        telemetry: TelemetryProvider | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.settings = settings
        self.location = artifact_location(settings)
        self.offline = settings.artifact_payload is not None or not is_remote(self.location)
        """True when the rules come from ``artifact_payload`` or a local file: no Target CDN involved."""
        self.polling_interval_ms = effective_polling_interval(settings)
        self.cache = DiskCache(settings.data_path / "artifacts")
        self.snapshot: ArtifactSnapshot | None = None
        """The artifact applied now (None before the first). Read it once per decision."""
        self.last_fetch_ns: int | None = None
        self.last_error: ArtifactFetchError | None = None
        self._bus = bus
        self._on_applied = on_applied
        self._telemetry = telemetry
        self._clock = clock
        self._source: Source | None = None
        self._task: asyncio.Task[None] | None = None
        self._downloads = 0
        self._stopped = False
        self._saving: asyncio.Future[bool] | None = None
        self._rejected: str | None = None  # the revision (ETag/digest) last refused: not fetched again

    # ------------------------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Apply ``artifact_payload``, or the disk cache (HTTP locations), or read the local file, then
        keep fetching in the background. Never raises for a bad artifact: failures are published."""
        if self._task is not None:
            return
        self._source = make_source(self.settings)
        fetch_now = True
        failures = 0
        try:
            payload = initial_payload(self.settings)
        except ArtifactFetchError as error:
            self._failed(error, "artifact_payload")
            payload = None
        if payload is not None:
            # Node never fetches when given a payload, whether it was applied or refused (e.g. an
            # unsupported version): only its polling timer, when polling is on, fetches later.
            await self._apply_payload(payload)
            fetch_now = False
        elif is_remote(self.location):
            await self._apply_disk_cache()
        else:  # a local file is read at once: ready (or failed) when start() returns
            failures = 1 if await self.refresh() is not None else 0
            fetch_now = failures > 0
        if fetch_now or self.polling_interval_ms > 0:
            self._task = asyncio.get_running_loop().create_task(
                self._run(fetch_now, failures), name="targetd-artifact-poller"
            )

    async def stop(self) -> None:
        """Stop polling, let a cache write in progress finish (bounded), release the HTTP session; safe to
        call more than once."""
        self._stopped = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._saving is not None and not self._saving.done():
            await asyncio.wait([self._saving], timeout=SAVE_TIMEOUT)
        if self._source is not None:
            await self._source.aclose()

    # ------------------------------------------------------------------------------------ polling

    async def _run(self, fetch_now: bool, failures: int) -> None:
        if failures:
            await asyncio.sleep(self._backoff(failures))
        elif not fetch_now:
            await asyncio.sleep(self._poll_delay())
        while not self._stopped:
            try:
                error = await self.refresh()
            except Exception:  # a bug must not end polling: log it and try again later
                log.exception("artifact refresh failed unexpectedly")
                error = ArtifactFetchError("internal", "artifact refresh failed; see the server log")
                self.last_error = error
            if error is None:
                failures = 0
                if self.polling_interval_ms == 0:
                    return
                delay = self._poll_delay()
            else:
                failures += 1
                if self.snapshot is None or (error.retryable and failures <= MAX_RETRIES):
                    # a refused artifact is not fetched again soon (at worst every REJECTED_BACKOFF_CAP)
                    delay = self._backoff(failures, BACKOFF_CAP if error.retryable else REJECTED_BACKOFF_CAP)
                else:
                    failures = 0
                    if self.polling_interval_ms == 0:
                        return
                    delay = self._poll_delay()
            log.debug("next artifact fetch in %.3f s", delay)
            await asyncio.sleep(delay)

    def _poll_delay(self) -> float:
        return self.polling_interval_ms / 1000 * (1 + JITTER * random.random())

    def _backoff(self, failures: int, cap: float = BACKOFF_CAP) -> float:
        if self.polling_interval_ms:
            cap = min(cap, self.polling_interval_ms / 1000)
        return random.uniform(0, min(cap, BACKOFF_BASE * 2 ** (failures - 1))) + BACKOFF_BASE / 10

    async def refresh(self) -> ArtifactFetchError | None:
        """Fetch once now and apply what is new. Returns the error of a failed attempt (already published
        as ``artifact_download_failed``), else None. Call on the loop, one call at a time, after
        :meth:`start` (else RuntimeError)."""
        source = self._source
        if source is None:
            raise RuntimeError("refresh() before start()")
        self.last_fetch_ns = self._clock()
        current = self.snapshot
        etag = current.etag if current is not None else None
        rejected = self._rejected
        if rejected is not None:  # "not modified" then means: still the revision that was refused
            etag = rejected
        try:
            result = await self._download(source, etag)
        except ArtifactFetchError as error:
            metrics.artifact_fetched("failed")
            self._failed(error, self.location)
            return error
        if result is None and rejected is not None:
            log.debug("the artifact refused before (%s) is still the current one; not fetched", rejected)
            return self.last_error or ArtifactFetchError("invalid_artifact", "the artifact was refused")
        self.last_error = None
        if result is None:
            metrics.artifact_fetched("not_modified")
            self._revalidated()
            return None
        metrics.artifact_fetched("applied")
        source_kind = pb.ARTIFACT_SOURCE_REMOTE if is_remote(self.location) else pb.ARTIFACT_SOURCE_FILE
        snapshot = self._install(result, source_kind, self.location, self.last_fetch_ns)
        if self._telemetry is not None:
            # Node's artifact-download telemetry entry; it leaves with the next request to Target.
            self._telemetry.add_artifact_request_entry(
                timestamp_ms=self.last_fetch_ns // 1_000_000,
                execution_ms=result.download_ms + result.parsing_ms,
                parsing_ms=result.parsing_ms,
            )
        self._bus.publish_artifact_download_succeeded(self.location, snapshot.info, snapshot.raw)
        geo = geo_from_lookup(result.headers)
        if geo.ListFields():
            self._bus.publish_geo_location_updated(geo)
        self._notify(snapshot)
        if source_kind == pb.ARTIFACT_SOURCE_REMOTE:
            # Shielded, and awaited by stop(): a stop during the write must not abandon it half-way.
            self._saving = asyncio.ensure_future(
                asyncio.to_thread(
                    self.cache.save,
                    snapshot.raw,
                    location=self.location,
                    etag=snapshot.etag,
                    fetched_at_ns=self.last_fetch_ns,
                )
            )
            await asyncio.shield(self._saving)
        return None

    async def _download(self, source: Source, etag: str | None) -> Built | None:
        """Fetch (on the loop), then parse and compile in a worker thread. None when not modified."""
        started = time.perf_counter()
        fetched: Fetched = await source.fetch(etag)
        if fetched.body is None:
            return None
        self._downloads += 1
        downloaded = time.perf_counter()
        result = await asyncio.to_thread(
            self._compile, fetched.body, fetched.etag, fetched.headers, self.location
        )
        return replace(
            result,
            download_ms=(downloaded - started) * 1000,
            parsing_ms=(time.perf_counter() - downloaded) * 1000,
        )

    def _compile(self, body: bytes, etag: str | None, headers: dict[str, str], location: str | None) -> Built:
        """:func:`.building.build` with this provider's polling interval, clock and download count; runs in
        a worker thread."""
        return build(
            body,
            etag,
            headers,
            location,
            polling_interval_ms=self.polling_interval_ms,
            retrieved_at_ms=self._clock() // 1_000_000,
            retrieval_count=max(1, self._downloads),
        )

    # ------------------------------------------------------------------------------------ applying

    def _install(self, result: Built, source: int, location: str, fetched_at_ns: int) -> ArtifactSnapshot:
        info = artifact_info(result, source, location, fetched_at_ns)
        snapshot = ArtifactSnapshot(result.compiled, info, result.body, result.etag)
        self.snapshot = snapshot  # the atomic swap: in-flight decisions keep the one they read
        self._rejected = None
        log.info(
            "artifact applied from %s: revision %s, version %s, %d bytes, %d rules",
            location or "artifact_payload",
            info.revision,
            info.version,
            info.size_bytes,
            info.rule_count,
        )
        return snapshot

    def _notify(self, snapshot: ArtifactSnapshot) -> None:
        if self._on_applied is not None:
            self._on_applied(snapshot)

    def _revalidated(self) -> None:
        current = self.snapshot
        if current is None or current.info.source != pb.ARTIFACT_SOURCE_DISK_CACHE:
            log.debug("artifact not modified")
            return
        info = pb.ArtifactInfo()
        info.CopyFrom(current.info)
        info.source = pb.ARTIFACT_SOURCE_REMOTE
        if self.last_fetch_ns is not None:
            info.fetched_at.FromNanoseconds(self.last_fetch_ns)
        self.snapshot = ArtifactSnapshot(current.compiled, info, current.raw, current.etag)
        log.info("cached artifact revalidated upstream (not modified): revision %s", info.revision)

    def _failed(self, error: ArtifactFetchError, location: str) -> None:
        self.last_error = error
        if not error.retryable and error.revision and location == self.location:
            self._rejected = error.revision
        log.warning("Failed to retrieve artifact: %s (%s)", error, location)
        self._bus.publish_artifact_download_failed(location, error.to_event_error())

    async def _apply_payload(self, payload: bytes) -> bool:
        try:
            result = await asyncio.to_thread(self._compile, payload, None, {}, None)
        except ArtifactFetchError as error:
            self._failed(error, "artifact_payload")
            return False
        snapshot = self._install(result, pb.ARTIFACT_SOURCE_PAYLOAD, "", self._clock())
        self._notify(snapshot)
        return True

    async def _apply_disk_cache(self) -> None:
        cached = await asyncio.to_thread(self.cache.load, self.location)
        if cached is None:
            return
        try:
            result = await asyncio.to_thread(self._compile, cached.body, cached.etag, {}, self.location)
        except ArtifactFetchError as error:
            log.warning("ignoring the cached artifact %s: %s", cached.path, error)
            return
        snapshot = self._install(result, pb.ARTIFACT_SOURCE_DISK_CACHE, self.location, cached.fetched_at_ns)
        log.warning(
            "serving the last-known-good artifact from %s (fetched %s ago) while revalidating %s",
            cached.path,
            _age(self._clock() - cached.fetched_at_ns),
            self.location,
        )
        self._notify(snapshot)

    # ------------------------------------------------------------------------------------ status

    def fill_status(self, status: pb.GetStatusResponse) -> None:
        """Fill the artifact fields of a GetStatus response."""
        current = self.snapshot
        now = self._clock()
        if current is not None:
            status.artifact.CopyFrom(current.info)
            status.artifact_age_seconds = max(0, now - current.info.fetched_at.ToNanoseconds()) / 1e9
        if self.last_fetch_ns is not None:
            status.last_fetch_time.FromNanoseconds(self.last_fetch_ns)
        if self.last_error is not None:
            status.last_error.CopyFrom(self.last_error.to_event_error())


def _age(nanoseconds: int) -> str:
    seconds = max(0, nanoseconds) // 1_000_000_000
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m{rest % 60:02d}s"
