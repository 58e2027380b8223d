"""A server refuses connections and sessions it has no file descriptors for, and goes on.

Run out of descriptors, libzmq's listener tries to accept the next connection
again and again: a core spins, and the client waits in the kernel's queue for
ever. The server refuses before that (capacity.py), at its gate.
"""

from __future__ import annotations

import contextlib
import resource
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from libimchat import ChatError, Client, Server
from libimchat.capacity import raise_open_files_limit
from tests.faults.servers import ROOT, ServerProcess, wait_until
from tests.helpers import HEARTBEAT, signup, wait_for

OPEN_FILES = 192  # the server's limit: a reserve of 64, so room for ~100 connections
CROWD = 150  # connections that want in, more than that
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


def _chatting(url: str, name: str) -> Client:
    """A logged-in client that keeps its connection through a slow heartbeat: reopened,
    its DEALER would be turned away like any newcomer's."""
    client = Client(url, timeout=10, heartbeat_liveness=50)
    signup(client, name)
    client.login(name, "pw")
    return client


def test_a_server_out_of_descriptors_turns_newcomers_away_and_serves_those_in(
    tmp_path: Path,
) -> None:
    # this process holds ~4 descriptors a stranger until its handshake is told
    limits = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert (raise_open_files_limit() or 1 << 20) > 6 * CROWD, "ulimit -n too low for this test"
    server = ServerProcess(tmp_path / "data", open_files=OPEN_FILES).start()
    ctx: zmq.Context[Any] = zmq.Context()
    crowd = []
    try:
        with _chatting(server.url, "ali") as ali, _chatting(server.url, "bob") as bob:
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
                started = time.monotonic()
                with pytest.raises(ChatError) as caught:
                    signup(cyd, "cyd")
                assert caught.value.code == "server_full"
                assert "takes no more connections" in caught.value.message
                assert time.monotonic() - started < 5  # told at once, not after the timeout
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
        resource.setrlimit(resource.RLIMIT_NOFILE, limits)  # later tests see what they saw


def test_a_full_server_is_not_taken_for_a_wrong_key_when_the_network_breaks(
    tmp_path: Path,
) -> None:
    server = Server(tmp_path, password_profile="fast", heartbeat_interval=HEARTBEAT)
    server.capacity.takes_clients = lambda: False  # type: ignore[method-assign]  # full
    server.start()
    port = server.port
    with Client(server.url, timeout=5) as client:
        try:
            with pytest.raises(ChatError) as caught:
                signup(client, "ali")
            assert caught.value.code == "server_full"
        finally:
            server.stop()
        # the port now resets every connection, mid-handshake: network trouble
        with _resetting(port) as resets:
            codes = set()
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline or resets() < 3:
                try:
                    client.users()
                except ChatError as exc:
                    codes.add(exc.code)
                time.sleep(0.02)  # pacing the calls (refused at once), not waiting for one
                assert time.monotonic() < deadline + 10, "the client stopped trying"
        # the gate read the client's handshake before turning it away: the key is good
        assert "handshake_failed" not in codes


@contextlib.contextmanager
def _resetting(port: int) -> Iterator[Callable[[], int]]:
    """A listener on ``port`` that resets each connection at once; yields its count."""
    listener = socket.create_server(("127.0.0.1", port), reuse_port=False)
    count = 0

    def reset() -> None:
        nonlocal count
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:  # closed
                return
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
            count += 1

    thread = threading.Thread(target=reset, daemon=True)
    thread.start()
    try:
        yield lambda: count
    finally:
        listener.close()
        thread.join(5)


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
assert not tight.takes_clients() and tight.takes_subscribers()
assert tight.sessions == (held + 30) // 2
files.pop().close()
assert Capacity(limit=tight.limit, reserve=20).takes_clients()  # a fresh count: see RECOUNT
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
