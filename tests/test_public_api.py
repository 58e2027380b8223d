"""The public surface: names, errors, the server's entry points."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from pathlib import Path

import pytest

import libimchat
from libimchat import ChatError, Client, Server
from libimchat import protocol as p
from libimchat.address import parse_url
from libimchat.errors import CODES
from libimchat.link import Link
from tests.helpers import signup


def test_all_is_sorted_and_importable() -> None:
    assert libimchat.__all__ == sorted(libimchat.__all__)
    for name in libimchat.__all__:
        assert getattr(libimchat, name) is not None


def test_every_error_code_the_server_can_send_is_documented() -> None:
    source = "".join(path.read_text() for path in Path(libimchat.__file__).parent.glob("*.py"))
    used = set(re.findall(r'ChatError\(\s*"([a-z_]+)"', source))
    assert used <= set(CODES), used - set(CODES)


@pytest.mark.parametrize(
    "url", ["", "http://x:1", "tcp://host", "tcp://:5555", "tcp://h:port", "tcp://[::1:5555"]
)
def test_a_malformed_url_is_a_clear_error(url: str) -> None:
    with pytest.raises(ChatError) as caught:
        Client(url)
    assert caught.value.code == "invalid"


def test_a_server_on_an_ipv6_address_gives_a_url_its_clients_connect_with(tmp_path: Path) -> None:
    with Server(tmp_path, host="::1", password_profile="fast") as server:
        assert server.url.startswith(f"tcp://[::1]:{server.port}#")
        with Client(server.url, timeout=5) as ali, Client(server.url, timeout=5) as sam:
            signup(ali, "ali")
            signup(sam, "sam")
            ali.login("ali", "pw")
            sam.login("sam", "pw")
            ali.create_room("Room1")
            sam.join("Room1")
            sent = [ali.send("sam", "over IPv6"), ali.send_room("Room1", "on its PUB socket too")]
            got = []
            while len(got) < 2 and (event := sam.next_event(timeout=5)) is not None:
                if event.kind in ("message", "room_message"):  # presence comes too
                    got.append(event.message)
            assert got == sent


def test_a_call_without_a_server_times_out_with_a_chat_error() -> None:
    client = Client("tcp://127.0.0.1:9", timeout=0.3, insecure=True)
    with client, pytest.raises(ChatError) as caught:
        client.login("ali", "pw")
    assert caught.value.code == "timeout"


def test_serve_forever_runs_until_stopped(tmp_path: Path) -> None:
    server = Server(tmp_path, password_profile="fast")
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        with Client(_wait_for_url(server), timeout=5) as client:
            signup(client, "ali")
            assert client.login("ali", "pw").username == "ali"
    finally:
        server.stop()
        thread.join(5)
    assert not thread.is_alive()


def _wait_for_url(server: Server) -> str:
    deadline = time.monotonic() + 5
    while not server.port and time.monotonic() < deadline:
        time.sleep(0.01)
    return server.url


def test_imchat_serve_prints_its_url_and_serves(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "libimchat", "serve", "--data-dir", str(tmp_path), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("libimchat server at tcp://127.0.0.1:")
        url = line.split()[3]
        with Client(url, timeout=5) as client:
            signup(client, "ali")
            assert client.login("ali", "pw").online
        assert (tmp_path / "imchat.db").exists()
    finally:
        process.terminate()
        assert process.wait(10) == 0


def test_a_heartbeat_budget_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="heartbeats_per_second must be positive"):
        Server(tmp_path, heartbeats_per_second=0)
    refused = subprocess.run(
        [sys.executable, "-m", "libimchat", "serve", "--heartbeats-per-second", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert refused.returncode == 2
    assert "--heartbeats-per-second: must be more than 0" in refused.stderr


def test_close_wakes_a_thread_waiting_for_events(connect) -> None:
    client = connect()
    waiter = threading.Thread(target=lambda: results.append(client.next_event()))
    results: list[object] = []
    waiter.start()
    client.close()
    waiter.join(5)
    assert results == [None]
    assert client.next_event() is None  # and every later wait ends at once


def test_a_request_that_races_close_fails_closed_rather_than_waiting_forever(
    server: Server,
) -> None:
    class ClosedBetweenLookAndSend(Link):
        """The link's thread ends after request() looked at it and before it hands over."""

        def _command(self, name: str, arg: object, future: Future[p.Reply] | None) -> None:
            if name == "request":
                self.close()
            super()._command(name, arg, future)

    link = ClosedBetweenLookAndSend(parse_url(server.url), emit=lambda event: None)
    link.start()
    future = link.request(p.ListRooms(rid=0))
    error = future.exception(timeout=5)  # before: never resolved, a call without timeout hung
    assert isinstance(error, ChatError) and error.code == "closed"


def test_a_request_behind_close_in_the_links_queue_is_failed_not_run(server: Server) -> None:
    # its caller saw the link closing and failed it; the thread, draining its queue
    # after the close, must not try to run it (a finished future cannot start)
    link = Link(parse_url(server.url), emit=lambda event: None)  # its thread not started
    future: Future[p.Reply] = Future()
    future.set_exception(ChatError("closed", "the client is closed"))
    link._command("close", None, None)
    link._command("request", p.ListRooms(rid=0), future)
    link._drain_wakeups()  # before: RuntimeError, and the thread died
    assert link.core.pending == {}
    error = future.exception(timeout=0)
    assert isinstance(error, ChatError) and error.code == "closed"
    link.close()


def test_a_request_its_caller_failed_meanwhile_is_skipped_by_the_link(server: Server) -> None:
    # close() gave up waiting for the thread and failed the request from the caller's
    # side; a finished future cannot start, and the thread must go on
    link = Link(parse_url(server.url), emit=lambda event: None)  # its thread not started
    future: Future[p.Reply] = Future()
    future.set_exception(ChatError("closed", "the client is closed"))
    link._command("request", p.ListRooms(rid=0), future)
    link._drain_wakeups()  # before: RuntimeError
    assert link.core.pending == {}
    link.close()


def test_imchat_backup_copies_a_live_database(user, server: Server, tmp_path: Path) -> None:
    ali = user("ali")
    user("sam")
    sent = [ali.send("sam", f"m{i}") for i in range(20)]
    copy = tmp_path / "copy.db"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "libimchat",
            "backup",
            str(copy),
            "--data-dir",
            str(server.data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    db = sqlite3.connect(copy)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert [b for (b,) in db.execute("SELECT body FROM messages ORDER BY id")] == [
        m.body for m in sent
    ]


def test_imchat_backup_says_when_there_is_no_database(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "libimchat", "backup", str(tmp_path / "c.db"), "--data-dir",
         str(tmp_path / "nothing")],
        capture_output=True,
        text=True,
        timeout=30,
    )  # fmt: skip
    assert done.returncode == 1
    assert "no database" in done.stderr
