"""``kill -9`` the server again and again while four users chat: nothing acknowledged is lost.

The server runs in a process of its own. Four real clients stream direct
messages to each other and posts to a shared room; meanwhile the server is
SIGKILLed at random moments (mid-commit, mid-reply, mid-publication: wherever
it happens to be) and restarted on the same ports and data dir. The clients
resume by themselves and resend what was not acknowledged.

Afterwards: every acknowledged message is in the SQLite file exactly once,
under the id it was acknowledged with, the file passes ``PRAGMA
integrity_check``, and every user received every message to it exactly once,
in order. Set IMCHAT_FAULT_SEED to replay a run.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from libimchat.server import DATABASE
from tests.faults.servers import ServerProcess
from tests.faults.traffic import (
    Traffic,
    check_delivery,
    check_store,
    print_figures,
    wait_delivered,
)

USERS = 4
PER_USER = 600
KILLS = 3


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path).start()
    yield server
    server.stop()


@pytest.mark.timeout(60)
def test_kill_9_at_random_moments_loses_and_doubles_nothing(server: ServerProcess, capsys) -> None:
    seed = int(os.environ.get("IMCHAT_FAULT_SEED") or random.randrange(1 << 32))
    rng = random.Random(seed)
    print(f"IMCHAT_FAULT_SEED={seed}")  # shown if the test fails: replays the run
    with Traffic(server.url, users=USERS, per_user=PER_USER, seed=seed) as traffic:
        # kill when this many sends have been acknowledged: somewhere in the middle 80 %
        moments = sorted(rng.sample(range(traffic.total // 10, traffic.total * 9 // 10), KILLS))

        def kill_and_restart(_: int) -> None:
            server.kill()
            time.sleep(rng.uniform(0, 0.3))  # down for a while, or back at once
            server.start()

        traffic.run_with_faults(moments, kill_and_restart)
        assert server.kills == KILLS
        wait_delivered(traffic, timeout=10)
        check_delivery(traffic)
    server.stop()
    figures = check_store(server.data_dir / DATABASE, traffic)
    print_figures(capsys, "kill9", figures, traffic, seed, kills=server.kills)
