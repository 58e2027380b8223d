"""A bot that answers every direct message with "echo: <text>".

    python examples/echo_bot.py tcp://127.0.0.1:5555 echo_bot s3cret [--max N]

It signs up the first time and logs in on later runs. It stops after N replies
with ``--max N``, or on Ctrl-C or SIGTERM, logging out on the way.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from libimchat import ChatError, Client


def log_in(client: Client, username: str, password: str) -> str:
    """Log in, signing up first if the account does not exist yet; returns our username."""
    try:
        client.signup(username, password, first_name="Echo", last_name="Bot", phone="0600000000")
    except ChatError as exc:
        if exc.code != "username_taken":
            raise
    return client.login(username, password).username


def echo(client: Client, me: str, stop: threading.Event, max_replies: int | None) -> None:
    replies = 0
    while not stop.is_set() and (max_replies is None or replies < max_replies):
        # wait briefly, so that a stop request is noticed between two replies, never during one
        event = client.next_event(timeout=0.2)
        message = event.message if event is not None and event.kind == "message" else None
        # a message we sent from another session of ours arrives as a copy: never echo it
        if message is None or message.sender == me:
            continue
        reply = f"echo: {message.body}"
        try:
            client.send(message.sender, reply)
        except ChatError as exc:  # e.g. "blocked": the sender blocked us meanwhile
            print(f"could not reply to {message.sender}: {exc}", file=sys.stderr)
            continue
        replies += 1
        print(f"replied to {message.sender}: {reply}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="Echo every direct message back.")
    parser.add_argument("url", help="the server, tcp://host:port#key as `imchat serve` prints it")
    parser.add_argument("username")
    parser.add_argument("password")
    parser.add_argument("--max", type=int, default=None, help="stop after this many replies")
    args = parser.parse_args()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with Client(args.url) as client:  # leaving the block logs out and disconnects
        me = log_in(client, args.username, args.password)
        print(f"online as {me}", flush=True)
        echo(client, me, stop, args.max)
    print("logged out", flush=True)


if __name__ == "__main__":
    main()
