"""Client ids: UUIDv7s, so that the server's index of them grows at its end."""

from __future__ import annotations

import itertools
import time
import uuid

from libimchat import new_client_id


def test_a_client_id_is_a_uuid7_in_hex_that_starts_with_the_time() -> None:
    before = time.time_ns() // 1_000_000
    client_id = new_client_id()
    after = time.time_ns() // 1_000_000
    parsed = uuid.UUID(hex=client_id)
    assert parsed.hex == client_id
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert before <= parsed.int >> 80 <= after


def test_client_ids_made_later_sort_later_and_never_repeat() -> None:
    made = []
    for _ in range(5):
        burst = [new_client_id() for _ in range(1000)]
        made.append(burst)
        time.sleep(0.002)  # the next burst starts in a later millisecond
    for earlier, later in itertools.pairwise(made):
        assert max(earlier) < min(later)
    everyone = [client_id for burst in made for client_id in burst]
    assert len(set(everyone)) == len(everyone)
