"""Random identifiers shared by every layer (request ids, session ids, notification ids, tntIds).

Pure and thread-safe. The randomness is the operating system's (``os.urandom``), read 4 KB at a time
into a pool of hex digits that the ids are cut from: one ``getrandom`` system call per 128 ids instead of
one per id (a GetOffers makes ~6; Adobe's Node SDK, through the ``uuid`` package, pools its random bytes
the same way). The pool is emptied in a forked child, so that parent and child never share ids.
"""

from __future__ import annotations

import os
from typing import Final

__all__ = ["new_id", "new_supplemental_data_id"]

_POOL_BYTES: Final = 4096
"""Random bytes read at a time: 128 ids of 16 bytes (32 hex digits) each."""
_HEX_DIGITS: Final = 32
_VARIANT: Final = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}
"""A random hex digit → the same digit with RFC 4122's variant bits (``10``) on top."""
_pool: list[str] = []


def _refill() -> None:
    text = os.urandom(_POOL_BYTES).hex()
    _pool.extend([text[i : i + _HEX_DIGITS] for i in range(0, len(text), _HEX_DIGITS)])


def _random_hex() -> str:
    """32 random lower-case hex digits, each handed out once (``list.pop`` is atomic: threads may race to
    refill, never to take the same digits)."""
    while True:
        try:
            return _pool.pop()
        except IndexError:
            _refill()


def new_id() -> str:
    """A random (version 4) UUID string, as ``str(uuid.uuid4())`` gives (0.4 against 2.0 µs, interpreted)."""
    h = _random_hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def new_supplemental_data_id() -> str:
    """A supplemental data id (SDID) in the Experience Cloud visitor service's shape: two groups of 16
    upper-case hex digits joined by ``-``."""
    h = _random_hex().upper()
    return f"{h[:16]}-{h[16:]}"


os.register_at_fork(after_in_child=_pool.clear)
