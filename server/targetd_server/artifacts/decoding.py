"""The bounded decoding of a downloaded artifact body: ``Content-Encoding`` gzip / deflate / identity,
refused past a decompressed size (a gzip bomb stops at the cap, it is never inflated in full).

aiohttp's own decompression has no output bound, so artifact downloads ask for the raw bytes
(``auto_decompress=False``, ``Accept-Encoding: gzip, deflate``) and decode them here with :mod:`zlib`'s
``max_length``. Brotli and other encodings are not asked for and are refused.

Thread affinity: none (pure; the provider runs it in a worker thread for compressed bodies).
"""

from __future__ import annotations

import zlib
from typing import Final

__all__ = ["ACCEPT_ENCODING", "DecodeLimitError", "UnsupportedEncodingError", "decode_body"]

ACCEPT_ENCODING: Final = "gzip, deflate"


class DecodeLimitError(ValueError):
    """The decoded body would be larger than the cap."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the artifact decompresses to more than {limit} bytes")
        self.limit = limit


class UnsupportedEncodingError(ValueError):
    """A ``Content-Encoding`` that was not asked for, or a body that does not decode."""


def decode_body(raw: bytes, encoding: str | None, limit: int) -> bytes:
    """``raw`` decoded per ``encoding`` (None/"identity": as is), at most ``limit`` bytes. Raises
    :class:`DecodeLimitError` past the cap, :class:`UnsupportedEncodingError` for another encoding or a
    corrupt or truncated stream."""
    kind = (encoding or "identity").strip().lower()
    if kind in ("", "identity"):
        if len(raw) > limit:
            raise DecodeLimitError(limit)
        return raw
    if kind in ("gzip", "x-gzip"):
        wbits = 16 + zlib.MAX_WBITS
    elif kind == "deflate":  # zlib-wrapped as the RFC says, or raw deflate as some servers send
        wbits = zlib.MAX_WBITS if raw[:1] and raw[0] & 0x0F == 8 else -zlib.MAX_WBITS
    else:
        raise UnsupportedEncodingError(f"Content-Encoding {kind!r} was not asked for")
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(raw, limit + 1)
        if len(out) > limit or inflater.unconsumed_tail:
            raise DecodeLimitError(limit)
        out += inflater.flush()
    except zlib.error as exc:
        raise UnsupportedEncodingError(f"the {kind} body does not decode ({exc})") from None
    if len(out) > limit:
        raise DecodeLimitError(limit)
    if not inflater.eof:
        raise UnsupportedEncodingError(f"the {kind} body is truncated")
    return out
