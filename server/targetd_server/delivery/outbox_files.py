"""The files of the outbox under ``data_dir``: one per live process, claimed with ``flock``, and the files
whose process is gone (their rows are adopted by ``OutboxStore.adopt_orphans``).

Thread affinity: any.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from targetd_server.errors import OverloadedError

log = logging.getLogger("targetd.outbox")

__all__ = ["MAX_SLOTS", "claim_outbox_path", "orphan_files"]


def _try_lock(path: Path) -> int | None:
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


MAX_SLOTS: Final = 64


def claim_outbox_path(directory: Path) -> tuple[Path, int]:
    """An outbox file under ``directory`` that no other live process uses: ``outbox.sqlite3``, else
    ``outbox-1.sqlite3``, ... Each is claimed with an exclusive ``flock`` on its ``.lock`` file, held until
    the returned descriptor is closed (the process dies: the lock goes with it). So several workers sharing
    one ``data_dir`` (SO_REUSEPORT) never send the same rows, and a restarted worker adopts the file of a
    dead one. Raises :class:`OverloadedError` when all slots are taken."""
    directory.mkdir(parents=True, exist_ok=True)
    for slot in range(MAX_SLOTS):
        name = "outbox.sqlite3" if slot == 0 else f"outbox-{slot}.sqlite3"
        fd = _try_lock(directory / name)
        if fd is not None:
            return directory / name, fd
    raise OverloadedError(f"all {MAX_SLOTS} outbox files in {directory} are in use; use another data_dir")


def orphan_files(own: Path) -> Iterator[tuple[Path, int]]:
    """The outbox files beside ``own`` that no live process holds, each yielded with its lock taken (the
    descriptor is closed when the caller moves to the next one or stops iterating)."""
    for other in sorted(own.parent.glob("outbox*.sqlite3")):
        if other == own:
            continue
        fd = _try_lock(other)
        if fd is None:
            continue
        try:
            yield other, fd
        finally:
            os.close(fd)
