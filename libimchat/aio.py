"""The asyncio client: the same calls as :class:`~libimchat.client.Client`, awaitable.

It shares the connection thread (link.py) and the request building (calls.py)
with the sync client; only waiting differs: replies are awaited with
:func:`asyncio.wrap_future` and events are handed to the event loop with
``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import TypeVar

from . import calls
from .address import parse_url
from .errors import ChatError, ChatTimeout
from .link import Link
from .models import Event, EventKind, Message, Room, User

log = logging.getLogger(__name__)
T = TypeVar("T")


class AsyncClient:
    """An asyncio connection to a libimchat server.

    Create it inside a running event loop (``async with AsyncClient(url) as c``).
    Arguments are those of :class:`~libimchat.client.Client`.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        heartbeat_interval: float | None = None,
        heartbeat_liveness: int | None = None,
        server_key: str | bytes | None = None,
        insecure: bool = False,
    ) -> None:
        self.timeout = timeout
        self._loop = asyncio.get_running_loop()
        # None marks the end: aclose() puts it, and whoever takes it puts it back
        self._events: asyncio.Queue[Event | None] = asyncio.Queue()
        self._callbacks: dict[str, list[Callable[[Event], object]]] = {}
        # coroutine callbacks under way: held, so that none is garbage-collected mid-run
        self._running: set[asyncio.Future[object]] = set()
        self._link = Link(
            parse_url(url, server_key=server_key, insecure=insecure),
            emit=self._deliver_threadsafe,
            heartbeat_interval=heartbeat_interval,
            heartbeat_liveness=heartbeat_liveness,
            agent="libimchat-asyncio",
        )
        self._link.start()

    async def _call(self, call: calls.Call[T]) -> T:
        request, read = call
        future = self._link.request(request)
        try:
            reply = await asyncio.wait_for(asyncio.wrap_future(future), self.timeout)
        except asyncio.TimeoutError:
            self._link.forget(future)
            raise ChatTimeout(f"the server did not answer within {self.timeout:g} s") from None
        except asyncio.CancelledError:
            self._link.forget(future)
            raise
        return calls.result(reply, read)

    async def _every(self, pages: calls.Pages[T], name: Callable[[T], str]) -> list[T]:
        items: list[T] = []
        more = True
        while more:
            try:
                page, more = await self._call(pages(name(items[-1]) if items else ""))
            except ChatError as exc:  # the server limits pages: wait as long as it says
                if exc.code != "rate_limited":
                    raise
                await asyncio.sleep(exc.retry_after or 0.0)
                continue
            items += page
        return items

    @property
    def user(self) -> User | None:
        return self._link.core.user

    async def signup(
        self, username: str, password: str, *, first_name: str, last_name: str, phone: str
    ) -> None:
        await self._call(calls.signup(username, password, first_name, last_name, phone))

    async def login(self, username: str, password: str) -> User:
        return await self._call(calls.login(username, password))

    async def logout(self) -> None:
        await self._call(calls.logout())

    async def users(self) -> list[User]:
        return await self._every(calls.users, lambda user: user.username)

    async def rename(self, username: str) -> User:
        return await self._call(calls.rename(username))

    async def block(self, username: str) -> None:
        await self._call(calls.block(username))

    async def unblock(self, username: str) -> None:
        await self._call(calls.unblock(username))

    async def blocked(self) -> list[str]:
        return await self._call(calls.blocked())

    async def send(self, to: str, body: str, *, client_id: str | None = None) -> Message:
        return await self._call(calls.send(to, body, client_id))

    async def history(
        self, peer: str, *, limit: int = calls.DEFAULT_PAGE, before: int | None = None
    ) -> list[Message]:
        return await self._call(calls.history(peer, limit, before))

    async def create_room(self, room: str) -> Room:
        return await self._call(calls.create_room(room))

    async def rooms(self) -> list[Room]:
        return await self._every(calls.rooms, lambda room: room.name)

    async def join(self, room: str) -> Room:
        return await self._call(calls.join(room))

    async def leave(self, room: str) -> None:
        await self._call(calls.leave(room))

    async def invite(self, room: str, username: str) -> None:
        await self._call(calls.invite(room, username))

    async def send_room(self, room: str, body: str, *, client_id: str | None = None) -> Message:
        return await self._call(calls.send_room(room, body, client_id))

    async def room_history(
        self, room: str, *, limit: int = calls.DEFAULT_PAGE, before: int | None = None
    ) -> list[Message]:
        return await self._call(calls.room_history(room, limit, before))

    # --- events

    async def next_event(self, timeout: float | None = None) -> Event | None:
        """The next event; ``None`` if none came within ``timeout`` s or the client is closed."""
        try:
            event = await asyncio.wait_for(self._events.get(), timeout)
        except asyncio.TimeoutError:
            return None
        if event is None:
            self._events.put_nowait(None)  # wake the next waiter too
        return event

    async def events(self) -> AsyncIterator[Event]:
        """Every event as it comes, until the client closes: ``async for event in c.events()``."""
        while (event := await self.next_event()) is not None:
            yield event

    def on(self, kind: EventKind, callback: Callable[[Event], object]) -> None:
        """Call ``callback(event)`` (a function or a coroutine function) for each event of a kind.

        Events of a kind with callbacks go to them instead of :meth:`events`.
        """
        self._callbacks.setdefault(kind, []).append(callback)

    def _deliver_threadsafe(self, event: Event) -> None:
        self._loop.call_soon_threadsafe(self._deliver, event)

    def _deliver(self, event: Event) -> None:
        callbacks = self._callbacks.get(event.kind)
        if not callbacks:
            self._events.put_nowait(event)
            return
        for callback in callbacks:
            try:
                outcome = callback(event)
            except Exception:
                log.exception("a %r callback failed", event.kind)
                continue
            if inspect.isawaitable(outcome):
                running = asyncio.ensure_future(outcome, loop=self._loop)
                self._running.add(running)
                running.add_done_callback(lambda done: self._callback_done(done, event.kind))

    def _callback_done(self, done: asyncio.Future[object], kind: str) -> None:
        self._running.discard(done)
        if not done.cancelled() and (error := done.exception()) is not None:
            log.error("a %r callback failed", kind, exc_info=error)

    # --- life cycle

    async def aclose(self) -> None:
        """Log out (if logged in) and disconnect; coroutine callbacks under way are cancelled."""
        if self.user is not None:
            with contextlib.suppress(asyncio.TimeoutError, ChatError):
                await asyncio.wait_for(
                    asyncio.wrap_future(self._link.request(calls.logout()[0])), 1.0
                )
        await asyncio.to_thread(self._link.close)
        self._events.put_nowait(None)
        running = [future for future in self._running if future is not asyncio.current_task()]
        for future in running:
            future.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
