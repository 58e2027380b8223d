"""AsyncClient: the same behaviour as Client, awaited."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

import pytest

from libimchat import AsyncClient, ChatError, Event, Server
from tests.helpers import start_server
from tests.test_limits import SMALL_PAGES


async def _user(url: str, username: str) -> AsyncClient:
    client = AsyncClient(url, timeout=5)
    await client.signup(username, "pw", first_name="F", last_name="L", phone="0633217608")
    await client.login(username, "pw")
    return client


async def _next(client: AsyncClient, kind: str) -> Event:
    async def first() -> Event:
        async for event in client.events():
            if event.kind == kind:
                return event
        raise AssertionError("the event stream ended")

    return await asyncio.wait_for(first(), 5)


def test_async_direct_and_room_messages(server: Server) -> None:
    async def scenario() -> None:
        ali = await _user(server.url, "ali")
        sam = await _user(server.url, "sam")
        async with ali, sam:
            sent = await ali.send("sam", "hi from asyncio")
            assert (await _next(sam, "message")).message == sent
            await ali.create_room("Room1")
            await sam.join("Room1")
            posted = await sam.send_room("Room1", "room hi")
            assert (await _next(ali, "room_message")).message == posted
            assert await ali.history("sam") == [sent]
            assert await ali.room_history("Room1") == [posted]
            assert {u.username for u in await ali.users()} == {"ali", "sam"}
            with pytest.raises(ChatError) as caught:
                await ali.send("nobody", "hello?")
            assert caught.value.code == "no_such_user"

    asyncio.run(scenario())


def test_async_users_and_rooms_come_whole_across_pages(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("libimchat.directory.LIST_PAGE", 1)  # the server's, in this process

    async def scenario() -> None:
        ali = await _user(server.url, "ali")
        sam = await _user(server.url, "sam")
        async with ali, sam:
            await ali.create_room("Room2")
            await ali.create_room("Room1")
            assert [u.username for u in await sam.users()] == ["ali", "sam"]
            assert [r.name for r in await sam.rooms()] == ["Room1", "Room2"]

    asyncio.run(scenario())


def test_async_users_come_whole_though_the_server_limits_its_pages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("libimchat.directory.LIST_PAGE", 5)  # the server's, in this process
    server = start_server(tmp_path, limits=SMALL_PAGES)

    async def scenario() -> None:
        clients = [await _user(server.url, f"user{i}") for i in range(12)]
        try:
            users = await clients[0].users()  # three pages, the third after a wait
            assert [u.username for u in users] == sorted(f"user{i}" for i in range(12))
        finally:
            for client in clients:
                await client.aclose()

    try:
        asyncio.run(scenario())
    finally:
        server.stop()


def test_async_callbacks_get_events_of_their_kind(server: Server) -> None:
    async def scenario() -> None:
        ali = await _user(server.url, "ali")
        sam = await _user(server.url, "sam")
        got: asyncio.Queue[Event] = asyncio.Queue()

        async def on_message(event: Event) -> None:
            await got.put(event)

        async with ali, sam:
            sam.on("message", on_message)
            sent = await ali.send("sam", "via a callback")
            event = await asyncio.wait_for(got.get(), 5)
            assert event.message == sent
            # a kind with callbacks does not also reach the event stream
            leftover = await sam.next_event(timeout=0.3)
            assert leftover is None or leftover.kind != "message"

    asyncio.run(scenario())


def test_a_failing_coroutine_callback_is_logged_and_one_under_way_is_cancelled_at_close(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    started, cancelled = asyncio.Event(), []

    async def scenario() -> None:
        ali = await _user(server.url, "ali")
        sam = await _user(server.url, "sam")

        async def fails(event: Event) -> None:
            raise ValueError("a bug in the application")

        async def waits(event: Event) -> None:
            started.set()
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.append(event.kind)
                raise

        sam.on("message", fails)
        sam.on("message", waits)
        async with ali:
            await ali.send("sam", "hi")
            await asyncio.wait_for(started.wait(), 5)
            await sam.aclose()  # returns once the waiting callback is cancelled

    with caplog.at_level(logging.ERROR, logger="libimchat.aio"):
        asyncio.run(scenario())
    assert cancelled == ["message"]
    (failed,) = [r for r in caplog.records if r.name == "libimchat.aio"]
    assert failed.getMessage() == "a 'message' callback failed"
    assert failed.exc_info is not None and isinstance(failed.exc_info[1], ValueError)


def test_async_timeout_when_no_server_answers() -> None:
    async def scenario() -> None:
        async with AsyncClient("tcp://127.0.0.1:9", timeout=0.5, insecure=True) as client:
            with pytest.raises(ChatError) as caught:
                await client.users()
            assert caught.value.code == "timeout"

    asyncio.run(scenario())


def test_a_burst_larger_than_the_send_queue_is_all_sent(server: Server) -> None:
    # 3,000 sends of 8,000 characters at once fill libzmq's send queue (1,000
    # messages) and the kernel's buffers; what has no room waits its turn
    async def scenario() -> None:
        ali = await _user(server.url, "ali")
        sam = await _user(server.url, "sam")
        async with ali, sam:
            bodies = [f"{i:04d}" + "x" * 7996 for i in range(3000)]
            sent = await asyncio.gather(*(ali.send("sam", body) for body in bodies))
            assert [m.body for m in sent] == bodies

    asyncio.run(scenario())
    db = sqlite3.connect(server.data_dir / "imchat.db")
    assert db.execute("SELECT count(*) FROM messages").fetchone() == (3000,)
