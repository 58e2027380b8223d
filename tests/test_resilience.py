"""Killed clients, killed and restarted servers: nothing acknowledged is lost, sessions resume."""

from __future__ import annotations

import contextlib
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from libimchat import ChatError, Server
from tests.helpers import (
    HEARTBEAT,
    LIVENESS,
    drain,
    logged_in,
    signup,
    start_server,
    wait_for,
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition, timeout: float = 10.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.02)  # polling a condition that has no event to wait on


CLIENT_SCRIPT = """
import sys
from libimchat import Client
client = Client(sys.argv[1])
client.login(sys.argv[2], "pw")
print("logged in", flush=True)
sys.stdin.read()
"""


@contextlib.contextmanager
def ghost_process(ali, server: Server) -> Iterator[subprocess.Popen[str]]:  # type: ignore[no-untyped-def]
    """A client process logged in as ghost, whom ali has seen come online; killed at the end."""
    signup(ali, "ghost")
    ghost = subprocess.Popen(
        [sys.executable, "-c", CLIENT_SCRIPT, server.url, "ghost"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert ghost.stdout is not None and ghost.stdout.readline() == "logged in\n"
        wait_for(ali, lambda e: e.kind == "presence" and e.username == "ghost" and e.online)
        yield ghost
    finally:
        ghost.kill()
        ghost.wait()


def test_a_killed_client_process_goes_offline_for_others(user, server: Server) -> None:
    ali = user("ali")
    with ghost_process(ali, server) as ghost:
        ghost.send_signal(signal.SIGKILL)
        ghost.wait()
        event = wait_for(ali, lambda e: e.kind == "presence" and e.username == "ghost", 5.0)
        assert event.online is False
        assert {u.username: u.online for u in ali.users()}["ghost"] is False


def test_a_write_that_fails_while_sessions_expire_does_not_stop_the_server(
    user, server: Server
) -> None:
    ali = user("ali")
    blocker = sqlite3.connect(server.data_dir / "imchat.db")
    with ghost_process(ali, server) as ghost, contextlib.closing(blocker):
        assert server._directory is not None
        server._directory.store.db.execute("PRAGMA busy_timeout=50")  # fail fast, not in 5 s
        blocker.execute("BEGIN IMMEDIATE")  # the server's writes fail while this is held
        ghost.send_signal(signal.SIGKILL)
        ghost.wait()
        time.sleep(HEARTBEAT * LIVENESS * 4)  # ghost's session is due to end
        assert server.failure is None and server._thread is not None
        assert server._thread.is_alive()
        # it ends all the same, its token's last use not noted (before: only once the
        # database could be written, and a dropped peer's session never)
        event = wait_for(ali, lambda e: e.kind == "presence" and e.username == "ghost", 5.0)
        assert event.online is False
        blocker.rollback()


def _server(data_dir: Path, port: int, pub_port: int) -> Server:
    return Server(
        data_dir,
        port=port,
        pub_port=pub_port,
        heartbeat_interval=HEARTBEAT,
        heartbeat_liveness=LIVENESS,
        password_profile="fast",
    ).start()


def test_a_server_stopped_before_it_serves_forever_is_not_started_again(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data")
    server.stop()  # as `imchat serve`'s SIGTERM handler does if the signal comes early
    serving = threading.Thread(target=server.serve_forever)
    serving.start()
    serving.join(5.0)
    try:
        assert not serving.is_alive(), "serve_forever started the stopped server again"
    finally:
        server.stop()
        serving.join(5.0)


def test_a_restarted_server_keeps_everything_and_clients_go_on(tmp_path: Path) -> None:
    port, pub_port = free_port(), free_port()
    server = _server(tmp_path, port, pub_port)
    with logged_in(server.url, "ali", 5) as ali, logged_in(server.url, "sam", 5) as sam:
        ali.create_room("Room1")
        sam.join("Room1")
        before = ali.send("sam", "before the restart")
        room_before = sam.send_room("Room1", "room, before")
        wait_for(sam, lambda e: e.kind == "message")
        server.stop()
        server = _server(tmp_path, port, pub_port)
        try:
            # the clients resume by themselves: no login here
            after = ali.send("sam", "after the restart")
            assert wait_for(sam, lambda e: e.kind == "message").message == after
            room_after = ali.send_room("Room1", "room, after")
            got = wait_for(sam, lambda e: e.kind == "room_message" and e.message.seq == 2)
            assert got.message == room_after
            assert sam.history("ali") == [before, after]
            assert sam.room_history("Room1") == [room_before, room_after]
            assert {r.name: r.members for r in sam.rooms()} == {"Room1": 2}
        finally:
            server.stop()


def test_a_client_resumes_as_soon_as_its_connection_is_back_not_at_its_next_heartbeat(
    tmp_path: Path,
) -> None:
    # a big server asks for heartbeats seconds apart (Directory.heartbeat_interval);
    # its clients must not wait that long to come back after a restart
    port, pub_port = free_port(), free_port()
    server = start_server(tmp_path, port, pub_port=pub_port, heartbeat_interval=30.0)
    with logged_in(server.url, "ali", 5) as ali:
        drain(ali)
        server.stop()
        began = time.monotonic()
        server = start_server(tmp_path, port, pub_port=pub_port, heartbeat_interval=30.0)
        try:
            wait_for(ali, lambda e: e.kind == "connection" and e.online, 5.0)
            assert server._directory is not None and len(server._directory.sessions) == 1
            print(f"\nFIGURES: back_after_restart_s={time.monotonic() - began:.2f} heartbeat_s=30")
        finally:
            server.stop()


def test_blocks_survive_a_restart(tmp_path: Path) -> None:
    port, pub_port = free_port(), free_port()
    server = _server(tmp_path, port, pub_port)
    with logged_in(server.url, "ali", 5) as ali, logged_in(server.url, "sam", 5) as sam:
        ali.block("sam")
        server.stop()
        server = _server(tmp_path, port, pub_port)
        try:
            with pytest.raises(ChatError) as caught:
                sam.send("ali", "still blocked?")
            assert caught.value.code == "blocked"
            assert ali.blocked() == ["sam"]
        finally:
            server.stop()


def test_messages_sent_while_the_server_is_down_arrive_after_it_returns(tmp_path: Path) -> None:
    port, pub_port = free_port(), free_port()
    server = _server(tmp_path, port, pub_port)
    restarted: list[Server] = []
    with logged_in(server.url, "ali", 10) as ali, logged_in(server.url, "sam", 10) as sam:
        server.stop()
        # sam notices the silence, then the server comes back while ali's send waits
        wait_for(sam, lambda e: e.kind == "connection" and e.online is False)
        restarter = threading.Timer(
            0.5, lambda: restarted.append(_server(tmp_path, port, pub_port))
        )
        restarter.start()
        try:
            sent = ali.send("sam", "queued while down", client_id="down-1")
            assert wait_for(sam, lambda e: e.kind == "connection").online is True
            event = wait_for(sam, lambda e: e.kind == "message", timeout=15)
            assert event.message == sent
            assert sam.history("ali") == [sent]
            assert [e for e in drain(sam) if e.kind == "message"] == []
        finally:
            restarter.join()
            restarted[0].stop()


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[tuple[list[str], Path, int]]:
    port, pub_port = free_port(), free_port()
    command = [
        sys.executable, "-m", "libimchat", "serve", "--data-dir", str(tmp_path),
        "--port", str(port), "--pub-port", str(pub_port),
        "--message-rate", "100000", "--message-burst", "100000",
    ]  # fmt: skip
    yield command, tmp_path, port


def test_kill_9_loses_no_acknowledged_message(server_process) -> None:
    command, data_dir, port = server_process
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)]
    acked: dict[str, int] = {}

    def kill_and_restart() -> None:
        # kill -9 while sends are in flight, then bring the server back
        wait_until(lambda: len(acked) >= 100, what="100 acknowledged sends")
        processes[0].send_signal(signal.SIGKILL)
        processes[0].wait()
        processes.append(subprocess.Popen(command, stdout=subprocess.DEVNULL))

    try:
        stdout = processes[0].stdout
        assert stdout is not None
        banner = stdout.readline().decode()
        assert banner.startswith(f"libimchat server at tcp://127.0.0.1:{port}#")
        url = banner.split()[3]
        with logged_in(url, "ali", 15) as ali, logged_in(url, "sam", 15) as sam:
            killer = threading.Thread(target=kill_and_restart)
            killer.start()
            for i in range(300):
                client_id = f"m-{i}"
                acked[client_id] = ali.send("sam", f"message {i}", client_id=client_id).id
            killer.join()
            assert len(processes) == 2
            history = sam.history("ali", limit=500)
            assert [m.client_id for m in history] == list(acked)
            received = []
            while len(received) < len(acked):
                event = wait_for(sam, lambda e: e.kind == "message", timeout=10)
                received.append(event.message.client_id)
            assert received == list(acked)  # each once, in order
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
            process.wait(10)
    db = sqlite3.connect(data_dir / "imchat.db")
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    rows = db.execute("SELECT client_id, id FROM messages ORDER BY id").fetchall()
    assert dict(rows) == acked  # each acknowledged message stored once, with its acked id
