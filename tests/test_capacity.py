"""A server refuses connections and sessions it has no file descriptors for, and goes on.

Run out of descriptors, libzmq's listener tries to accept the next connection
again and again: a core spins, and the client waits in the kernel's queue for
ever. The server refuses before that (capacity.py), at its gate.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from libimchat import ChatError, Client
from libimchat import protocol as p
from tests.faults.servers import ROOT, ServerProcess, wait_until
from tests.helpers import logged_in, signup, wait_for
from tests.test_directory import ask, directory

OPEN_FILES = 256  # the server's limit: a reserve of 64, so room for ~190 connections
CROWD = 250  # connections that want in, more than that
_OUTCOMES = zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH


def _knock(ctx: zmq.Context[Any], url: str) -> zmq.Socket[bytes]:
    """A bare DEALER of a stranger connecting to ``url``; see :func:`_outcome`."""
    location, _, key = url.partition("#")
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.curve_serverkey = key.encode()
    dealer.curve_publickey, dealer.curve_secretkey = zmq.curve_keypair()
    dealer.get_monitor_socket(_OUTCOMES)
    dealer.connect(location)
    return dealer


def _outcome(dealer: zmq.Socket[bytes]) -> int:
    """How the DEALER's handshake ended; its monitor is closed then (libzmq takes no
    more than 1,023 sockets a context, and a monitor is two)."""
    monitor = dealer.get_monitor_socket()
    assert monitor.poll(30_000), "a connection was neither let in nor turned away"
    event = int(recv_monitor_message(monitor)["event"])
    dealer.disable_monitor()
    monitor.close(0)
    return event


def _signs_up(client: Client, name: str) -> bool:
    try:
        signup(client, name)
    except ChatError as exc:
        assert exc.code == "server_full", exc
        return False
    return True


def test_a_server_out_of_descriptors_turns_newcomers_away_and_serves_those_in(
    tmp_path: Path,
) -> None:
    server = ServerProcess(tmp_path / "data", open_files=OPEN_FILES).start()
    ctx: zmq.Context[Any] = zmq.Context()
    crowd = []
    try:
        with logged_in(server.url, "ali") as ali, logged_in(server.url, "bob") as bob:
            crowd = [_knock(ctx, server.url) for _ in range(CROWD)]
            # each is answered: let in while there is room, turned away after,
            # and none is left hanging in the kernel's accept queue
            outcomes = [_outcome(dealer) for dealer in crowd]
            # how many get in depends on how many handshakes were under way at once
            assert zmq.EVENT_HANDSHAKE_SUCCEEDED in outcomes
            assert zmq.EVENT_HANDSHAKE_FAILED_AUTH in outcomes
            held = server.open_fds()
            assert held < OPEN_FILES - 16
            print(
                f"FIGURES: {CROWD} at once: {outcomes.count(zmq.EVENT_HANDSHAKE_SUCCEEDED)}"
                f" let in, {outcomes.count(zmq.EVENT_HANDSHAKE_FAILED_AUTH)} turned away;"
                f" the server holds {held} of {OPEN_FILES} descriptors"
            )
            # the refused closed, so a little room came back: fill it, one at a time
            while True:
                crowd.append(_knock(ctx, server.url))
                if _outcome(crowd[-1]) == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                    break
                assert len(crowd) < 2 * CROWD, "the server never ran out of room"

            ali.send("bob", "still here")  # those in are served as before
            assert wait_for(bob, lambda e: e.kind == "message").message.body == "still here"

            with Client(server.url, timeout=10) as cyd:
                with pytest.raises(ChatError) as caught:
                    signup(cyd, "cyd")
                assert caught.value.code == "server_full"
                assert "takes no more connections" in caught.value.message
                for dealer in crowd:
                    dealer.close(0)
                crowd = []
                # the same client tries again by itself, and gets in once there is room
                wait_until(lambda: _signs_up(cyd, "cyd"), 30, "cyd let in once there was room")
                assert cyd.login("cyd", "pw").online
    finally:
        for dealer in crowd:
            dealer.close(0)
        ctx.term()
        server.stop()


def test_sessions_past_the_servers_room_are_refused_server_full(tmp_path: Path) -> None:
    d = directory(tmp_path / "chat.db")
    d.max_sessions = 2
    for name in ("ali", "bob", "cyd"):
        ask(
            d,
            b"x",
            p.Signup(
                rid=1,
                username=name,
                password="pw",
                first_name="F",
                last_name="L",
                phone="0633217608",
            ),
        )
    ali, _ = ask(d, b"a", p.Login(rid=2, username="ali", password="pw"))
    ask(d, b"b", p.Login(rid=2, username="bob", password="pw"))
    refused, outcome = ask(d, b"c", p.Login(rid=3, username="cyd", password="pw"))
    assert isinstance(refused, p.Failure) and refused.code == "server_full"
    assert refused.retry_after > 0 and outcome.publications == []
    # before any Argon2 work is done for it
    assert (
        d.password_work(b"c", p.encode(p.Login(rid=4, username="cyd", password="pw")), 100.0)
        is None
    )
    resumed, _ = ask(d, b"c", p.Resume(rid=5, token=ali.token))
    assert isinstance(resumed, p.Failure) and resumed.code == "server_full"
    again, _ = ask(d, b"a", p.Login(rid=6, username="ali", password="pw"))
    assert isinstance(again, p.SessionStarted)  # a peer's new session replaces its own
    ask(d, b"b", p.Logout(rid=7))
    assert isinstance(
        ask(d, b"c", p.Login(rid=8, username="cyd", password="pw"))[0], p.SessionStarted
    )


# run in a process of its own: in pytest's, libzmq's threads may still be closing
# the sockets of earlier tests while this counts
_COUNTING = """
import os, tempfile
from libimchat.capacity import Capacity

held = Capacity().open_files()
assert abs(held - len(os.listdir("/proc/self/fd"))) <= 1, held  # the listing holds one
files = [tempfile.TemporaryFile() for _ in range(30)]
assert Capacity().open_files() == held + 30
tight = Capacity(limit=held + 30 + 20, reserve=20)
assert not tight.room_for_clients() and tight.room_for_subscribers()
assert tight.sessions == (held + 30) // 2
files.pop().close()
assert tight.room_for_clients()
try:
    Capacity(limit=100, reserve=64)
except ValueError as exc:
    assert "ulimit" in str(exc)
else:
    raise AssertionError("a limit with no room for connections was taken")
"""


def test_the_room_left_is_counted_from_the_descriptors_held() -> None:
    counting = subprocess.run(
        [sys.executable, "-c", _COUNTING], cwd=ROOT, capture_output=True, text=True
    )
    assert counting.returncode == 0, counting.stderr
