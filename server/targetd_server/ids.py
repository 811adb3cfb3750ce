"""Random identifiers shared by every layer (request ids, session ids, notification ids, tntIds).

Pure and thread-safe: reads ``os.urandom`` only.
"""

from __future__ import annotations

import os

__all__ = ["new_id", "new_supplemental_data_id"]


def new_id() -> str:
    """A random (version 4) UUID string; ~5x cheaper than ``str(uuid.uuid4())``."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def new_supplemental_data_id() -> str:
    """A supplemental data id (SDID) in the Experience Cloud visitor service's shape: two groups of 16
    upper-case hex digits joined by ``-``."""
    text = os.urandom(16).hex().upper()
    return f"{text[:16]}-{text[16:]}"
