"""Random ids (targetd_server.ids): RFC 4122 version-4 shape, never repeated, not across threads and not
between a forked child and its parent (the ids are cut from a pool of random bytes)."""

from __future__ import annotations

import os
import re
import threading
import uuid

from targetd_server import ids

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
SDID = re.compile(r"^[0-9A-F]{16}-[0-9A-F]{16}$")


def test_new_id_is_a_version_4_uuid_and_never_repeats_across_pool_refills() -> None:
    made = [ids.new_id() for _ in range(5000)]  # ~40 refills of the pool
    assert all(UUID4.match(value) for value in made)
    assert all(uuid.UUID(value).version == 4 for value in made)
    assert len(set(made)) == len(made)


def test_every_variant_digit_and_every_hex_digit_occur() -> None:
    made = [ids.new_id() for _ in range(2000)]
    assert {value[19] for value in made} == set("89ab")  # the variant digit keeps its 2 random bits
    assert set("".join(made).replace("-", "")) == set("0123456789abcdef")


def test_supplemental_data_id_shape() -> None:
    made = [ids.new_supplemental_data_id() for _ in range(500)]
    assert all(SDID.match(value) for value in made)
    assert len(set(made)) == len(made)


def test_threads_never_get_the_same_id() -> None:
    results: list[list[str]] = [[] for _ in range(4)]

    def make(out: list[str]) -> None:
        out.extend(ids.new_id() for _ in range(3000))

    threads = [threading.Thread(target=make, args=(out,)) for out in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    made = [value for out in results for value in out]
    assert len(made) == 12000
    assert len(set(made)) == len(made)


def test_a_forked_child_does_not_repeat_its_parents_next_ids() -> None:
    ids.new_id()  # the pool now holds ids the child would inherit
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next ids and leave at once
        try:
            os.write(write, ",".join(ids.new_id() for _ in range(20)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = pipe.read().split(",")
    os.waitpid(pid, 0)
    parent = [ids.new_id() for _ in range(20)]
    assert len(child) == 20
    assert not set(child) & set(parent)
