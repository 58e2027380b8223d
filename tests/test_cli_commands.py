"""The scriptable commands (imchat send, history, users, rooms) as real processes, real server."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys

import pytest

from libimchat import Client, Server
from tests.helpers import signup


def imchat(
    *args: str, url: str, password: str | None = "pw", stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "IMCHAT_PASSWORD"}
    if password is not None:
        env["IMCHAT_PASSWORD"] = password
    return subprocess.run(
        [sys.executable, "-m", "libimchat", *args, "--url", url],
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        timeout=30,
    )


@pytest.fixture
def url(server: Server) -> str:
    """A server where ALI and SAM exist (password "pw") and ALI created Room1."""
    with Client(server.url, timeout=5) as client:
        signup(client, "ALI")
        signup(client, "SAM")
        client.login("ALI", "pw")
        client.create_room("Room1")
    return server.url


def test_send_then_history_plain_and_json(url: str) -> None:
    sent = imchat("send", "--user", "ALI", "--to", "SAM", "hello", "sam", url=url)
    assert (sent.returncode, sent.stdout, sent.stderr) == (0, "", "")
    posted = imchat("send", "--user", "ALI", "--room", "Room1", "hi room", "--json", url=url)
    assert posted.returncode == 0, posted.stderr
    message = json.loads(posted.stdout)
    assert (message["room"], message["sender"], message["body"]) == ("Room1", "ALI", "hi room")

    plain = imchat("history", "--user", "SAM", "ALI", url=url)
    assert plain.returncode == 0, plain.stderr
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d <ALI> hello sam\n", plain.stdout)

    imchat("send", "--user", "SAM", "--to", "ALI", "and hello ali", url=url)
    page = imchat("history", "--user", "ALI", "SAM", "--json", "--limit", "1", url=url)
    assert [(m["sender"], m["body"]) for m in json.loads(page.stdout)] == [("SAM", "and hello ali")]
    room = imchat("history", "--user", "SAM", "--room", "Room1", "--json", url=url)
    assert [m["body"] for m in json.loads(room.stdout)] == ["hi room"]


def test_users_and_rooms_plain_and_json(url: str) -> None:
    users = imchat("users", "--user", "SAM", url=url)
    assert users.returncode == 0, users.stderr
    # SAM is online: listing needs a login
    assert users.stdout.splitlines() == ["○ ALI  First Last", "● SAM  First Last"]
    listed = json.loads(imchat("users", "--user", "SAM", "--json", url=url).stdout)
    assert [(u["username"], u["online"]) for u in listed] == [("ALI", False), ("SAM", True)]
    assert set(listed[0]) == {"id", "username", "first_name", "last_name", "online"}

    rooms = imchat("rooms", "--user", "ALI", url=url)
    assert rooms.stdout == "#Room1  1 member, created by ALI (joined)\n"
    listed = json.loads(imchat("rooms", "--user", "SAM", "--json", url=url).stdout)
    assert listed == [
        {"name": "Room1", "created_by": "ALI", "members": 1, "joined": False, "last_seq": 0}
    ]


def test_the_password_can_come_on_stdin(url: str) -> None:
    done = imchat(
        "users", "--user", "SAM", "--password-stdin", url=url, password=None, stdin="pw\n"
    )
    assert done.returncode == 0, done.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("args", "password", "status", "error"),
    [
        (["send", "--user", "ALI", "--to", "NOBODY", "hi"], "pw", 1, "no user is called 'NOBODY'"),
        (["send", "--user", "SAM", "--room", "Room1", "hi"], "pw", 1, "join Room1 first"),
        (["users", "--user", "ALI"], "wrong", 1, "wrong username or password"),
        (["history", "--user", "ALI", "SAM", "--limit", "0"], "pw", 1, "a page holds 1 to"),
        (["users", "--user", "ALI"], None, 2, "no password: set IMCHAT_PASSWORD"),
    ],
)
def test_a_refusal_is_one_line_and_a_non_zero_status(
    url: str, args: list[str], password: str | None, status: int, error: str
) -> None:
    failed = imchat(*args, url=url, password=password)
    assert failed.returncode == status
    assert failed.stdout == ""
    assert failed.stderr.startswith(f"imchat: {error}")
    assert failed.stderr.count("\n") == 1


def test_no_server_is_a_timeout_error() -> None:
    url = f"tcp://127.0.0.1:{_free_port()}"
    failed = imchat("users", "--user", "ALI", "--timeout", "0.5", "--insecure", url=url)
    assert failed.returncode == 1
    assert failed.stderr == "imchat: the server did not answer within 0.5 s\n"
