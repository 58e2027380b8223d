"""500 logged-in clients, the server restarts, and all of them come back at once.

The clients live in a few processes (crowd.py says why). The server is
stopped and started again on the same ports and data dir, which ends every
session; each client finds out (its session is unknown, or the server is
silent for its liveness window), backs off if it was silent, reconnects and
resumes with its token. An observer's user list must then show all of them
online again within the client's liveness window plus the first backoff, with
a generous margin, and stay so.

The clients keep the server's heartbeat interval but a liveness window of 3 s,
the length the library's defaults give (1 s x 3), instead of the tests' 0.6 s:
1000 connections reconnecting at once each need a CurveZMQ handshake and a
Resume, and under 0.6 s a first wave of clients gives up on connections about
to succeed; as the backoff has no jitter, they retry in step, and waves of
give-ups repeat (all online after ~9 s instead of ~2 s).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from libimchat import ChatError, Client
from tests.faults.crowd import Crowd
from tests.faults.servers import free_port_pair
from tests.helpers import HEARTBEAT, LIVENESS, signup, start_server

CLIENTS = 500
PROCESSES = 4
CLIENT_LIVENESS = 15  # x HEARTBEAT: a 3 s window
WINDOW = HEARTBEAT * CLIENT_LIVENESS  # silence after which a client reconnects
FIRST_BACKOFF = 1.0  # link.py: the wait before the first reconnection
BOUND = WINDOW + FIRST_BACKOFF  # a client that notices nothing comes back sooner
DEADLINE = 2 * BOUND  # generous: two cores run the server, 500 clients and the test


@pytest.mark.timeout(90)
def test_500_clients_are_all_online_again_soon_after_a_restart(tmp_path: Path, capsys) -> None:
    port = free_port_pair()
    server = start_server(tmp_path, port=port)
    observer = Client(server.url, timeout=2.0, heartbeat_liveness=CLIENT_LIVENESS)
    observer.login(signup(observer, "observer"), "pw")
    names = [f"crowd{index:03d}" for index in range(CLIENTS)]
    crowds = [
        Crowd(server.url, names[k::PROCESSES], heartbeat_liveness=CLIENT_LIVENESS)
        for k in range(PROCESSES)
    ]
    try:
        for crowd in crowds:
            crowd.wait_ready()
        assert _online(observer) == CLIENTS + 1

        server.stop()
        server = start_server(tmp_path, port=port)
        restarted = time.monotonic()
        while (online := _online(observer)) != CLIENTS + 1:
            assert time.monotonic() - restarted < DEADLINE, f"{online} online after {DEADLINE} s"
            time.sleep(0.1)  # the observer's list is the thing to watch
        converged = time.monotonic() - restarted
        # and they stay: a session the server ends for silence would show within this
        time.sleep(2 * HEARTBEAT * LIVENESS)
        assert _online(observer) == CLIENTS + 1
    finally:
        observer.close()
        for crowd in crowds:
            crowd.close()
        server.stop()
    with capsys.disabled():
        print(
            f"\nFIGURES: reconnect_storm clients={CLIENTS} processes={PROCESSES}"
            f" all_online_after_s={converged:.1f} bound_s={BOUND:.1f} deadline_s={DEADLINE:.1f}"
        )


def _online(observer: Client) -> int | None:
    """How many users the observer sees online; None while it cannot ask (it reconnects too)."""
    try:
        return sum(user.online for user in observer.users())
    except ChatError as exc:
        assert exc.code == "timeout", exc
        return None
