"""Log a room's messages as JSON lines: {"seq", "sender", "body", "sent_at"}.

    python examples/room_logger.py tcp://127.0.0.1:5555 logger s3cret lobby --out lobby.jsonl

It signs up and creates the room if needed, appends one line per room message
to ``--out`` (default: stdout), flushing each, and stops after N messages with
``--max N``, or on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from typing import TextIO

from libimchat import ChatError, Client

FIELDS = ("seq", "sender", "body", "sent_at")  # of each Message, one JSON object per line


def log_in(client: Client, username: str, password: str) -> None:
    """Log in, signing up first if the account does not exist yet."""
    try:
        client.signup(username, password, first_name="Room", last_name="Logger", phone="0600000000")
    except ChatError as exc:
        if exc.code != "username_taken":
            raise
    client.login(username, password)


def enter(client: Client, room: str) -> str:
    """Join the room, creating it if it does not exist; returns its name as the server spells it."""
    try:
        return client.join(room).name
    except ChatError as exc:
        if exc.code != "no_such_room":
            raise
        return client.create_room(room).name


def log_room(
    client: Client, room: str, out: TextIO, stop: threading.Event, max_messages: int | None
) -> None:
    logged = 0
    while not stop.is_set() and (max_messages is None or logged < max_messages):
        # wait briefly, so that a stop request is noticed between two lines, never during one
        event = client.next_event(timeout=0.2)
        message = event.message if event is not None and event.kind == "room_message" else None
        if message is None or message.room != room:  # we may be in other rooms from earlier runs
            continue
        record = {field: getattr(message, field) for field in FIELDS}
        print(json.dumps(record), file=out, flush=True)
        logged += 1


def main() -> None:
    parser = argparse.ArgumentParser(description="Log a room's messages as JSON lines.")
    parser.add_argument("url", help="the server, tcp://host:port#key as `imchat serve` prints it")
    parser.add_argument("username")
    parser.add_argument("password")
    parser.add_argument("room")
    parser.add_argument("--out", help="append to this file (default: stdout)")
    parser.add_argument("--max", type=int, default=None, help="stop after this many messages")
    args = parser.parse_args()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(open(args.out, "a", encoding="utf-8")) if args.out else sys.stdout
        client = stack.enter_context(Client(args.url))  # closing it logs out
        log_in(client, args.username, args.password)
        room = enter(client, args.room)
        print(f"logging #{room}", file=sys.stderr, flush=True)  # stdout may be the log itself
        log_room(client, room, out, stop, args.max)


if __name__ == "__main__":
    main()
