"""The chat server's logic: requests in, replies and publications out, as values.

:class:`Directory` knows who is online, who is in which room and who blocks
whom (kept in memory, in step with the store), and answers each request.
It never touches a socket: server.py feeds it batches of ``(peer, frames)``
from the ROUTER socket and sends what :class:`Outcome` holds. Because
everything a batch wrote is committed before the outcome is returned, every
reply and publication it holds describes durable state (the ack means durable).

A *peer* is the routing id the ROUTER socket gave a client's DEALER
connection. A peer becomes a *session* when it logs in or resumes; the session
is bound to that connection, never to anything the client claims. A session
also names the CURVE public key of the client's SUB socket: the runner's
gatekeeper lets a SUB connect to the PUB socket only with the key of a live
session (:meth:`Directory.may_subscribe`). Claiming another's key gains
nothing, since a CURVE handshake needs the matching secret key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
import logging
import math
import secrets
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, TypeVar

from . import protocol as p
from . import validation as v
from .confusables import skeleton
from .errors import ChatError, ProtocolError
from .limits import Limits, RateLimit
from .models import Message, Room, User
from .passwords import Passwords
from .store import MessageRow, Store

log = logging.getLogger(__name__)

# Requests handled without a savepoint of their own: their handlers refuse only
# before writing, then write one message (and maybe its dialog). Should one fail
# unexpectedly, what it wrote stays in the batch's transaction and _recover()
# reloads memory to match. A savepoint costs two statements more per message.
_UNGUARDED: frozenset[type] = frozenset((p.SendDirect, p.SendRoom))
MAX_PAGE = 500
# users or rooms in a UserList or RoomList: 1,000 of the longest names and
# profiles still fit the clients' 1 MiB frames
LIST_PAGE = 1000
# a page must fit in the clients' 1 MiB frames: a body of 8,000 characters is
# up to 32 KB, so 200 of them would not; the rest goes in the next page
PAGE_BYTES = 512 * 1024
PAGE_OVERHEAD = 256  # names, numbers and keys around a body, generously
# a server event in a page: two names of up to 64 characters and the rest, generously
EVENT_BYTES = 3 * PAGE_OVERHEAD
MAX_CLIENT_ID = 64
RECENT_EVENTS = 4096
ANSWERS_KEPT = 10_000
SESSION_TTL = 30 * 24 * 3600.0
# heartbeats a second the server answers before it asks clients for fewer: each costs
# ~50 us of CPU (thread wake-ups, CurveZMQ, Python), so ~2.5% of a core
HEARTBEATS_PER_SECOND = 500.0
SERVER_FULL_RETRY = 5.0  # seconds a client refused server_full is told to wait


@dataclass
class Outcome:
    """What the runner must send after a batch: replies to peers, then publications."""

    replies: list[tuple[bytes, p.ProtocolMessage]] = field(default_factory=list)
    publications: list[p.Publication] = field(default_factory=list)


@dataclass(frozen=True)
class PasswordWork:
    """Argon2 work a Login (verify against ``stored_hash``) or a Signup (hash) will need."""

    password: str
    stored_hash: str | None
    signup: bool = False


@dataclass
class _Account:
    id: int
    username: str
    key: str
    first_name: str
    last_name: str
    password_hash: str
    inbox_head: int
    inbox_acked: int
    blocked: set[int] = field(default_factory=set)
    rooms: set[int] = field(default_factory=set)


@dataclass
class _Room:
    id: int
    name: str
    key: str
    created_by: int
    last_seq: int
    members: set[int] = field(default_factory=set)


@dataclass
class _Session:
    peer: bytes
    user_id: int
    token_hash: str
    last_seen: float
    subscriber_key: str  # "" when the client has none (insecure)
    # the heartbeat interval last told to the client (Welcome aside), and the one before:
    # the session expires by the longer, so that a lost Pong never expires a client
    # that heartbeats as it was told before (both set by Directory._start_session)
    heartbeat_interval: float = 0.0
    told_before: float = 0.0

    def tell_interval(self, interval: float) -> None:
        self.told_before, self.heartbeat_interval = self.heartbeat_interval, interval

    @property
    def expiry_interval(self) -> float:
        return max(self.heartbeat_interval, self.told_before)


def heartbeat_interval_for(sessions: int, shortest: float, per_second: float) -> float:
    """The interval to ask of ``sessions`` clients so that their heartbeats stay within
    ``per_second``: ``shortest``, or whole seconds when that is too often."""
    needed = sessions / per_second
    return shortest if needed <= shortest else float(math.ceil(needed))


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Directory:
    """Accounts, presence, rooms, blocks and messages, for one server.

    Args:
        store: the database; state is loaded from it now.
        passwords: how passwords are hashed.
        welcome: the server's answer to ``Hello`` (its rid is replaced per request).
            Its heartbeat interval is the shortest the server asks for.
        heartbeats_per_second: how many heartbeats the server is willing to
            answer: with more sessions than this, their interval grows (see
            :meth:`heartbeat_interval`).
        session_ttl: seconds a login's resume token lives without being used.
        limits: login tries, message rate and rooms per user.
        max_sessions: the sessions that may live at once (``None``: any number);
            a Login or Resume past them is refused ``server_full``.
    """

    def __init__(
        self,
        store: Store,
        passwords: Passwords,
        *,
        welcome: p.Welcome,
        heartbeats_per_second: float = HEARTBEATS_PER_SECOND,
        session_ttl: float = SESSION_TTL,
        limits: Limits | None = None,
        max_sessions: int | None = None,
    ) -> None:
        self.store = store
        self.max_sessions = max_sessions
        self.limits = limits = limits or Limits()
        retry = 1 / limits.login_retry
        self._failed_logins_by_account = RateLimit(limits.login_failures, retry, "failed logins")
        self._failed_logins_by_peer = RateLimit(limits.login_failures, retry, "failed logins")
        self._sends = RateLimit(limits.message_burst, limits.messages_per_second, "messages")
        self._pages = RateLimit(limits.page_bytes_burst, limits.page_bytes_per_second, "pages")
        self.session_ttl = session_ttl
        self.passwords = passwords
        self.welcome = welcome
        self.heartbeats_per_second = heartbeats_per_second
        self.events_seq = 0
        # names this run of the server: events_seq starts again with each run
        self.epoch = secrets.token_hex(8)
        # server-wide events are not stored; the latest are kept for clients
        # that missed a publication (see protocol.Events)
        self.recent_events: deque[p.ServerEvent] = deque(maxlen=RECENT_EVENTS)
        self.sessions: dict[bytes, _Session] = {}
        # sessions started (peer) and ended (session) in the batch being handled,
        # in order, so that a failed request or batch can undo them
        self._journal: list[bytes | _Session] = []
        # answers to keyed requests (Signup, CreateRoom), so that a request the
        # client resends after a reconnect is not refused as a duplicate of itself
        self._answers: OrderedDict[str, p.Reply] = OrderedDict()
        self._batch_answers: list[tuple[str, p.Reply]] = []
        self._load()
        self._handlers: dict[type, _Handler] = {
            p.Hello: self._hello,
            p.Signup: self._signup,
            p.Login: self._login,
            p.Resume: self._resume,
            p.Logout: self._logout,
            p.Ping: self._ping,
            p.ListUsers: self._paged(self._list_users),
            p.SendDirect: self._send_direct,
            p.SendRoom: self._send_room,
            p.History: self._paged(self._history),
            p.RoomHistory: self._paged(self._room_history),
            p.Inbox: self._paged(self._inbox),
            p.Events: self._paged(self._events),
            p.CreateRoom: self._create_room,
            p.ListRooms: self._paged(self._list_rooms),
            p.Join: self._join,
            p.Leave: self._leave,
            p.Invite: self._invite,
            p.Rename: self._rename,
            p.Block: self._block,
            p.Unblock: self._unblock,
            p.ListBlocked: self._list_blocked,
        }

    def _load(self) -> None:
        """(Re)build the in-memory view from the store."""
        self.accounts: dict[int, _Account] = {}
        self.account_by_key: dict[str, int] = {}
        # the holder of each skeleton (confusables.py), so that a new name cannot look like
        # another's; of names stored before that check which share one, the first holds it
        self.account_by_skeleton: dict[str, int] = {}
        for row in self.store.users():
            self.accounts[row.id] = _Account(
                id=row.id,
                username=row.username,
                key=row.username_key,
                first_name=row.first_name,
                last_name=row.last_name,
                password_hash=row.password_hash,
                inbox_head=self.store.inbox_head(row.id),
                inbox_acked=row.inbox_acked,
            )
            self.account_by_key[row.username_key] = row.id
            self.account_by_skeleton.setdefault(skeleton(row.username), row.id)
        self.rooms: dict[int, _Room] = {}
        self.room_by_key: dict[str, int] = {}
        self.room_by_skeleton: dict[str, int] = {}
        for room in self.store.rooms():
            self.rooms[room.id] = _Room(
                id=room.id,
                name=room.room,
                key=room.room_key,
                created_by=room.created_by,
                last_seq=self.store.last_seq(room.id),
            )
            self.room_by_key[room.room_key] = room.id
            self.room_by_skeleton.setdefault(skeleton(room.room), room.id)
        self.dialogs: dict[tuple[int, int], int] = {}
        self.dialog_seq: dict[int, int] = {}
        for conversation_id, lo, hi in self.store.dialogs():
            self.dialogs[lo, hi] = conversation_id
            self.dialog_seq[conversation_id] = self.store.last_seq(conversation_id)
        for conversation_id, user_id in self.store.members():
            self.rooms[conversation_id].members.add(user_id)
            self.accounts[user_id].rooms.add(conversation_id)
        for blocker, blocked in self.store.blocks():
            self.accounts[blocker].blocked.add(blocked)
        self.online: dict[int, set[bytes]] = {}
        # the SUB keys of live sessions, each with the peers whose sessions name it
        self.subscribers: dict[str, set[bytes]] = {}
        for session in self.sessions.values():
            self.online.setdefault(session.user_id, set()).add(session.peer)
            if session.subscriber_key:
                self.subscribers.setdefault(session.subscriber_key, set()).add(session.peer)

    # --- entry points for the runner

    def handle_batch(self, batch: Iterable[tuple[bytes, list[bytes]]], now: float) -> Outcome:
        """Answer a batch of requests, committing everything they wrote once.

        Args:
            batch: ``(peer, frames)`` pairs as received from the ROUTER socket.
            now: the current time (seconds since the epoch).

        Returns:
            What to send. If the commit fails, every request of the batch is
            answered with an ``internal`` failure and the in-memory state is
            reloaded from the store, so that nothing is acknowledged that was
            not stored.
        """
        outcome = Outcome()
        rids: list[tuple[bytes, int]] = []
        self._journal.clear()
        self._batch_answers.clear()
        checkpoint = self._checkpoint()
        try:
            with self.store.batch():
                for peer, frames in batch:
                    rid = self._handle(peer, frames, now, outcome)
                    if rid is not None:
                        rids.append((peer, rid))
        except Exception:
            log.exception("the batch failed; answering each of its requests with internal")
            self._recover(checkpoint)
            failed = Outcome()
            for peer, rid in rids:
                failed.replies.append(
                    (peer, p.Failure(rid=rid, code="internal", message="storage failed"))
                )
            return failed
        for key, answer in self._batch_answers:  # committed: remember them
            self._answers[key] = answer
            if len(self._answers) > ANSWERS_KEPT:
                self._answers.popitem(last=False)
        return outcome

    def _answered(self, key: str, rid: int) -> p.Reply | None:
        """The answer already given to a keyed request, with this request's rid."""
        answer = self._answers.get(key) if key else None
        return dataclasses.replace(answer, rid=rid) if answer is not None else None

    def _remember(self, key: str, answer: p.Reply) -> None:
        if key:
            self._batch_answers.append((key, answer))

    def _checkpoint(self) -> tuple[int, int, int]:
        return self.events_seq, len(self._journal), len(self._batch_answers)

    def _recover(self, checkpoint: tuple[int, int, int]) -> None:
        """Undo in memory what was done since the checkpoint, after its writes were rolled back."""
        events_seq, journal_length, answers_length = checkpoint
        del self._batch_answers[answers_length:]  # not done, so not to be answered again
        while len(self._journal) > journal_length:
            entry = self._journal.pop()
            if isinstance(entry, _Session):
                self.sessions[entry.peer] = entry  # ended: it goes on
            else:
                self.sessions.pop(entry, None)  # started: it never was
        while self.recent_events and self.recent_events[-1].seq > events_seq:
            self.recent_events.pop()
        self.events_seq = events_seq
        self._load()

    def may_subscribe(self, key: str) -> bool:
        """Whether a SUB socket presenting this CURVE public key (Z85) may connect now.

        Only while a session that named the key in its Login or Resume lives.
        """
        return key in self.subscribers

    def heartbeat_interval(self) -> float:
        """The heartbeat interval clients are told now (in Welcome, SessionStarted and Pong).

        The server's own interval, unless so many sessions live that their
        heartbeats would cost more than :attr:`heartbeats_per_second`; then
        whole seconds, as many as it takes. Each heartbeat is a request the
        server answers (~50 us of CPU, most of it thread wake-ups and
        CurveZMQ): 9,000 clients at 1 s kept 0.43 of a core busy doing
        nothing, at 9 s 0.05, at 18 s (the default's) less. The price is
        presence: a vanished client shows offline after ``interval ×
        liveness`` (54 s at 18 s). A server restart is no slower to recover
        from, since clients see their connection come back (see Link)
        without waiting for a heartbeat.
        """
        return heartbeat_interval_for(
            len(self.sessions), self.welcome.heartbeat_interval, self.heartbeats_per_second
        )

    def expire(self, now: float) -> Outcome:
        """End the sessions silent for longer than ``heartbeat_liveness`` of their intervals.

        A session's interval is the longer of the last two it was told (see
        _Session): a Pong lost or rolled back cannot make it shorter than the
        one the client heartbeats by.
        """
        missed = self.welcome.heartbeat_liveness
        silent = [
            s for s in self.sessions.values() if now - s.last_seen > s.expiry_interval * missed
        ]
        outcome = self._end_sessions(silent, now)
        for limit in (
            self._failed_logins_by_account,
            self._failed_logins_by_peer,
            self._sends,
            self._pages,
        ):
            limit.forget_full(now)
        return outcome

    def drop_readers(self, peers: list[bytes], now: float) -> Outcome:
        """End the sessions on ``peers``, which do not read what they are sent (some of
        it was dropped: outbox.py), as if they had gone silent: a client that was only
        slow resumes with its token, and resends what went unanswered."""
        sessions = [self.sessions[peer] for peer in peers if peer in self.sessions]
        return self._end_sessions(sessions, now)

    def _end_sessions(self, sessions: list[_Session], now: float) -> Outcome:
        """End these sessions, all the same if noting when fails (a locked or full
        database): a session left live on a peer that lost replies, or that went
        silent, would never tell its client to resume and resend."""
        outcome = Outcome()
        if not sessions:
            return outcome
        try:
            with self.store.batch():
                for session in sessions:
                    # the client may come back with its token: its life starts now
                    self.store.touch_session(session.token_hash, now)
        except Exception:
            log.exception("noting when %d sessions ended failed; they end", len(sessions))
        for session in sessions:
            self._end_session(session, outcome)
        self._journal.clear()
        return outcome

    def password_work(self, peer: bytes, frames: list[bytes], now: float) -> PasswordWork | None:
        """The Argon2 work a request will need, for the runner to do ahead on other threads.

        ``None`` unless it is a Login or Signup that would get that far: a
        request refused before (a rate-limited login, a taken username, bad
        fields) is answered at once, without work, when it is handled.
        """
        try:
            request = p.decode(frames)
            if isinstance(request, p.Login):
                account, _ = self._login_attempt(peer, request, now)
                stored = account.password_hash if account is not None else None
                return PasswordWork(password=request.password, stored_hash=stored)
            if isinstance(request, p.Signup) and not self._answered(request.key, 0):
                return PasswordWork(
                    password=self._check_signup(request)[-1], stored_hash=None, signup=True
                )
        except (ChatError, ProtocolError):
            return None
        except Exception:  # like _handle: no peer may break the loop; handling will tell
            log.exception("looking at a request for password work failed")
            return None
        return None

    def forget_old_tokens(self, now: float) -> int:
        """Delete resume tokens unused for longer than the session TTL; returns how many.

        A token whose session is live counts as in use.
        """
        with self.store.batch():
            for session in self.sessions.values():
                self.store.touch_session(session.token_hash, now)
            return self.store.drop_sessions_unused_since(now - self.session_ttl)

    # --- dispatch

    def _handle(self, peer: bytes, frames: list[bytes], now: float, outcome: Outcome) -> int | None:
        try:
            request = p.decode(frames)
        except ProtocolError as exc:
            failure = p.Failure(rid=exc.rid, code=exc.code, message=exc.message)
            outcome.replies.append((peer, failure))
            return None
        except Exception:  # decode promises ProtocolError only; never let a peer break a batch
            log.exception("decoding a request failed")
            outcome.replies.append(
                (peer, p.Failure(rid=0, code="bad_request", message="bad frame"))
            )
            return None
        handler = self._handlers.get(type(request))
        rid: int = getattr(request, "rid", 0)
        if handler is None:
            outcome.replies.append(
                (peer, p.Failure(rid=rid, code="bad_request", message="not a request"))
            )
            return rid
        session = self.sessions.get(peer)
        if session is not None:
            session.last_seen = now
        mark = (len(outcome.replies), len(outcome.publications))
        checkpoint = self._checkpoint()
        try:
            with nullcontext() if type(request) in _UNGUARDED else self.store.step():
                handler(peer, request, now, outcome)
        except ChatError as exc:
            # handlers check before they change anything, so there is nothing to undo
            del outcome.replies[mark[0] :], outcome.publications[mark[1] :]
            failure = p.Failure(
                rid=rid, code=exc.code, message=exc.message, retry_after=exc.retry_after or 0.0
            )
            outcome.replies.append((peer, failure))
        except Exception:
            if not self.store.in_batch:  # SQLite undid the whole batch: so do we, all of it
                raise
            log.exception("request %s failed", type(request).__name__)
            del outcome.replies[mark[0] :], outcome.publications[mark[1] :]
            self._recover(checkpoint)  # its writes were rolled back; rebuild memory to match
            outcome.replies.append(
                (peer, p.Failure(rid=rid, code="internal", message="the server failed"))
            )
        return rid

    def _paged(self, handler: _Handler) -> _Handler:
        """``handler`` (it answers with a page) within its user's page budget.

        A client may ask for pages faster than it reads them (or never read
        them): each waits in the server's memory until it is read, as much as
        the outbox lets wait for one peer (outbox.py). The budget bounds how
        fast one user piles them up: refused ``rate_limited`` once spent, each
        page charged what it may take on the wire once it is made.
        """

        def within_budget(peer: bytes, req: Any, now: float, out: Outcome) -> None:
            user_id = self._session(peer).user_id
            self._pages.check(user_id, now)
            handler(peer, req, now, out)
            self._pages.spend(user_id, now, _page_bytes(out.replies[-1][1]))

        return within_budget

    def _session(self, peer: bytes) -> _Session:
        session = self.sessions.get(peer)
        if session is None:
            raise ChatError("not_logged_in", "log in first")
        return session

    def _account_named(self, username: str) -> _Account:
        user_id = self.account_by_key.get(v.name_key(username))
        if user_id is None:
            raise ChatError("no_such_user", f"no user is called {v.shown(username)}")
        return self.accounts[user_id]

    def _room_named(self, room: str) -> _Room:
        room_id = self.room_by_key.get(v.name_key(room))
        if room_id is None:
            raise ChatError("no_such_room", f"no room is called {v.shown(room)}")
        return self.rooms[room_id]

    def _refuse_look_alike(self, username: str, shape: str, own: str | None = None) -> None:
        """Refuse a username that looks like another user's (``own``: the renaming user's)."""
        holder = self.account_by_skeleton.get(shape)
        if holder is not None and shape != own:
            taken = self.accounts[holder].username
            raise ChatError(
                "username_taken", f"the username {username!r} looks like {taken!r}, which is taken"
            )

    # --- sessions and presence

    def _hello(self, peer: bytes, req: p.Hello, now: float, out: Outcome) -> None:
        if req.version != p.PROTOCOL_VERSION:
            raise ChatError(
                "unsupported_version",
                f"this server speaks protocol {p.PROTOCOL_VERSION}, not {req.version}",
            )
        welcome = p.Welcome(
            rid=req.rid,
            version=self.welcome.version,
            pub_port=self.welcome.pub_port,
            heartbeat_interval=self.heartbeat_interval(),
            heartbeat_liveness=self.welcome.heartbeat_liveness,
        )
        out.replies.append((peer, welcome))

    def _signup(self, peer: bytes, req: p.Signup, now: float, out: Outcome) -> None:
        if answer := self._answered(req.key, req.rid):
            out.replies.append((peer, answer))
            return
        username, key, shape, first_name, last_name, phone, password = self._check_signup(req)
        password_hash = self.passwords.hash(password)
        user_id = self.store.add_user(
            username=username,
            username_key=key,
            first_name=first_name,
            last_name=last_name,
            phone=phone,
            password_hash=password_hash,
            created_at=now,
        )
        self.accounts[user_id] = _Account(
            id=user_id,
            username=username,
            key=key,
            first_name=first_name,
            last_name=last_name,
            password_hash=password_hash,
            inbox_head=0,
            inbox_acked=0,
        )
        self.account_by_key[key] = user_id
        self.account_by_skeleton[shape] = user_id
        out.replies.append((peer, p.Done(rid=req.rid)))
        self._remember(req.key, p.Done(rid=req.rid))

    def _check_signup(self, req: p.Signup) -> tuple[str, str, str, str, str, str, str]:
        """A signup's fields, checked: username, its key and skeleton, names, phone, password.

        Raises:
            ChatError: a field is missing or invalid, or the username is taken.
        """
        v.require(
            first_name=req.first_name,
            last_name=req.last_name,
            phone=req.phone,
            username=req.username,
            password=req.password,
        )
        username = v.check_username(req.username)
        key = v.name_key(username)
        if key in self.account_by_key:
            raise ChatError("username_taken", f"the username {username!r} is taken")
        shape = skeleton(username)
        self._refuse_look_alike(username, shape)
        first_name = v.check_person_name("first name", req.first_name)
        last_name = v.check_person_name("last name", req.last_name)
        phone = v.check_phone(req.phone)
        return username, key, shape, first_name, last_name, phone, v.check_password(req.password)

    def _login_attempt(self, peer: bytes, req: p.Login, now: float) -> tuple[_Account | None, str]:
        """The account a login names (``None``: no such user) and its subscriber key,
        if the login may be tried now.

        A guesser is slowed down per account (across connections) and per
        connection (across accounts); the right password waits too.

        Raises:
            ChatError: a field is missing or invalid, ``rate_limited``, or
                ``server_full``.
        """
        v.require(username=req.username, password=req.password)
        subscriber_key = v.check_subscriber_key(req.subscriber_key)
        self._check_capacity(peer)
        user_id = self.account_by_key.get(v.name_key(req.username))
        account = self.accounts.get(user_id) if user_id is not None else None
        self._failed_logins_by_peer.check(peer, now)
        if account is not None:
            self._failed_logins_by_account.check(account.id, now)
        return account, subscriber_key

    def _login(self, peer: bytes, req: p.Login, now: float, out: Outcome) -> None:
        account, subscriber_key = self._login_attempt(peer, req, now)
        matches, upgraded = self.passwords.verify(
            account.password_hash if account else None, req.password
        )
        if account is None or not matches:
            self._failed_logins_by_peer.spend(peer, now)
            if account is not None:
                self._failed_logins_by_account.spend(account.id, now)
            raise ChatError("bad_credentials", "wrong username or password")
        self._failed_logins_by_peer.reset(peer)
        self._failed_logins_by_account.reset(account.id)
        if upgraded:
            self.store.set_password_hash(account.id, upgraded)
            account.password_hash = upgraded
        token = secrets.token_urlsafe(32)
        self.store.add_session(_token_hash(token), account.id, now)
        session = _Session(
            peer=peer,
            user_id=account.id,
            token_hash=_token_hash(token),
            last_seen=now,
            subscriber_key=subscriber_key,
        )
        self._start_session(session, req.rid, token, out)

    def _resume(self, peer: bytes, req: p.Resume, now: float, out: Outcome) -> None:
        subscriber_key = v.check_subscriber_key(req.subscriber_key)
        token_hash = _token_hash(req.token)
        replaced = self._check_capacity(peer, token_hash)
        user_id = self.store.use_session(token_hash, now, unused_since=now - self.session_ttl)
        if user_id is None:
            raise ChatError("session_expired", "the session has ended; log in again")
        session = _Session(
            peer=peer,
            user_id=user_id,
            token_hash=token_hash,
            last_seen=now,
            subscriber_key=subscriber_key,
        )
        self._start_session(session, req.rid, req.token, out)
        for old in replaced:  # after the start: the user stays online throughout
            self._end_session(old, out)

    def _check_capacity(self, peer: bytes, token_hash: str | None = None) -> list[_Session]:
        """Refuse a new session past :attr:`max_sessions`, unless it takes another's place;
        returns the sessions a resume replaces.

        A new login on a peer that has a session replaces it (see _start_session).
        On a full server, a resume replaces the sessions of its token on other
        connections, most likely one the client lost (libzmq reconnected it
        under a new routing id; its session would last until it expired): then
        one token holds one session, and the count does not grow.
        """
        if (
            self.max_sessions is None
            or len(self.sessions) < self.max_sessions
            or peer in self.sessions
        ):
            return []
        # full, which is rare: look through the sessions (0.2 ms at 9,750)
        if token_hash is not None:
            replaced = [s for s in self.sessions.values() if s.token_hash == token_hash]
            if replaced:
                return replaced
        raise ChatError(
            "server_full",
            f"the server holds as many sessions as it can ({self.max_sessions}); try again later",
            retry_after=SERVER_FULL_RETRY,
        )

    def _start_session(self, session: _Session, rid: int, token: str, out: Outcome) -> None:
        peer, account = session.peer, self.accounts[session.user_id]
        previous = self.sessions.get(peer)
        if previous is not None:
            self._end_session(previous, out)
        self.sessions[peer] = session
        self._journal.append(peer)  # _recover rebuilds online and subscribers from sessions
        session.heartbeat_interval = session.told_before = self.heartbeat_interval()
        peers = self.online.setdefault(account.id, set())
        peers.add(peer)
        if session.subscriber_key:
            self.subscribers.setdefault(session.subscriber_key, set()).add(peer)
        out.replies.append(
            (
                peer,
                p.SessionStarted(
                    rid=rid,
                    user=self._user(account),
                    token=token,
                    epoch=self.epoch,
                    inbox_acked=account.inbox_acked,
                    inbox_head=account.inbox_head,
                    rooms=self._room_marks(account),
                    blocked=self._blocked_names(account),
                    events_seq=self.events_seq,
                    heartbeat_interval=session.heartbeat_interval,
                ),
            )
        )
        if len(peers) == 1:
            self._publish_presence(account, True, out)

    def _end_session(self, session: _Session, out: Outcome) -> None:
        del self.sessions[session.peer]
        self._journal.append(session)
        subscribers = self.subscribers.get(session.subscriber_key)
        if subscribers is not None:
            subscribers.discard(session.peer)
            if not subscribers:
                del self.subscribers[session.subscriber_key]
        peers = self.online.get(session.user_id, set())
        peers.discard(session.peer)
        if not peers:
            self.online.pop(session.user_id, None)
            self._publish_presence(self.accounts[session.user_id], False, out)

    def _publish_presence(self, account: _Account, online: bool, out: Outcome) -> None:
        self._publish(
            p.PresenceChanged(seq=self.events_seq + 1, username=account.username, online=online),
            out,
        )

    def _publish(self, event: p.ServerEvent, out: Outcome) -> None:
        """Announce a server-wide event (its seq must be the next one)."""
        self.events_seq = event.seq
        self.recent_events.append(event)
        out.publications.append(event)

    def _events(self, peer: bytes, req: p.Events, now: float, out: Outcome) -> None:
        self._session(peer)
        oldest = self.recent_events[0].seq if self.recent_events else self.events_seq + 1
        events = tuple(e for e in self.recent_events if e.seq > req.after)
        page = p.EventPage(rid=req.rid, events=events, complete=req.after >= oldest - 1)
        out.replies.append((peer, page))

    def _logout(self, peer: bytes, req: p.Logout, now: float, out: Outcome) -> None:
        session = self._session(peer)
        self._acknowledge(self.accounts[session.user_id], req.inbox_seen)
        self.store.drop_session(session.token_hash)
        self._end_session(session, out)
        out.replies.append((peer, p.Done(rid=req.rid)))

    def _ping(self, peer: bytes, req: p.Ping, now: float, out: Outcome) -> None:
        session = self._session(peer)
        account = self.accounts[session.user_id]
        self._acknowledge(account, req.inbox_seen)
        session.tell_interval(self.heartbeat_interval())
        out.replies.append(
            (
                peer,
                p.Pong(
                    rid=req.rid,
                    inbox_head=account.inbox_head,
                    rooms=self._room_marks(account),
                    events_seq=self.events_seq,
                    heartbeat_interval=session.heartbeat_interval,
                ),
            )
        )

    def _acknowledge(self, account: _Account, inbox_seen: int) -> None:
        """A client of the account has received its inbox up to ``inbox_seen``."""
        seen = min(inbox_seen, account.inbox_head)
        if seen > account.inbox_acked:
            self.store.set_inbox_acked(account.id, seen)
            account.inbox_acked = seen

    # --- users

    def _user(self, account: _Account) -> User:
        return User(
            id=account.id,
            username=account.username,
            first_name=account.first_name,
            last_name=account.last_name,
            online=account.id in self.online,
        )

    def _list_users(self, peer: bytes, req: p.ListUsers, now: float, out: Outcome) -> None:
        self._session(peer)
        accounts, more = _page(self.accounts.values(), req.after)
        users = tuple(map(self._user, accounts))
        out.replies.append((peer, p.UserList(rid=req.rid, users=users, more=more)))

    def _rename(self, peer: bytes, req: p.Rename, now: float, out: Outcome) -> None:
        account = self.accounts[self._session(peer).user_id]
        v.require(username=req.username)
        username = v.check_username(req.username)
        key = v.name_key(username)
        owner = self.account_by_key.get(key)
        if owner is not None and owner != account.id:
            raise ChatError("username_taken", f"the username {username!r} is taken")
        old = account.username
        shape, old_shape = skeleton(username), skeleton(old)
        self._refuse_look_alike(username, shape, own=old_shape)
        if username != old:
            self.store.rename_user(account.id, username, key)
            del self.account_by_key[account.key]
            if self.account_by_skeleton.get(old_shape) == account.id:
                del self.account_by_skeleton[old_shape]
            account.username, account.key = username, key
            self.account_by_key[key] = account.id
            self.account_by_skeleton.setdefault(shape, account.id)
            self._publish(p.Renamed(seq=self.events_seq + 1, old=old, new=username), out)
        out.replies.append((peer, p.Profile(rid=req.rid, user=self._user(account))))

    def _block(self, peer: bytes, req: p.Block, now: float, out: Outcome) -> None:
        account = self.accounts[self._session(peer).user_id]
        other = self._account_named(req.username)
        if other.id == account.id:
            raise ChatError("invalid", "you cannot block yourself")
        if other.id not in account.blocked and len(account.blocked) >= self.limits.blocks_per_user:
            # the block list goes whole in every SessionStarted and AccountState
            raise ChatError(
                "too_many_blocks",
                f"you block {len(account.blocked)} users, the most one user may; unblock one first",
            )
        self.store.add_block(account.id, other.id, now)
        account.blocked.add(other.id)
        out.replies.append((peer, p.Done(rid=req.rid)))
        self._sync_other_clients(account, peer, out)

    def _unblock(self, peer: bytes, req: p.Unblock, now: float, out: Outcome) -> None:
        account = self.accounts[self._session(peer).user_id]
        other = self._account_named(req.username)
        self.store.remove_block(account.id, other.id)
        account.blocked.discard(other.id)
        out.replies.append((peer, p.Done(rid=req.rid)))
        self._sync_other_clients(account, peer, out)

    def _list_blocked(self, peer: bytes, req: p.ListBlocked, now: float, out: Outcome) -> None:
        account = self.accounts[self._session(peer).user_id]
        out.replies.append((peer, p.NameList(rid=req.rid, names=self._blocked_names(account))))

    def _blocked_names(self, account: _Account) -> tuple[str, ...]:
        return tuple(sorted((self.accounts[b].username for b in account.blocked), key=v.name_key))

    def _sync_other_clients(self, account: _Account, peer: bytes, out: Outcome) -> None:
        """Tell the account's other clients its blocks and rooms, after one of them changed them."""
        state = p.AccountState(
            blocked=self._blocked_names(account), rooms=self._room_marks(account)
        )
        for target in self.online.get(account.id, set()) - {peer}:
            out.replies.append((target, state))

    # --- messages

    def _message(self, row: MessageRow) -> Message:
        room = self.rooms.get(row.conversation_id)
        return Message(
            id=row.id,
            seq=row.inbox_seq if row.inbox_seq is not None else row.seq,
            sender=self.accounts[row.sender_id].username,
            recipient=(
                self.accounts[row.recipient_id].username if row.recipient_id is not None else None
            ),
            room=room.name if room else None,
            body=row.body,
            sent_at=row.sent_at,
            client_id=row.client_id,
        )

    @staticmethod
    def _check_client_id(client_id: str) -> None:
        if not client_id or len(client_id) > MAX_CLIENT_ID:
            raise ChatError("invalid", f"a client message id has 1 to {MAX_CLIENT_ID} characters")

    def _original(
        self,
        sender_id: int,
        client_id: str,
        body: str,
        *,
        recipient_id: int | None,
        room_id: int | None,
    ) -> MessageRow | None:
        """The message stored earlier with this client id, if the request is a resend.

        Raises:
            ChatError: ``invalid`` if the client id names another message (a
                client bug: silently answering with the other message would
                lose this one).
        """
        row = self.store.message_by_client_id(sender_id, client_id)
        if row is None:
            return None
        same_place = (
            row.recipient_id == recipient_id if room_id is None else row.conversation_id == room_id
        )
        if not same_place or row.body != body:
            raise ChatError("invalid", "this client message id belongs to another message")
        return row

    def _answer_resend(
        self,
        peer: bytes,
        req: p.SendDirect | p.SendRoom,
        *,
        recipient_id: int | None,
        room_id: int | None,
        out: Outcome,
    ) -> bool:
        """Answer a resend with the message stored the first time; False if it is not one."""
        sender_id = self._session(peer).user_id
        original = self._original(
            sender_id, req.client_id, req.body, recipient_id=recipient_id, room_id=room_id
        )
        if original is None:
            return False
        out.replies.append((peer, p.Sent(rid=req.rid, message=self._message(original))))
        return True

    def _send_direct(self, peer: bytes, req: p.SendDirect, now: float, out: Outcome) -> None:
        sender = self.accounts[self._session(peer).user_id]
        recipient = self._account_named(req.to)
        v.check_body(req.body)
        self._check_client_id(req.client_id)
        if sender.id in recipient.blocked or not self._sends.allows(sender.id, now):
            # refused, unless it is a resend of a message stored before the refusal
            if self._answer_resend(peer, req, recipient_id=recipient.id, room_id=None, out=out):
                return
            if sender.id in recipient.blocked:
                raise ChatError("blocked", f"{recipient.username} does not accept your messages")
            self._sends.take(sender.id, now)  # raises rate_limited
        pair = (min(sender.id, recipient.id), max(sender.id, recipient.id))
        conversation_id = self.dialogs.get(pair)
        if conversation_id is None:
            # the first message of these two: its client id may still name a message
            # elsewhere, and that must be refused before the dialog is written
            if self._answer_resend(peer, req, recipient_id=recipient.id, room_id=None, out=out):
                return
            conversation_id = self.store.add_dialog(*pair, now)
        seq, inbox_seq = self.dialog_seq.get(conversation_id, 0) + 1, recipient.inbox_head + 1
        # nothing can be refused from here on (this handler runs without a
        # savepoint: see _UNGUARDED); a resend is found by the insert itself
        # (its client id is taken), so no lookup is on the way of every new message
        message_id = self.store.add_message(
            conversation_id=conversation_id,
            seq=seq,
            sender_id=sender.id,
            recipient_id=recipient.id,
            inbox_seq=inbox_seq,
            body=req.body,
            sent_at=now,
            client_id=req.client_id,
        )
        if message_id is None:
            self._answer_resend(peer, req, recipient_id=recipient.id, room_id=None, out=out)
            return
        self._sends.take(sender.id, now)  # cannot fail: there was a token above
        self.dialogs[pair] = conversation_id
        self.dialog_seq[conversation_id] = seq
        recipient.inbox_head = inbox_seq
        message = Message(
            id=message_id,
            seq=inbox_seq,
            sender=sender.username,
            recipient=recipient.username,
            room=None,
            body=req.body,
            sent_at=now,
            client_id=req.client_id,
        )
        out.replies.append((peer, p.Sent(rid=req.rid, message=message)))
        delivery = p.Delivery(message=message)
        for target in self.online.get(recipient.id, set()) | self.online.get(sender.id, set()):
            if target != peer:
                out.replies.append((target, delivery))

    def _send_room(self, peer: bytes, req: p.SendRoom, now: float, out: Outcome) -> None:
        sender = self.accounts[self._session(peer).user_id]
        room = self._room_named(req.room)
        if sender.id not in room.members:
            raise ChatError("not_member", f"join {room.name} first")
        v.check_body(req.body)
        self._check_client_id(req.client_id)
        if not self._sends.allows(sender.id, now):
            if self._answer_resend(peer, req, recipient_id=None, room_id=room.id, out=out):
                return
            self._sends.take(sender.id, now)  # raises rate_limited
        seq = room.last_seq + 1
        message_id = self.store.add_message(  # as in _send_direct
            conversation_id=room.id,
            seq=seq,
            sender_id=sender.id,
            recipient_id=None,
            inbox_seq=None,
            body=req.body,
            sent_at=now,
            client_id=req.client_id,
        )
        if message_id is None:
            self._answer_resend(peer, req, recipient_id=None, room_id=room.id, out=out)
            return
        self._sends.take(sender.id, now)  # cannot fail: there was a token above
        room.last_seq = seq
        message = Message(
            id=message_id,
            seq=seq,
            sender=sender.username,
            recipient=None,
            room=room.name,
            body=req.body,
            sent_at=now,
            client_id=req.client_id,
        )
        out.replies.append((peer, p.Sent(rid=req.rid, message=message)))
        out.publications.append(p.RoomPost(message=message))

    def _check_limit(self, limit: int) -> int:
        if not 1 <= limit <= MAX_PAGE:
            raise ChatError("invalid", f"a page holds 1 to {MAX_PAGE} messages")
        return limit

    def _before_seq(self, conversation_id: int | None, before: int | None) -> int | None:
        if before is None:
            return None
        row = self.store.message(before)
        if row is None or row.conversation_id != conversation_id:
            raise ChatError("invalid", "'before' must be the id of a message of this conversation")
        return row.seq

    def _history(self, peer: bytes, req: p.History, now: float, out: Outcome) -> None:
        me = self.accounts[self._session(peer).user_id]
        other = self._account_named(req.peer)
        limit = self._check_limit(req.limit)
        conversation_id = self.dialogs.get((min(me.id, other.id), max(me.id, other.id)))
        before = self._before_seq(conversation_id, req.before)
        rows: list[MessageRow] = []
        if conversation_id is not None:
            rows = self.store.page(conversation_id, limit=limit, before_seq=before)
        out.replies.append((peer, self._page(req.rid, rows, forward=False)))

    def _room_history(self, peer: bytes, req: p.RoomHistory, now: float, out: Outcome) -> None:
        self._session(peer)
        room = self._room_named(req.room)
        limit = self._check_limit(req.limit)
        rows = self.store.page(
            room.id,
            limit=limit,
            before_seq=self._before_seq(room.id, req.before),
            after_seq=req.after_seq,
        )
        page = self._page(req.rid, rows, forward=req.after_seq is not None)
        out.replies.append((peer, page))

    def _inbox(self, peer: bytes, req: p.Inbox, now: float, out: Outcome) -> None:
        me = self.accounts[self._session(peer).user_id]
        rows = self.store.inbox(me.id, after=req.after, limit=self._check_limit(req.limit))
        out.replies.append((peer, self._page(req.rid, rows, forward=True)))

    def _page(self, rid: int, rows: list[MessageRow], *, forward: bool) -> p.MessagePage:
        """A page that fits in a frame, cut short (``more``) when the bodies are long.

        A forward page (backfill) keeps its oldest messages, a backward one
        (history before a message) its newest: the ones next to where the
        reader stands, who asks again from the page's far end for the rest.
        """
        kept, size = 0, 0
        for row in rows if forward else reversed(rows):
            size += _text_bytes(row.body)
            if kept and size > PAGE_BYTES:
                break
            kept += 1
        chosen = rows[:kept] if forward else rows[len(rows) - kept :]
        messages = tuple(map(self._message, chosen))
        return p.MessagePage(rid=rid, messages=messages, more=kept < len(rows))

    # --- rooms

    def _room(self, room: _Room, viewer: _Account) -> Room:
        return Room(
            name=room.name,
            created_by=self.accounts[room.created_by].username,
            members=len(room.members),
            joined=viewer.id in room.members,
            last_seq=room.last_seq,
        )

    def _room_marks(self, account: _Account) -> tuple[p.RoomMark, ...]:
        rooms = (self.rooms[room_id] for room_id in sorted(account.rooms))
        return tuple(p.RoomMark(room=room.name, seq=room.last_seq) for room in rooms)

    def _create_room(self, peer: bytes, req: p.CreateRoom, now: float, out: Outcome) -> None:
        creator = self.accounts[self._session(peer).user_id]
        if answer := self._answered(req.key, req.rid):
            out.replies.append((peer, answer))
            return
        v.require(room=req.room)
        name = v.check_room_name(req.room)
        key = v.name_key(name)
        if key in self.room_by_key:
            raise ChatError("room_exists", f"a room called {name!r} exists already")
        shape = skeleton(name)
        if (holder := self.room_by_skeleton.get(shape)) is not None:
            existing = self.rooms[holder].name
            raise ChatError("room_exists", f"a room called {name!r} looks like {existing!r}")
        self._check_room_count(creator)
        room_id = self.store.add_room(name, key, creator.id, now)
        self.store.add_member(room_id, creator.id, now)
        room = _Room(id=room_id, name=name, key=key, created_by=creator.id, last_seq=0)
        room.members.add(creator.id)
        creator.rooms.add(room_id)
        self.rooms[room_id] = room
        self.room_by_key[key] = room_id
        self.room_by_skeleton[shape] = room_id
        self._publish(
            p.RoomCreated(seq=self.events_seq + 1, room=name, created_by=creator.username), out
        )
        answer = p.RoomReply(rid=req.rid, room=self._room(room, creator))
        out.replies.append((peer, answer))
        self._remember(req.key, answer)
        self._sync_other_clients(creator, peer, out)

    def _list_rooms(self, peer: bytes, req: p.ListRooms, now: float, out: Outcome) -> None:
        me = self.accounts[self._session(peer).user_id]
        rooms, more = _page(self.rooms.values(), req.after)
        page = tuple(self._room(r, me) for r in rooms)
        out.replies.append((peer, p.RoomList(rid=req.rid, rooms=page, more=more)))

    def _join(self, peer: bytes, req: p.Join, now: float, out: Outcome) -> None:
        me = self.accounts[self._session(peer).user_id]
        room = self._room_named(req.room)
        joining = me.id not in room.members
        if joining:
            self._check_room_count(me)
            self.store.add_member(room.id, me.id, now)
            room.members.add(me.id)
            me.rooms.add(room.id)
        out.replies.append((peer, p.RoomReply(rid=req.rid, room=self._room(room, me))))
        if joining:
            self._sync_other_clients(me, peer, out)

    def _check_room_count(self, account: _Account) -> None:
        if len(account.rooms) >= self.limits.rooms_per_user:
            raise ChatError(
                "too_many_rooms",
                f"you are in {len(account.rooms)} rooms, the most one user may be in;"
                " leave one first",
            )

    def _leave(self, peer: bytes, req: p.Leave, now: float, out: Outcome) -> None:
        me = self.accounts[self._session(peer).user_id]
        room = self._room_named(req.room)
        leaving = me.id in room.members
        if leaving:
            self.store.remove_member(room.id, me.id)
            room.members.discard(me.id)
            me.rooms.discard(room.id)
        out.replies.append((peer, p.Done(rid=req.rid)))
        if leaving:
            self._sync_other_clients(me, peer, out)

    def _invite(self, peer: bytes, req: p.Invite, now: float, out: Outcome) -> None:
        me = self.accounts[self._session(peer).user_id]
        room = self._room_named(req.room)
        guest = self._account_named(req.username)
        if me.id not in room.members:
            raise ChatError("not_member", f"join {room.name} before inviting to it")
        out.replies.append((peer, p.Done(rid=req.rid)))
        if me.id in guest.blocked:
            return  # the guest does not hear from us; we are not told so
        invited = p.Invited(room=room.name, sender=me.username)
        for target in self.online.get(guest.id, set()):
            out.replies.append((target, invited))


_Named = TypeVar("_Named", _Account, _Room)
_Handler = Callable[[bytes, Any, float, Outcome], None]


def _text_bytes(text: str) -> int:
    """The most an item of a page with this text takes on the wire (UTF-8 takes at
    most 4 bytes a character), with room for the names, numbers and keys around it."""
    return len(text) * 4 + PAGE_OVERHEAD


def _page_bytes(page: p.ProtocolMessage) -> int:
    """The most a page of messages, server events, users or rooms takes on the wire."""
    if isinstance(page, p.MessagePage):
        return sum(_text_bytes(message.body) for message in page.messages)
    if isinstance(page, p.EventPage):
        return EVENT_BYTES * len(page.events)
    if isinstance(page, p.UserList):
        return sum(_text_bytes(u.username + u.first_name + u.last_name) for u in page.users)
    if isinstance(page, p.RoomList):
        return sum(_text_bytes(room.name + room.created_by) for room in page.rooms)
    raise TypeError(f"not a page: {type(page).__name__}")


def _page(named: Iterable[_Named], after: str) -> tuple[list[_Named], bool]:
    """The first :data:`LIST_PAGE` by name key after the name ``after`` (any spelling;
    ``""``: from the first), in order, and whether more follow."""
    start = v.name_key(after) if after else ""
    first = heapq.nsmallest(
        LIST_PAGE + 1, (item for item in named if item.key > start), key=lambda item: item.key
    )
    return first[:LIST_PAGE], len(first) > LIST_PAGE
