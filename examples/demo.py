"""A short tour of libimchat against a running server: two users, a DM, a room.

    python examples/demo.py tcp://127.0.0.1:5555

It signs up two demo users the first time and logs them in on later runs.
"""

from __future__ import annotations

import sys

from libimchat import ChatError, Client

DEMO_USERS = {"demo_ali": "Ali", "demo_sam": "Sam"}


def log_in(url: str, username: str) -> Client:
    client = Client(url)
    try:
        client.signup(
            username, "demo-password", first_name=DEMO_USERS[username], last_name="Demo",
            phone="0600000000",
        )  # fmt: skip
    except ChatError as exc:
        if exc.code != "username_taken":
            raise
    client.login(username, "demo-password")
    return client


def main(url: str) -> None:
    with log_in(url, "demo_ali") as ali, log_in(url, "demo_sam") as sam:
        print("online:", ", ".join(u.username for u in ali.users() if u.online))
        ali.send("demo_sam", "Hi Sam! This is libimchat.")
        event = sam.next_event(timeout=5)
        while event is not None and event.kind != "message":
            event = sam.next_event(timeout=5)
        if event is not None and event.message is not None:
            print(f"sam got a message from {event.message.sender}: {event.message.body}")
        try:
            ali.create_room("demo-room")
        except ChatError as exc:
            if exc.code != "room_exists":
                raise
            ali.join("demo-room")
        sam.join("demo-room")
        sam.send_room("demo-room", "Hello, room!")
        for message in ali.room_history("demo-room", limit=5):
            print(f"#{message.room} <{message.sender}> {message.body}")
    print(f"\nThe server keeps running at {url}; press Ctrl-C to stop it.")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:5555")
