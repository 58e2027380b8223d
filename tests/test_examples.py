"""The example programs, each run as a real process against a real server.

A test drives an example with a Client of its own and waits for what it should
see (presence, events, lines in a file) with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from libimchat import Client, Event, Message, Server, new_client_id
from tests.helpers import signup, wait_for

ROOT = Path(__file__).resolve().parent.parent
DEADLINE = 10.0


@contextmanager
def run_example(script: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    """Start ``examples/<script>``; kill it at the end if it is still running."""
    command = [sys.executable, f"examples/{script}", *args]
    with subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        try:
            yield process
        finally:
            process.kill()  # does nothing if it has exited


def finish(process: subprocess.Popen[str]) -> tuple[str, str]:
    """Wait for the example to exit; fails unless it exits with 0. Returns (stdout, stderr)."""
    out, err = process.communicate(timeout=DEADLINE)
    assert process.returncode == 0, f"exit code {process.returncode}; stderr:\n{err}"
    return out, err


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"not {what} within {DEADLINE} s"
        time.sleep(0.05)  # a polling interval, not a guess at how long anything takes


def comes_online(username: str) -> Callable[[Event], bool]:
    def match(event: Event) -> bool:
        return event.kind == "presence" and event.username == username and event.online is True

    return match


def next_message_from(client: Client, sender: str) -> Message:
    """The next direct message ``client`` gets from ``sender``."""
    event = wait_for(
        client,
        lambda e: e.kind == "message" and e.message is not None and e.message.sender == sender,
    )
    assert event.message is not None
    return event.message


def as_logged(message: Message) -> dict[str, object]:
    """What room_logger.py writes for a message."""
    return {
        "seq": message.seq,
        "sender": message.sender,
        "body": message.body,
        "sent_at": message.sent_at,
    }


def test_echo_bot_signs_up_and_answers_each_direct_message(
    server: Server, user: Callable[[str], Client]
) -> None:
    ali = user("ali")
    with run_example("echo_bot.py", server.url, "echo", "s3cret", "--max", "2") as bot:
        wait_for(ali, comes_online("echo"), timeout=DEADLINE)
        replies = []
        for text in ("hello", "how are you?"):
            ali.send("echo", text)
            replies.append(next_message_from(ali, "echo"))
        out, err = finish(bot)
    assert [(m.recipient, m.body) for m in replies] == [
        ("ali", "echo: hello"),
        ("ali", "echo: how are you?"),
    ]
    assert out.splitlines() == [
        "online as echo",
        "replied to ali: echo: hello",
        "replied to ali: echo: how are you?",
        "logged out",
    ]
    assert err == ""


def test_echo_bot_logs_in_to_an_existing_account_and_logs_out_on_sigterm(
    server: Server, connect: Callable[..., Client], user: Callable[[str], Client]
) -> None:
    signup(connect(), "Echo", "s3cret")
    ali = user("ali")
    with run_example("echo_bot.py", server.url, "echo", "s3cret") as bot:
        wait_for(ali, comes_online("Echo"), timeout=DEADLINE)
        ali.send("Echo", "ping")
        assert next_message_from(ali, "Echo").body == "echo: ping"
        bot.terminate()
        out, err = finish(bot)
    assert out.splitlines() == ["online as Echo", "replied to ali: echo: ping", "logged out"]
    assert err == ""
    assert not next(u for u in ali.users() if u.username == "Echo").online


def test_room_logger_joins_a_room_and_appends_json_lines_to_a_file(
    server: Server, user: Callable[[str], Client], tmp_path: Path
) -> None:
    ali = user("ali")
    ali.create_room("lobby")
    log = tmp_path / "lobby.jsonl"
    log.write_text('{"earlier": "line"}\n')

    def lines() -> list[str]:
        return log.read_text().splitlines()

    def members() -> int:
        return next(room.members for room in ali.rooms() if room.name == "lobby")

    args = (server.url, "logger", "s3cret", "lobby", "--out", str(log), "--max", "3")
    with run_example("room_logger.py", *args) as logger:
        wait_until(lambda: members() == 2, "joined")
        posted = [ali.send_room("lobby", body) for body in ("first", "second", "third")]
        wait_until(lambda: len(lines()) == 4, "logged")
        _, err = finish(logger)
    assert [json.loads(line) for line in lines()] == [
        {"earlier": "line"},
        *(as_logged(message) for message in posted),
    ]
    assert err == "logging #lobby\n"


def test_room_logger_creates_a_missing_room_and_logs_to_stdout(
    server: Server, user: Callable[[str], Client]
) -> None:
    ali = user("ali")
    with run_example(
        "room_logger.py", server.url, "logger", "s3cret", "News", "--max", "2"
    ) as logger:
        wait_for(ali, lambda event: event.kind == "room_created" and event.room == "News")
        ali.join("news")
        posted = [ali.send_room("news", body) for body in ("one", "two")]
        out, err = finish(logger)
    assert [json.loads(line) for line in out.splitlines()] == [as_logged(m) for m in posted]
    assert [m.room for m in posted] == ["News", "News"]
    assert err == "logging #News\n"


def test_async_chat_prints_the_direct_and_the_room_message(server: Server) -> None:
    for _ in range(2):  # the second run logs in to the accounts and joins the room of the first
        with run_example("async_chat.py", server.url) as chat:
            out, err = finish(chat)
        assert out.splitlines() == [
            "bob got a direct message from async_ada: Hi Bob, from asyncio!",
            "ada got #async-demo <async_bob> Hello, room!",
        ]
        assert err == ""


def test_demo_shows_the_direct_and_the_room_message(server: Server) -> None:
    with run_example("demo.py", server.url) as demo:
        out, err = finish(demo)
    assert "sam got a message from demo_ali: Hi Sam! This is libimchat." in out.splitlines()
    assert "#demo-room <demo_sam> Hello, room!" in out.splitlines()
    assert err == ""


def test_outbox_sends_each_line_once_though_a_first_try_reached_the_server_unmarked(
    server: Server, connect: Callable[..., Client], user: Callable[[str], Client], tmp_path: Path
) -> None:
    ali = user("ali")
    outbox = tmp_path / "outbox.jsonl"
    # a run that crashed after the server stored its first line, before marking it sent
    crashed = connect()
    signup(crashed, "alerts", "s3cret")
    crashed.login("alerts", "s3cret")
    first_id = new_client_id()
    stored = crashed.send("ali", "disk full", client_id=first_id)
    lines = [
        {"to": "ali", "body": "disk full", "client_id": first_id},
        {"to": "ali", "body": "disk fine again"},
        {"to": "nobody", "body": "lost"},
    ]
    outbox.write_text("".join(json.dumps(line) + "\n" for line in lines))

    for run in range(2):  # the second run finds everything marked and sends nothing
        with run_example("outbox.py", server.url, "alerts", "s3cret", str(outbox)) as sender:
            out, err = sender.communicate(timeout=DEADLINE)
        assert sender.returncode == (1 if run == 0 else 0)  # "nobody" is refused, once
        marked = [json.loads(line) for line in outbox.read_text().splitlines()]
        if run == 0:
            assert out.splitlines() == [
                f"{first_id}: message {stored.id} to ali",
                f"{marked[1]['client_id']}: message {marked[1]['sent']} to ali",
            ]
            assert err == f"{marked[2]['client_id']}: refused, no_such_user\n"
        else:
            assert (out, err) == ("", "")
    assert [
        (line["client_id"] == first_id, "sent" in line, line.get("error")) for line in marked
    ] == [
        (True, True, None),
        (False, True, None),
        (False, False, "no_such_user"),
    ]
    assert marked[0]["sent"] == stored.id
    assert [m.body for m in ali.history("alerts")] == ["disk full", "disk fine again"]
