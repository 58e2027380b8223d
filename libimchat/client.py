"""The synchronous client: each call blocks until the server answers.

Events (direct and room messages, presence, renames...) arrive on a background
thread and wait in a queue for :meth:`Client.next_event`, or go to callbacks
registered with :meth:`Client.on`.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from types import TracebackType
from typing import TypeVar

from . import calls
from .address import parse_url
from .errors import ChatError, ChatTimeout
from .link import Link
from .models import Event, EventKind, Message, Room, User

log = logging.getLogger(__name__)
T = TypeVar("T")


class Client:
    """A connection to a libimchat server.

    Args:
        url: the server's URL (``Server.url``), ``tcp://host:port#server-key``.
        timeout: seconds to wait for each answer before raising ``ChatError("timeout")``.
        heartbeat_interval: seconds between heartbeats (default: the server's).
        heartbeat_liveness: heartbeats missed before reconnecting (default: the server's).
        server_key: the server's public key, for a URL without ``#key``. With
            neither, the key of the server on this machine that uses the
            default data dir (``imchat serve``).
        insecure: speak plain text, to a server run with ``--insecure``.

    Every connection is encrypted and the server authenticated (CurveZMQ)
    unless ``insecure`` is given. A call to a server that refuses the
    handshake (wrong key, or a plain-text server) raises
    ``ChatError("handshake_failed")`` saying which; a server too full to take
    the connection, ``ChatError("server_full")``, until the client, trying
    again by itself, gets in.

    Raises:
        ChatError: ``invalid`` for a malformed URL or key; ``handshake_failed``
            when no server key is given and none is found on this machine.
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
        # None marks the end: close() puts it, and whoever takes it puts it back
        self._events: queue.SimpleQueue[Event | None] = queue.SimpleQueue()
        self._callbacks: dict[str, list[Callable[[Event], object]]] = {}
        self._callback_queue: queue.SimpleQueue[Event | None] | None = None
        self._link = Link(
            parse_url(url, server_key=server_key, insecure=insecure),
            emit=self._deliver,
            heartbeat_interval=heartbeat_interval,
            heartbeat_liveness=heartbeat_liveness,
            agent="libimchat-sync",
        )
        self._link.start()

    def _call(self, call: calls.Call[T]) -> T:
        request, read = call
        future = self._link.request(request)
        try:
            reply = future.result(self.timeout)
        except FutureTimeout:
            self._link.forget(future)
            raise ChatTimeout(f"the server did not answer within {self.timeout:g} s") from None
        return calls.result(reply, read)

    def _every(self, pages: calls.Pages[T], name: Callable[[T], str]) -> list[T]:
        """All of a paged list: the next page after the last item, while more follow,
        waiting as long as the server says when it limits the pages."""
        items: list[T] = []
        more = True
        while more:
            try:
                page, more = self._call(pages(name(items[-1]) if items else ""))
            except ChatError as exc:
                if exc.code != "rate_limited":
                    raise
                time.sleep(exc.retry_after or 0.0)
                continue
            items += page
        return items

    # --- accounts and presence

    @property
    def user(self) -> User | None:
        """Who this client is logged in as (``None`` before login and after logout)."""
        return self._link.core.user

    def signup(
        self, username: str, password: str, *, first_name: str, last_name: str, phone: str
    ) -> None:
        """Create an account.

        Raises:
            ChatError: ``missing_fields``, ``invalid`` or ``username_taken``;
                ``rate_limited`` (with ``retry_after``) when the server is too
                busy checking passwords to take another.
        """
        self._call(calls.signup(username, password, first_name, last_name, phone))

    def login(self, username: str, password: str) -> User:
        """Log in; from now on this client receives events.

        Raises:
            ChatError: ``bad_credentials`` for a wrong username or password;
                ``rate_limited`` (with ``retry_after``) after too many failed
                logins, or when the server is too busy checking passwords;
                ``server_full`` (with ``retry_after``) when the server holds
                as many sessions, or connections, as it can.
        """
        return self._call(calls.login(username, password))

    def logout(self) -> None:
        self._call(calls.logout())

    def users(self) -> list[User]:
        """Every registered user, with ``.online`` (asked for 1,000 at a time, waiting
        when the server limits the pages)."""
        return self._every(calls.users, lambda user: user.username)

    def rename(self, username: str) -> User:
        """Change your username, for everyone and in all history.

        Returns:
            Your account, under its new name.

        Raises:
            ChatError: ``invalid`` or ``username_taken``.
        """
        return self._call(calls.rename(username))

    def block(self, username: str) -> None:
        """Receive nothing more from ``username`` (DMs, room messages, invites).

        Raises:
            ChatError: ``no_such_user``, ``invalid`` (yourself) or
                ``too_many_blocks`` (1,000 by default: ``Limits.blocks_per_user``).
        """
        self._call(calls.block(username))

    def unblock(self, username: str) -> None:
        self._call(calls.unblock(username))

    def blocked(self) -> list[str]:
        """The usernames you block."""
        return self._call(calls.blocked())

    # --- messages

    def send(self, to: str, body: str, *, client_id: str | None = None) -> Message:
        """Send a direct message; returns once it is stored.

        Args:
            to: the recipient's username.
            body: the text.
            client_id: an idempotency key; sending again with the same one
                returns the original message instead of a copy. By default a
                fresh :func:`~libimchat.new_client_id`; make yours with it too,
                since ids that sort by time cost the server least to keep.

        Raises:
            ChatError: ``no_such_user``, ``blocked``, ``invalid`` (empty or oversized
                body), ``rate_limited`` (with ``retry_after``) past the sending limit.
        """
        return self._call(calls.send(to, body, client_id))

    def history(
        self, peer: str, *, limit: int = calls.DEFAULT_PAGE, before: int | None = None
    ) -> list[Message]:
        """Your direct messages with ``peer``, oldest first.

        Args:
            limit: at most this many (the newest ones).
            before: only messages older than this message id (the next page back).

        Raises:
            ChatError: ``no_such_user``; ``rate_limited`` (with ``retry_after``)
                past the pages one user may fetch (``Limits.page_bytes_burst``).
        """
        return self._call(calls.history(peer, limit, before))

    # --- rooms

    def create_room(self, room: str) -> Room:
        """Create a room and join it.

        Raises:
            ChatError: ``room_exists``, ``invalid``, ``missing_fields`` (an empty
                name) or ``too_many_rooms``.
        """
        return self._call(calls.create_room(room))

    def rooms(self) -> list[Room]:
        """Every room, with whether you are in it (asked for 1,000 at a time)."""
        return self._every(calls.rooms, lambda room: room.name)

    def join(self, room: str) -> Room:
        """Join a room: its messages arrive as ``room_message`` events from now on."""
        return self._call(calls.join(room))

    def leave(self, room: str) -> None:
        self._call(calls.leave(room))

    def invite(self, room: str, username: str) -> None:
        """Send ``username`` an ``invite`` event for a room you are in."""
        self._call(calls.invite(room, username))

    def send_room(self, room: str, body: str, *, client_id: str | None = None) -> Message:
        """Post to a room you joined; returns once it is stored."""
        return self._call(calls.send_room(room, body, client_id))

    def room_history(
        self, room: str, *, limit: int = calls.DEFAULT_PAGE, before: int | None = None
    ) -> list[Message]:
        """A room's messages, oldest first (the newest ``limit``, or those before ``before``)."""
        return self._call(calls.room_history(room, limit, before))

    # --- events

    def next_event(self, timeout: float | None = None) -> Event | None:
        """The next event, waiting up to ``timeout`` seconds (forever if ``None``).

        Returns:
            The event, or ``None`` if none came in time or the client is closed.
        """
        try:
            event = self._events.get(timeout=timeout)
        except queue.Empty:
            return None
        if event is None:
            self._events.put(None)  # wake the next waiter too
        return event

    def on(self, kind: EventKind, callback: Callable[[Event], object]) -> None:
        """Call ``callback(event)`` for every event of this kind, on a thread of the client's.

        Events of a kind with callbacks go to them instead of :meth:`next_event`.
        A callback may call the client's methods.
        """
        self._callbacks.setdefault(kind, []).append(callback)
        if self._callback_queue is None:
            self._callback_queue = queue.SimpleQueue()
            threading.Thread(target=self._run_callbacks, daemon=True).start()

    def _deliver(self, event: Event) -> None:
        if event.kind in self._callbacks and self._callback_queue is not None:
            self._callback_queue.put(event)
        else:
            self._events.put(event)

    def _run_callbacks(self) -> None:
        assert self._callback_queue is not None
        while (event := self._callback_queue.get()) is not None:
            for callback in self._callbacks.get(event.kind, []):
                try:
                    callback(event)
                except Exception:
                    log.exception("a %r callback failed", event.kind)

    # --- life cycle

    def close(self) -> None:
        """Log out (if logged in) and disconnect."""
        if self.user is not None:
            # if the server is gone, it ends the session after the heartbeat anyway
            with contextlib.suppress(FutureTimeout, ChatError):
                self._link.request(calls.logout()[0]).result(min(self.timeout, 1.0))
        self._link.close()
        self._events.put(None)
        if self._callback_queue is not None:
            self._callback_queue.put(None)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
