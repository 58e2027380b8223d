"""Send the direct messages of an outbox file, each once, across crashes and reruns.

    python examples/outbox.py tcp://127.0.0.1:5555 alerts s3cret outbox.jsonl

Each line of the outbox is a JSON object ``{"to": ..., "body": ...}``. A line
gets its client id (``libimchat.new_client_id()``) written into the file before
it is sent, and its message id (``"sent"``) once the server has stored it; a
line the server refuses gets the error's code (``"error"``) instead. Run it
again after a crash, a timeout or a lost connection and it sends again the
lines not marked: one whose first send did reach the server is answered with
the original message, so its recipient sees it once. While the server limits
the rate, it waits as told; it exits 1 if a line was refused.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from libimchat import ChatError, ChatTimeout, Client, Message, new_client_id


def read(outbox: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in outbox.read_text(encoding="utf-8").splitlines() if line]


def save(outbox: Path, lines: list[dict[str, Any]]) -> None:
    """Replace the file whole (a crash leaves the old one or the new one, never half)."""
    draft = outbox.with_name(outbox.name + ".tmp")
    with open(draft, "w", encoding="utf-8") as out:
        out.writelines(json.dumps(line) + "\n" for line in lines)
        out.flush()
        os.fsync(out.fileno())
    os.replace(draft, outbox)


def log_in(client: Client, username: str, password: str) -> None:
    """Log in, signing up first if the account does not exist yet."""
    try:
        client.signup(username, password, first_name="Out", last_name="Box", phone="0600000000")
    except ChatError as exc:
        if exc.code != "username_taken":
            raise
    client.login(username, password)


def send_all(client: Client, outbox: Path) -> int:
    """Send every line not yet sent or refused; returns how many were refused."""
    lines = read(outbox)
    if any("client_id" not in line for line in lines):
        for line in lines:
            line.setdefault("client_id", new_client_id())
        save(outbox, lines)  # the ids are kept before anything is sent with them
    refused = 0
    for line in lines:
        if "sent" in line or "error" in line:
            continue
        try:
            message = send(client, line)
        except ChatTimeout:
            raise  # not refused: the next run sends it again, with the same id
        except ChatError as exc:
            line["error"] = exc.code
            refused += 1
            print(f"{line['client_id']}: refused, {exc.code}", file=sys.stderr)
        else:
            line["sent"] = message.id
            print(f"{line['client_id']}: message {message.id} to {message.recipient}")
        save(outbox, lines)
    return refused


def send(client: Client, line: dict[str, Any]) -> Message:
    """Send one line, waiting as told while the server limits the rate."""
    while True:
        try:
            return client.send(line["to"], line["body"], client_id=line["client_id"])
        except ChatError as exc:
            if exc.code != "rate_limited":
                raise
            time.sleep(exc.retry_after or 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description="Send an outbox file's messages, each once.")
    parser.add_argument("url", help="the server, tcp://host:port#key as `imchat serve` prints it")
    parser.add_argument("username")
    parser.add_argument("password")
    parser.add_argument("outbox", type=Path, help='JSON lines: {"to": ..., "body": ...}')
    args = parser.parse_args()
    with Client(args.url) as client:  # closing it logs out
        log_in(client, args.username, args.password)
        refused = send_all(client, args.outbox)
    sys.exit(1 if refused else 0)


if __name__ == "__main__":
    main()
