"""Two users chatting through AsyncClient: a direct message, then a room message.

    python examples/async_chat.py tcp://127.0.0.1:5555

It signs up the two users the first time and logs them in on later runs.
"""

from __future__ import annotations

import asyncio
import sys

from libimchat import AsyncClient, ChatError, Message

ROOM = "async-demo"


async def log_in(client: AsyncClient, username: str) -> None:
    """Log in, signing up first if the account does not exist yet."""
    try:
        await client.signup(
            username, "pw", first_name=username, last_name="Async", phone="0600000000"
        )
    except ChatError as exc:
        if exc.code != "username_taken":
            raise
    await client.login(username, "pw")


async def arrival(client: AsyncClient, sent: Message) -> Message:
    """``sent`` as it reaches ``client``, skipping every other event (presence, rooms...)."""
    async for event in client.events():
        if event.message is not None and event.message.id == sent.id:
            return event.message
    raise RuntimeError("the event stream ended")


async def main(url: str) -> None:
    async with AsyncClient(url) as ada, AsyncClient(url) as bob:  # leaving logs both out
        await log_in(ada, "async_ada")
        await log_in(bob, "async_bob")
        sent = await ada.send("async_bob", "Hi Bob, from asyncio!")
        got = await asyncio.wait_for(arrival(bob, sent), timeout=5)
        print(f"bob got a direct message from {got.sender}: {got.body}")

        try:
            await ada.create_room(ROOM)
        except ChatError as exc:
            if exc.code != "room_exists":
                raise
            await ada.join(ROOM)
        await bob.join(ROOM)
        posted = await bob.send_room(ROOM, "Hello, room!")
        got = await asyncio.wait_for(arrival(ada, posted), timeout=5)
        print(f"ada got #{got.room} <{got.sender}> {got.body}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:5555"))
