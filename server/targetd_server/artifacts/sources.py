"""Where the artifact comes from, and one fetch of it.

* :func:`artifact_location` — the configured ``artifact_location`` (http, https, ``file://`` or a path), or
  the Target CDN URL ``https://{cdn host}/{client}/{environment}/v1/[{property token}/]rules.json``.
* :func:`initial_payload` — ``artifact_payload``, inline JSON or ``@path``.
* :class:`HttpSource` / :class:`FileSource` — one fetch, with ``If-None-Match`` / ETag for HTTP.

Loop affinity: ``await source.fetch(etag)`` and ``await source.aclose()`` on the event loop, one fetch at a
time per source. HTTP goes through a :class:`~targetd_server.transport.HttpClient` (aiohttp), the body read
as a capped stream (:func:`~targetd_server.transport.read_capped`); file reads run in a worker thread
(``asyncio.to_thread``). They raise :class:`ArtifactFetchError`.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol
from urllib.parse import unquote, urlsplit

import aiohttp

from targetd.v1 import decisioning_service_pb2 as pb
from targetd_server.artifacts.decoding import (
    ACCEPT_ENCODING,
    DecodeLimitError,
    UnsupportedEncodingError,
    decode_body,
)
from targetd_server.config import Settings
from targetd_server.errors import UpstreamError
from targetd_server.transport import BodyTooLargeError, HttpClient, cdn_base, read_capped

# The SDKs' messages (reference §4.1), verbatim.
NOT_AUTHORIZED: Final = (
    "Artifact request is not authorized. This is likely due to On-Device-Decisioning being disabled in "
    "Admin settings.  Please enable and try again."
)
NON_200: Final = "Non-200 status code response from artifact request: {status}"


class ArtifactFetchError(UpstreamError):
    """A fetch failed or its content was rejected.

    ``kind`` is the ``EventError.kind`` ("http_status", "network", "timeout", "file", "too_large",
    "invalid_artifact", "unsupported_version"); ``retryable`` tells whether trying again soon may help
    (5xx, network, timeout). ``revision`` is the ETag (or file digest) of content that was rejected, when
    known: the provider does not download that revision again (it sends it as ``If-None-Match``).
    """

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        revision: str | None = None,
    ) -> None:
        super().__init__(message, status=status)
        self.kind = kind
        self.retryable = retryable
        self.revision = revision

    def to_event_error(self) -> pb.EventError:
        """The proto form carried by ``artifact_download_failed`` and GetStatus."""
        return pb.EventError(kind=self.kind, message=str(self), http_status=self.status or 0)


def artifact_location(settings: Settings) -> str:
    """The location to fetch: ``artifact_location`` as configured, else the CDN URL (reference §4.1)."""
    if settings.artifact_location:
        return settings.artifact_location
    parts = [
        cdn_base(settings),
        settings.client,
        settings.environment,
        "v1",
        settings.property_token,
        "rules.json",
    ]
    return "/".join(p for p in parts if p)


def is_remote(location: str) -> bool:
    """Whether ``location`` is fetched over HTTP(S) (else it is a local file)."""
    return location.lower().startswith(("http://", "https://"))


def file_path(location: str) -> Path:
    """The local path of a ``file://`` URL or a plain path."""
    if location.lower().startswith("file://"):
        return Path(unquote(urlsplit(location).path))
    return Path(location)


def initial_payload(settings: Settings) -> bytes | None:
    """The ``artifact_payload`` bytes (inline JSON, or the content of ``@path``), or None.

    Raises :class:`ArtifactFetchError` (kind "file") when the ``@path`` cannot be read.
    """
    payload = settings.artifact_payload
    if not payload:
        return None
    if payload.startswith("@"):
        path = Path(payload[1:])
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ArtifactFetchError(
                "file", f"artifact_payload file {path} cannot be read ({exc.strerror}); fix the path"
            ) from None
    return payload.encode()


@dataclass(frozen=True, slots=True)
class Fetched:
    """A fetch result: ``body`` is None for "not modified" (304, or an unchanged file)."""

    body: bytes | None
    etag: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


class Source(Protocol):
    """One place an artifact is fetched from."""

    location: str

    async def fetch(self, etag: str | None) -> Fetched:
        """Fetch; ``etag`` is the revision held now (sent as If-None-Match)."""
        ...

    async def aclose(self) -> None:
        """Release pooled resources."""
        ...


class HttpSource:
    """HTTP(S) through one pooled :class:`~targetd_server.transport.HttpClient`; no retries (the provider
    retries). ``connect_timeout`` bounds getting a connection (DNS, TCP, TLS), ``read_timeout`` each wait
    for data, ``total_timeout`` (None: none) the whole download, connect to the last byte (a CDN that
    trickles cannot stall polling); ``max_bytes`` (None: no cap) refuses a larger body as sent and
    ``max_decoded_bytes`` (None: no cap) a larger body once decompressed (:mod:`.decoding`): kind
    "too_large", not retryable."""

    def __init__(
        self,
        location: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        total_timeout: float | None = None,
        max_bytes: int | None = None,
        max_decoded_bytes: int | None = None,
    ) -> None:
        self.location = location
        self.max_bytes = max_bytes
        self.max_decoded_bytes = max_decoded_bytes
        self._http = HttpClient(
            limit=2,
            timeout=aiohttp.ClientTimeout(
                total=total_timeout, connect=connect_timeout, sock_read=read_timeout
            ),
        )

    async def fetch(self, etag: str | None) -> Fetched:
        headers = {"Accept-Encoding": ACCEPT_ENCODING}
        if etag:
            headers["If-None-Match"] = etag
        revision: str | None = None
        try:
            async with self._http.request(
                "GET", self.location, headers=headers, auto_decompress=False
            ) as response:
                status = response.status
                if status == 304 and etag:
                    return Fetched(None, etag, dict(response.headers))
                if status == 403:
                    raise ArtifactFetchError("http_status", NOT_AUTHORIZED, status=status)
                if status != 200:
                    raise ArtifactFetchError(
                        "http_status",
                        NON_200.format(status=status),
                        status=status,
                        retryable=status >= 500 or status < 200 or status == 429,
                    )
                revision = response.headers.get("ETag") or None
                raw = await read_capped(response, self.max_bytes)
                encoding = response.headers.get("Content-Encoding")
                response_headers = dict(response.headers)
        except TimeoutError as exc:  # (aiohttp's timeout errors are TimeoutErrors)
            raise ArtifactFetchError(
                "timeout", f"artifact request timed out ({exc.__class__.__name__})", retryable=True
            ) from None
        except BodyTooLargeError as exc:
            raise ArtifactFetchError(
                "too_large", f"artifact refused: {exc} (artifact_max_bytes)", revision=revision
            ) from None
        except aiohttp.ClientError as exc:
            raise ArtifactFetchError(
                "network", f"artifact request failed: {_reason(exc)}", retryable=True
            ) from None

        body = await self._decode(raw, encoding, revision)
        return Fetched(body, revision, response_headers)

    async def _decode(self, raw: bytes, encoding: str | None, revision: str | None) -> bytes:
        limit = self.max_decoded_bytes
        if limit is None:
            limit = 1 << 62
        try:
            if encoding is None or encoding.strip().lower() in ("", "identity"):
                return decode_body(raw, None, limit)
            return await asyncio.to_thread(decode_body, raw, encoding, limit)
        except DecodeLimitError as exc:
            raise ArtifactFetchError(
                "too_large", f"artifact refused: {exc} (artifact_max_decompressed_bytes)", revision=revision
            ) from None
        except UnsupportedEncodingError as exc:
            raise ArtifactFetchError(
                "invalid_artifact", f"artifact refused: {exc}", revision=revision
            ) from None

    async def aclose(self) -> None:
        await self._http.aclose()


def _reason(exc: BaseException) -> str:
    text = str(exc) or exc.__class__.__name__
    return text if len(text) <= 300 else text[:300] + "…"


class FileSource:
    """A local file; an unchanged file (same digest as ``etag``) counts as not modified. ``max_bytes``
    (None: no cap) refuses a larger file before reading it (kind "too_large")."""

    def __init__(self, location: str, *, max_bytes: int | None = None) -> None:
        self.location = location
        self.path = file_path(location)
        self.max_bytes = max_bytes

    async def fetch(self, etag: str | None) -> Fetched:
        try:
            body = await asyncio.to_thread(_read_file, self.path, self.max_bytes)
        except BodyTooLargeError as exc:
            raise ArtifactFetchError(
                "too_large", f"artifact file {self.path} refused: {exc} (artifact_max_decompressed_bytes)"
            ) from None
        except OSError as exc:
            raise ArtifactFetchError(
                "file", f"artifact file {self.path} cannot be read ({exc.strerror}); fix artifact_location"
            ) from None
        digest = file_revision(body)
        return Fetched(None if digest == etag else body, digest)

    async def aclose(self) -> None:
        pass


def _read_file(path: Path, limit: int | None) -> bytes:
    with path.open("rb") as file:
        if limit is None:
            return file.read()
        body = file.read(limit + 1)
    if len(body) > limit:
        raise BodyTooLargeError(limit)
    return body


def file_revision(body: bytes) -> str:
    """The revision of content without an ETag: ``sha256:<first 16 hex digits>``."""
    return "sha256:" + hashlib.sha256(body).hexdigest()[:16]


def make_source(settings: Settings) -> Source:
    """The source for the configured location (a pooled HTTP client for HTTP)."""
    location = artifact_location(settings)
    if is_remote(location):
        return HttpSource(
            location,
            connect_timeout=settings.artifact_connect_timeout,
            read_timeout=settings.artifact_read_timeout,
            total_timeout=settings.artifact_download_timeout,
            max_bytes=settings.artifact_max_bytes,
            max_decoded_bytes=settings.artifact_max_decompressed_bytes,
        )
    return FileSource(location, max_bytes=settings.artifact_max_decompressed_bytes)
