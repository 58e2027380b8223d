"""What a client knows and decides, without any I/O: the shared core of Client and AsyncClient.

:class:`ClientCore` numbers requests, remembers which are pending, and turns
what the server sends into *actions* for the I/O layer (link.py) to carry out:
send a request, resolve a caller's pending request, hand an event to the
application, (un)subscribe a PUB topic.

It is where delivery guarantees live. Room messages carry a per-room sequence
number and direct messages a per-recipient inbox sequence; the core emits each
message once and in order, holding back early arrivals and asking the server
for whatever is missing: a message PUB dropped, one published before our
subscription took effect, or everything sent while we were disconnected. The
server's heartbeat answer (``Pong``) carries the newest sequence of each of our
rooms and of our inbox, so even a lost *last* message is noticed within one
heartbeat.

The server's PUB socket admits a SUB only while a session that named the SUB's
public key (``subscriber_key`` in Login and Resume) lives, and libzmq does not
retry a refused handshake. So the SUB is connected after each session start,
never before (it would be refused), connected anew after each later one (a SUB
that libzmq reconnected to a restarted server before we resumed was refused),
and closed at logout.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, Union

from . import protocol as p
from .models import Event, EventKind, Message, User
from .validation import name_key

BACKFILL_PAGE = 200
# requests given up on whose late replies are still taken (see ClientCore.tick, forget)
OVERDUE_KEPT = 64


@dataclass(frozen=True, slots=True)
class Transmit:
    """Send this request on the DEALER socket."""

    request: p.Request


@dataclass(frozen=True, slots=True)
class Resolve:
    """The caller waiting on ``rid`` gets ``reply``."""

    rid: int
    reply: p.Reply


@dataclass(frozen=True, slots=True)
class Emit:
    """Hand this event to the application."""

    event: Event


@dataclass(frozen=True, slots=True)
class Subscribe:
    topic: bytes


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    topic: bytes


@dataclass(frozen=True, slots=True)
class ConnectSubscriber:
    """(Re)connect the SUB socket to the server's PUB port, with every topic subscribed."""

    port: int


@dataclass(frozen=True, slots=True)
class DisconnectSubscriber:
    """Close the SUB socket: the session it was admitted for has ended."""


Action = Union[
    Transmit, Resolve, Emit, Subscribe, Unsubscribe, ConnectSubscriber, DisconnectSubscriber
]


class _Numbered(Protocol):
    @property
    def seq(self) -> int: ...


N = TypeVar("N", bound=_Numbered)


@dataclass
class _Sequence:
    """An ordered stream (a room, our inbox, server events): last number seen, early arrivals."""

    last: int
    early: dict[int, Any] = field(default_factory=dict)
    fetching: bool = False


class ClientCore:
    """A client's session state; every method returns the actions to carry out.

    Args:
        agent: the client's name, sent in Hello.
        subscriber_key: the CURVE public key (Z85) of the client's SUB socket,
            sent in Login and Resume so that the server's PUB socket admits
            it; "" without encryption.
    """

    def __init__(self, agent: str = "libimchat", subscriber_key: str = "") -> None:
        self.agent = agent
        self.subscriber_key = subscriber_key
        self._rids = itertools.count(1)
        self.pending: dict[int, p.Request] = {}
        self._internal: dict[int, p.Request] = {}
        self._internal_sent: dict[int, float] = {}  # rid -> when (the clock of tick())
        # given up on, yet answered if the reply comes late on the same connection
        self._overdue: dict[int, p.Request] = {}
        # the caller's requests it stopped waiting for: a late reply still tells us
        # what the server did (a block, a join), though nobody gets it
        self._abandoned: dict[int, p.Request] = {}
        # fetches of ours the server refused for the user's page budget, to ask
        # again: (when, what, for which stream)
        self._later: list[tuple[float, p.Request, _Sequence]] = []
        # when to resume again, after the server refused a Resume for want of room
        self._resume_at: float | None = None
        self._now = 0.0
        self.user: User | None = None
        self.token: str | None = None
        self.inbox: _Sequence | None = None
        self.rooms: dict[str, _Sequence] = {}  # by name key
        self.blocked: set[str] = set()  # name keys
        self.events = _Sequence(last=0)
        self.epoch: str | None = None
        self.heartbeat_interval: float | None = None
        self.heartbeat_liveness: int | None = None
        self.pub_port: int | None = None
        self.connected = False
        # our session is live on this connection: a request may go out at once
        # (else it waits for the session to start again, and goes out once)
        self._live = False
        # the caller's requests sent on this connection and not refused for want of a
        # session: the server answers them here, so a session start does not resend them
        self._on_wire: set[int] = set()
        self.refusal: p.Failure | None = None

    # --- driven by the I/O layer

    def connection_made(self) -> list[Action]:
        """A new DEALER connection: introduce ourselves; resume the session, if any."""
        self._live = False
        self._on_wire.clear()
        actions = self._internal_request(
            p.Hello(rid=0, version=p.PROTOCOL_VERSION, agent=self.agent)
        )
        if self.token is not None:
            actions += self._resume()
        else:
            actions += self._send_pending()
        return actions

    def tick(self, now: float) -> list[Action]:
        """The time now (seconds, any monotonic clock): give up on lost internal requests,
        and ask again for what the server said to ask for later.

        libzmq re-makes a broken connection by itself, silently; a request in
        flight then is lost, and its reply never comes. One of ours (a resume, a
        backfill) unanswered for a liveness window is forgotten, so that it is
        asked again when needed instead of blocking the stream forever.

        A reply that was only slow (a resume while a restarted server takes
        back thousands of clients) is still taken when it comes: the session
        it starts is live on this connection.
        """
        self._now = now
        window = (self.heartbeat_interval or 1.0) * (self.heartbeat_liveness or 3)
        lost = [rid for rid, sent in self._internal_sent.items() if now - sent > window]
        for rid in lost:
            request = self._overdue[rid] = self._internal.pop(rid)
            self._stop_waiting(request)
            del self._internal_sent[rid]
        _keep_newest(self._overdue)
        due = [(request, stream) for when, request, stream in self._later if when <= now]
        self._later = [entry for entry in self._later if entry[0] > now]
        actions: list[Action] = []
        for request, stream in due:
            # not if the stream was replaced (a new login), or fetches already
            if stream is self._stream_of(request) and not self._fetching(stream):
                self._stop_waiting(request)
                actions += self._fetch_again(request)
        if self._resume_at is not None and now >= self._resume_at:
            self._resume_at = None
            actions += self._resume()
        return actions

    def next_due(self) -> float | None:
        """When :meth:`tick` has something to send next (a postponed fetch or resume),
        on its clock; ``None``: nothing is postponed."""
        times = [when for when, _, _ in self._later]
        if self._resume_at is not None:
            times.append(self._resume_at)
        return min(times, default=None)

    def connection_lost(self) -> list[Action]:
        """The connection is lost (silence, or libzmq saw it break): forget internal requests;
        keep the caller's for resending."""
        self._live = False
        self._on_wire.clear()
        self._internal.clear()
        self._internal_sent.clear()
        self._overdue.clear()  # their replies went to the connection that is gone
        self._later.clear()  # the next session start catches up anyway
        self._resume_at = None  # the next connection resumes anyway
        self._abandoned.clear()
        for stream in self._streams():
            stream.fetching = False
        if not self.connected:
            return []
        self.connected = False
        return [Emit(Event(kind="connection", online=False))]

    def request(self, request: p.Request) -> tuple[int, list[Action]]:
        """Number a caller's request and send it; while our session is not live (a
        resume under way, the connection lost), hold it until the session starts again."""
        rid = next(self._rids)
        if self.refusal is not None:
            return rid, [Resolve(rid, dataclasses.replace(self.refusal, rid=rid))]
        request = dataclasses.replace(request, rid=rid)
        if isinstance(request, p.Login):
            request = dataclasses.replace(request, subscriber_key=self.subscriber_key)
        if isinstance(request, p.Logout) and self.inbox is not None:
            request = dataclasses.replace(request, inbox_seen=self.inbox.last)
        self.pending[rid] = request
        if self._live or self.token is None:
            self._on_wire.add(rid)
            return rid, _transmit(request)
        return rid, []

    def forget(self, rid: int) -> None:
        """The caller stopped waiting (timeout or cancellation)."""
        request = self.pending.pop(rid, None)
        self._on_wire.discard(rid)
        if request is not None:
            self._abandoned[rid] = request
            _keep_newest(self._abandoned)

    def heartbeat(self) -> list[Action]:
        seen = self.inbox.last if self.inbox else 0
        return self._internal_request(p.Ping(rid=0, inbox_seen=seen))

    def received(self, frames: list[bytes]) -> list[Action]:
        """Frames from the DEALER socket."""
        msg = p.decode(frames)
        rid = getattr(msg, "rid", None)
        if rid is not None and rid in self._internal:
            self._internal_sent.pop(rid, None)
            return self._internal_reply(self._internal.pop(rid), msg)  # type: ignore[arg-type]
        if rid is not None and rid in self._overdue:
            return self._internal_reply(self._overdue.pop(rid), msg)  # type: ignore[arg-type]
        if rid is not None and rid in self._abandoned:
            return self._learn(self._abandoned.pop(rid), msg)  # type: ignore[arg-type]
        if rid is not None and rid in self.pending:
            if self._session_lost(msg):
                self._session_gone()
                return self._resume()  # the request stays pending and is resent
            request = self.pending.pop(rid)
            self._on_wire.discard(rid)
            return [*self._learn(request, msg), Resolve(rid, msg)]  # type: ignore[arg-type]
        if isinstance(msg, p.Delivery):
            return self._direct_message(msg.message)
        if isinstance(msg, p.Invited):
            return [Emit(Event(kind="invite", room=msg.room, sender=msg.sender))]
        if isinstance(msg, p.AccountState) and self.user is not None:
            # another client of ours changed our blocks or rooms
            self.blocked = {name_key(name) for name in msg.blocked}
            return self._follow_rooms(msg.rooms)
        return []  # an answer nobody waits for any more

    def published(self, frames: list[bytes]) -> list[Action]:
        """Frames from the SUB socket."""
        msg = p.decode(frames)
        if self.user is None:
            return []
        if isinstance(msg, p.RoomPost):
            return self._room_message(msg.message)
        if isinstance(msg, (p.PresenceChanged, p.Renamed, p.RoomCreated)):
            return self._in_order(self.events, msg, self._server_event, self._fetch_events)
        return []

    def _server_event(self, msg: p.ServerEvent) -> list[Action]:
        if isinstance(msg, p.PresenceChanged):
            return [Emit(Event(kind="presence", username=msg.username, online=msg.online))]
        if isinstance(msg, p.RoomCreated):
            return [Emit(Event(kind="room_created", room=msg.room, sender=msg.created_by))]
        self._renamed(msg.old, msg.new)
        return [Emit(Event(kind="rename", old=msg.old, new=msg.new))]

    # --- replies to the caller's requests that change what we know

    def _learn(self, request: p.Request, reply: p.Reply) -> list[Action]:
        if isinstance(reply, p.Failure):
            if isinstance(request, p.Join) and name_key(request.room) not in self.rooms:
                return [Unsubscribe(p.room_topic(request.room))]
            return []
        if isinstance(reply, p.SessionStarted):
            return self._session_started(reply, resumed=False)
        if isinstance(reply, p.RoomReply) and isinstance(request, (p.Join, p.CreateRoom)):
            return self._joined(reply.room.name, reply.room.last_seq)
        if isinstance(reply, p.Profile):
            self.user = reply.user
        elif isinstance(request, p.Leave):
            stream = self.rooms.pop(name_key(request.room), None)
            return [Unsubscribe(p.room_topic(request.room))] if stream else []
        elif isinstance(request, p.Logout):
            return self._logged_out()
        elif isinstance(request, p.Block):
            self.blocked.add(name_key(request.username))
        elif isinstance(request, p.Unblock):
            self.blocked.discard(name_key(request.username))
        return []

    def _session_started(self, reply: p.SessionStarted, *, resumed: bool) -> list[Action]:
        actions: list[Action] = []
        fresh = not resumed or self.inbox is None
        self._live = True
        self._resume_at = None
        self.user, self.token = reply.user, reply.token
        self.blocked = {name_key(name) for name in reply.blocked}
        if reply.heartbeat_interval:
            self.heartbeat_interval = reply.heartbeat_interval
        if fresh or reply.epoch != self.epoch:
            # a new server run numbers its events afresh; within one run, a
            # resumed session fetches what it missed (see _catch_up)
            self.events = _Sequence(last=reply.events_seq)
        self.epoch = reply.epoch
        if fresh:
            for room in self.rooms:
                actions.append(Unsubscribe(p.room_topic(room)))
            self.inbox = _Sequence(last=reply.inbox_acked)
            self.rooms = {name_key(mark.room): _Sequence(last=mark.seq) for mark in reply.rooms}
            actions.append(Subscribe(p.GLOBAL_TOPIC))
            actions += [Subscribe(p.room_topic(room)) for room in self.rooms]
        else:
            actions += self._follow_rooms(reply.rooms)
        if self.pub_port is not None:
            # the PUB socket admits our key from now on, and maybe refused it before
            actions.append(ConnectSubscriber(self.pub_port))
        actions += self._catch_up(reply.inbox_head, reply.rooms, reply.events_seq)
        if not self.connected:
            self.connected = True
            if resumed:
                actions.append(Emit(Event(kind="connection", online=True)))
        return actions

    def _follow_rooms(self, marks: tuple[p.RoomMark, ...]) -> list[Action]:
        """Follow exactly these rooms: a new one from its mark on; go on with the others."""
        actions: list[Action] = []
        seqs = {name_key(mark.room): mark.seq for mark in marks}
        for room in set(self.rooms) - set(seqs):
            del self.rooms[room]
            actions.append(Unsubscribe(p.room_topic(room)))
        for room, seq in seqs.items():
            if room not in self.rooms:
                self.rooms[room] = _Sequence(last=seq)
                actions.append(Subscribe(p.room_topic(room)))
        return actions

    def _joined(self, room: str, last_seq: int) -> list[Action]:
        if name_key(room) in self.rooms:
            return []
        self.rooms[name_key(room)] = _Sequence(last=last_seq)
        return [Subscribe(p.room_topic(room))]

    def _logged_out(self) -> list[Action]:
        actions: list[Action] = [Unsubscribe(p.room_topic(room)) for room in self.rooms]
        if self.user is not None:
            actions.append(Unsubscribe(p.GLOBAL_TOPIC))
        # the server stopped admitting our key, but cannot cut a SUB it let in
        actions.append(DisconnectSubscriber())
        self.user = self.token = self.inbox = None
        self.rooms, self.blocked = {}, set()
        self._live = False
        self._later.clear()
        self._resume_at = None
        return actions

    def _renamed(self, old: str, new: str) -> None:
        if name_key(old) in self.blocked:
            self.blocked.discard(name_key(old))
            self.blocked.add(name_key(new))
        if self.user is not None and name_key(self.user.username) == name_key(old):
            self.user = dataclasses.replace(self.user, username=new)

    # --- our own requests: handshake, resume, heartbeats, backfill

    def _internal_request(self, request: p.Request) -> list[Action]:
        rid = next(self._rids)
        request = dataclasses.replace(request, rid=rid)
        self._internal[rid] = request
        self._internal_sent[rid] = self._now
        return [Transmit(request)]

    def _internal_reply(self, request: p.Request, reply: p.Reply) -> list[Action]:
        if isinstance(reply, p.Welcome):
            self.heartbeat_interval = reply.heartbeat_interval
            self.heartbeat_liveness = reply.heartbeat_liveness
            self.pub_port = reply.pub_port  # connected to at the next session start
            return []
        if isinstance(reply, p.SessionStarted):
            return self._session_started(reply, resumed=True) + self._send_pending()
        if isinstance(reply, p.Pong):
            if reply.heartbeat_interval:  # the server asks for more (or fewer) heartbeats
                self.heartbeat_interval = reply.heartbeat_interval
            return self._catch_up(reply.inbox_head, reply.rooms, reply.events_seq)
        if isinstance(reply, p.MessagePage):
            return self._backfilled(request, reply)
        if isinstance(reply, p.EventPage):
            return self._events_backfilled(reply)
        if isinstance(reply, p.Failure):
            return self._internal_failure(request, reply)
        return []

    def _internal_failure(self, request: p.Request, failure: p.Failure) -> list[Action]:
        if isinstance(request, p.Hello) and failure.code == "unsupported_version":
            # the server will not talk to us: every call fails, saying why
            self.refusal = failure
            refused: list[Action] = [
                Resolve(rid, dataclasses.replace(failure, rid=rid)) for rid in self.pending
            ]
            self.pending.clear()
            return refused
        if isinstance(request, p.Resume) and failure.code == "session_expired":
            # the server no longer knows the token: the application must log in again
            actions: list[Action] = self._logged_out()
            self.connected = False
            actions.append(Emit(Event(kind="connection", online=False)))
            return actions + self._send_pending()
        if isinstance(request, p.Resume) and failure.code == "server_full":
            # the server holds as many sessions as it can: ask again when it says,
            # not at the next heartbeat (18 s apart on a big server)
            self._resume_at = self._now + (failure.retry_after or 1.0)
            return []
        if isinstance(request, p.Ping) and self._session_lost(failure):
            self._session_gone()
            return self._resume()
        stream = self._stream_of(request)
        if failure.code == "rate_limited" and stream is not None and stream.fetching:
            # the user's page budget is spent (another client of theirs read a lot):
            # the stream stays fetching, and asks again when the server said
            self._later.append((self._now + (failure.retry_after or 1.0), request, stream))
            return []
        self._stop_waiting(request)
        return []

    def _stream_of(self, request: p.Request) -> _Sequence | None:
        """The stream a fetch of ours fills, if we still keep it."""
        if isinstance(request, p.Inbox):
            return self.inbox
        if isinstance(request, p.RoomHistory):
            return self.rooms.get(request.room)
        if isinstance(request, p.Events):
            return self.events
        return None

    def _fetching(self, stream: _Sequence) -> bool:
        """Whether a fetch of ours for ``stream`` is in flight."""
        return any(self._stream_of(sent) is stream for sent in self._internal.values())

    def _fetch_again(self, request: p.Request) -> list[Action]:
        """The fetch of ``request``'s stream, from where the stream stands now."""
        if isinstance(request, p.Inbox) and self.inbox is not None:
            return self._fetch_inbox()
        if isinstance(request, p.RoomHistory) and request.room in self.rooms:
            return self._fetch_room(request.room)
        if isinstance(request, p.Events):
            return self._fetch_events()
        return []

    def _session_gone(self) -> None:
        """The server refused a request of ours for want of a session (it restarted,
        or ended the session: silent, or not reading what it was sent).

        Replies come in order: whatever this connection carried that is still
        unanswered was refused as well, or its reply was dropped with the
        session. All of it goes out again once the session starts again.
        """
        self._live = False
        self._on_wire.clear()

    def _send_pending(self) -> list[Action]:
        """Send the caller's requests that this connection has not carried yet, or that
        the server refused for want of a session.

        A resume given up on and answered late may come after another: the
        requests sent after the first are answered by its session, and go
        out once, not at each start.
        """
        unsent = [req for rid, req in self.pending.items() if rid not in self._on_wire]
        self._on_wire.update(req.rid for req in unsent)
        return [action for req in unsent for action in _transmit(req)]

    def _stop_waiting(self, request: p.Request) -> None:
        """A fetch of ours ended without its page: the stream may fetch again."""
        if isinstance(request, p.RoomHistory) and request.room in self.rooms:
            self.rooms[request.room].fetching = False  # internal fetches name rooms by key
        if isinstance(request, p.Inbox) and self.inbox is not None:
            self.inbox.fetching = False
        if isinstance(request, p.Events):
            self.events.fetching = False

    def _session_lost(self, reply: object) -> bool:
        """The server forgot our session (it restarted, or we were silent too long)."""
        return (
            isinstance(reply, p.Failure)
            and reply.code == "not_logged_in"
            and self.token is not None
        )

    def _resume(self) -> list[Action]:
        if (
            self.token is None
            or self._resume_at is not None  # the server is full: not before it said
            or any(isinstance(r, p.Resume) for r in self._internal.values())
        ):
            return []
        resume = p.Resume(rid=0, token=self.token, subscriber_key=self.subscriber_key)
        return self._internal_request(resume)

    def _catch_up(
        self, inbox_head: int, marks: tuple[p.RoomMark, ...], events_seq: int
    ) -> list[Action]:
        actions: list[Action] = []
        if events_seq > self.events.last:
            actions += self._fetch_events()
        if self.inbox is not None and inbox_head > self.inbox.last:
            actions += self._fetch_inbox()
        for mark in marks:
            stream = self.rooms.get(name_key(mark.room))
            if stream is not None and mark.seq > stream.last:
                actions += self._fetch_room(name_key(mark.room))
        return actions

    def _fetch_inbox(self) -> list[Action]:
        assert self.inbox is not None
        if self.inbox.fetching:
            return []
        self.inbox.fetching = True
        return self._internal_request(p.Inbox(rid=0, after=self.inbox.last, limit=BACKFILL_PAGE))

    def _fetch_events(self) -> list[Action]:
        if self.events.fetching:
            return []
        self.events.fetching = True
        return self._internal_request(p.Events(rid=0, after=self.events.last))

    def _events_backfilled(self, page: p.EventPage) -> list[Action]:
        self.events.fetching = False
        if not page.complete and page.events:
            # what we missed is forgotten by the server: go on from what it has
            self.events.last = page.events[0].seq - 1
        actions: list[Action] = []
        for event in page.events:
            actions += self._in_order(self.events, event, self._server_event, lambda: [])
        return actions

    def _fetch_room(self, room: str) -> list[Action]:
        stream = self.rooms[room]
        if stream.fetching:
            return []
        stream.fetching = True
        return self._internal_request(
            p.RoomHistory(rid=0, room=room, limit=BACKFILL_PAGE, after_seq=stream.last)
        )

    def _backfilled(self, request: p.Request, page: p.MessagePage) -> list[Action]:
        actions: list[Action] = []
        messages = page.messages
        if isinstance(request, p.Inbox) and self.inbox is not None:
            self.inbox.fetching = False
            for message in messages:  # all to us, whatever name we have here
                actions += self._inbox_message(message)
            if page.more or len(messages) == request.limit:
                actions += self._fetch_inbox()
        elif isinstance(request, p.RoomHistory) and request.room in self.rooms:
            self.rooms[request.room].fetching = False
            for message in messages:
                actions += self._room_message(message)
            if page.more or len(messages) == request.limit:
                actions += self._fetch_room(request.room)
        return actions

    # --- ordered delivery

    def _direct_message(self, message: Message) -> list[Action]:
        """A ``Delivery``: to us, or a copy of what we sent from another client of ours."""
        if self.user is None or self.inbox is None:
            return []
        me = name_key(self.user.username)
        if name_key(message.recipient or "") == me:
            return self._inbox_message(message)
        if name_key(message.sender) == me:
            return [Emit(Event(kind="message", message=message))]
        # neither name is ours: another client of ours renamed us, and the Renamed
        # event is on its way; the inbox has the message in order if it is to us
        return self._fetch_inbox()

    def _inbox_message(self, message: Message) -> list[Action]:
        assert self.inbox is not None
        return self._in_order(self.inbox, message, self._show("message"), self._fetch_inbox)

    def _room_message(self, message: Message) -> list[Action]:
        if message.room is None or name_key(message.room) not in self.rooms:
            return []
        room = name_key(message.room)
        stream = self.rooms[room]
        show = self._show("room_message")
        return self._in_order(stream, message, show, lambda: self._fetch_room(room))

    def _show(self, kind: EventKind) -> Callable[[Message], list[Action]]:
        """Emit a message as an event of this kind, unless its sender is blocked."""

        def show(message: Message) -> list[Action]:
            if name_key(message.sender) in self.blocked:
                return []
            return [Emit(Event(kind=kind, message=message, room=message.room))]

        return show

    def _in_order(
        self,
        stream: _Sequence,
        item: N,
        deliver: Callable[[N], list[Action]],
        fetch: Callable[[], list[Action]],
    ) -> list[Action]:
        """Deliver ``item`` and any early arrivals it unblocks; on a gap, hold it and fetch."""
        if item.seq <= stream.last:
            return []  # seen already
        if item.seq > stream.last + 1:
            stream.early[item.seq] = item
            return fetch()
        actions: list[Action] = []
        next_item: N | None = item
        while next_item is not None:
            stream.last = next_item.seq
            actions += deliver(next_item)
            next_item = stream.early.pop(stream.last + 1, None)
        if stream.early:  # drop early arrivals a backfill has overtaken
            stream.early = {seq: m for seq, m in stream.early.items() if seq > stream.last}
        return actions

    def _streams(self) -> list[_Sequence]:
        return [*self.rooms.values(), self.events, *([self.inbox] if self.inbox else [])]


def _transmit(request: p.Request) -> list[Action]:
    """Send a caller's request; a Join subscribes to its room first, so that nothing
    published after the join's snapshot slips past us (the rest is backfilled)."""
    if isinstance(request, p.Join):
        return [Subscribe(p.room_topic(request.room)), Transmit(request)]
    return [Transmit(request)]


def _keep_newest(given_up: dict[int, p.Request]) -> None:
    """Forget the oldest requests given up on past :data:`OVERDUE_KEPT` (their replies
    were dropped on a live connection, which is rare)."""
    while len(given_up) > OVERDUE_KEPT:
        del given_up[next(iter(given_up))]
