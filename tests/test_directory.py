"""The server's logic alone: requests in, replies and publications out, on a real SQLite file."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import msgpack
import pytest

from libimchat import Limits
from libimchat import protocol as p
from libimchat.directory import Directory
from libimchat.passwords import Passwords
from libimchat.store import Store

WELCOME = p.Welcome(rid=0, version=1, pub_port=1, heartbeat_interval=1.0, heartbeat_liveness=3)
# CURVE public keys as clients send them (Z85); the directory never checks them against a secret
KEY_A, KEY_B = "a" * 40, "rAx&0]{9" * 5


def directory(path: Path) -> Directory:
    return Directory(Store(path), Passwords("fast"), welcome=WELCOME)


def ask(d: Directory, peer: bytes, request: p.Request, now: float = 100.0):  # type: ignore[no-untyped-def]
    outcome = d.handle_batch([(peer, p.encode(request))], now)
    ((to, reply),) = [
        (to, r) for to, r in outcome.replies if getattr(r, "rid", None) == request.rid
    ]
    assert to == peer
    return reply, outcome


def signup(d: Directory, name: str) -> None:
    request = p.Signup(
        rid=1, username=name, password="pw", first_name="F", last_name="L", phone="0633217608"
    )
    assert isinstance(ask(d, b"x", request)[0], p.Done)


def test_a_login_whose_write_fails_leaves_no_session_and_announces_nothing(tmp_path: Path) -> None:
    d = directory(tmp_path / "chat.db")
    signup(d, "ali")
    blocker = sqlite3.connect(tmp_path / "chat.db")
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    d.store.db.execute("PRAGMA busy_timeout=0")
    login = p.Login(rid=2, username="ali", password="pw", subscriber_key=KEY_A)
    reply, outcome = ask(d, b"peer", login)
    assert isinstance(reply, p.Failure) and reply.code == "internal"
    assert outcome.publications == []
    assert not d.may_subscribe(KEY_A)  # no session, so the PUB socket keeps its key out
    blocker.rollback()
    reply, _ = ask(d, b"peer", p.ListUsers(rid=3))
    assert isinstance(reply, p.Failure) and reply.code == "not_logged_in"
    assert d.events_seq == 0
    reply, outcome = ask(d, b"peer", p.Login(rid=4, username="ali", password="pw"))
    assert isinstance(reply, p.SessionStarted)
    assert [type(e) for e in outcome.publications] == [p.PresenceChanged]


def test_sessions_past_the_servers_capacity_are_refused_server_full(tmp_path: Path) -> None:
    d = directory(tmp_path / "chat.db")
    d.max_sessions = 2
    for name in ("ali", "bob", "cyd"):
        signup(d, name)
    ali, _ = ask(d, b"a", p.Login(rid=2, username="ali", password="pw"))
    ask(d, b"b", p.Login(rid=2, username="bob", password="pw"))
    refused, outcome = ask(d, b"c", p.Login(rid=3, username="cyd", password="pw"))
    assert isinstance(refused, p.Failure) and refused.code == "server_full"
    assert refused.retry_after > 0 and outcome.publications == []
    login = p.encode(p.Login(rid=4, username="cyd", password="pw"))
    assert d.password_work(b"c", login, 100.0) is None  # no Argon2 work for it
    # ali's connection broke; libzmq reconnected it under new ids, again and again:
    # each resume takes the place of her session on the connection before
    for peer in (b"a2", b"a3", b"a4"):
        resumed, outcome = ask(d, peer, p.Resume(rid=6, token=ali.token))
        assert isinstance(resumed, p.SessionStarted)
        assert outcome.publications == []  # she stays online throughout
        assert set(d.sessions) == {b"b", peer}
    again, _ = ask(d, b"b", p.Login(rid=7, username="bob", password="pw"))
    assert isinstance(again, p.SessionStarted)  # a peer's new session replaces its own
    ask(d, b"a4", p.Logout(rid=8))
    welcome, _ = ask(d, b"c", p.Login(rid=9, username="cyd", password="pw"))
    assert isinstance(welcome, p.SessionStarted)


def test_a_keyed_request_that_fails_after_answering_is_not_answered_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = directory(tmp_path / "chat.db")
    signup(d, "ali")
    ask(d, b"peer", p.Login(rid=2, username="ali", password="pw"))

    def fails(*args: object) -> None:  # a bug after the room's answer was made
        raise RuntimeError("boom")

    monkeypatch.setattr(d, "_sync_other_clients", fails)
    reply, _ = ask(d, b"peer", p.CreateRoom(rid=3, room="Lobby", key="create-lobby-1"))
    assert isinstance(reply, p.Failure) and reply.code == "internal"
    monkeypatch.undo()
    # the resend is not told "created" for a room that was rolled back: it creates it
    reply, _ = ask(d, b"peer", p.CreateRoom(rid=4, room="Lobby", key="create-lobby-1"))
    assert isinstance(reply, p.RoomReply) and reply.rid == 4
    rooms, _ = ask(d, b"peer", p.ListRooms(rid=5))
    assert [room.name for room in rooms.rooms] == ["Lobby"]


def test_when_sqlite_rolls_the_whole_batch_back_no_request_of_it_is_acknowledged(
    tmp_path: Path,
) -> None:
    d = directory(tmp_path / "chat.db")
    signup(d, "ali")
    signup(d, "sam")
    ask(d, b"a", p.Login(rid=1, username="ali", password="pw"))
    ask(d, b"s", p.Login(rid=1, username="sam", password="pw"))
    ask(d, b"a", p.SendDirect(rid=1, to="sam", body="hello", client_id="c-0"))
    sends = [
        p.SendDirect(rid=2, to="sam", body="first", client_id="c-1"),
        p.SendDirect(rid=3, to="sam", body="x" * 8000, client_id="c-2"),  # needs new pages
        p.SendDirect(rid=4, to="sam", body="third", client_id="c-3"),
    ]
    # a full disk: SQLite refuses the second insert and, since a one-row insert keeps
    # no statement journal, rolls the whole transaction back, the first insert with it
    pages = d.store.db.execute("PRAGMA page_count").fetchone()[0]
    d.store.db.execute(f"PRAGMA max_page_count={pages}")
    outcome = d.handle_batch([(b"a", p.encode(send)) for send in sends], 100.0)
    stored = sqlite3.connect(tmp_path / "chat.db").execute("SELECT client_id FROM messages")
    acknowledged = [r.message.client_id for _, r in outcome.replies if isinstance(r, p.Sent)]
    assert acknowledged == [] and [row[0] for row in stored.fetchall()] == ["c-0"]
    assert {r.code for _, r in outcome.replies if isinstance(r, p.Failure)} == {"internal"}
    # the disk has room again: the resends are stored once each, numbered on from 1
    d.store.db.execute("PRAGMA max_page_count=1073741823")
    outcome = d.handle_batch([(b"a", p.encode(send)) for send in sends], 101.0)
    sent = [r.message for _, r in outcome.replies if isinstance(r, p.Sent)]
    assert [(m.client_id, m.seq) for m in sent] == [("c-1", 2), ("c-2", 3), ("c-3", 4)]


def test_a_refusal_never_grows_with_the_name_it_refuses(tmp_path: Path) -> None:
    d = directory(tmp_path / "chat.db")
    signup(d, "ali")
    ask(d, b"a", p.Login(rid=1, username="ali", password="pw"))
    huge = "\x01" * 500_000  # repr() would make it four times longer
    for request in (
        p.SendDirect(rid=2, to=huge, body="hi", client_id="c-1"),
        p.Join(rid=3, room=huge),
        p.History(rid=4, peer=huge, limit=10),
    ):
        reply, _ = ask(d, b"a", request)
        assert isinstance(reply, p.Failure) and reply.code in ("no_such_user", "no_such_room")
        assert len(p.encode(reply)[0]) < 400


def test_users_and_rooms_are_listed_a_page_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("libimchat.directory.LIST_PAGE", 2)
    d = directory(tmp_path / "chat.db")
    for name in ("eve", "Bob", "dan", "ali", "Cat"):
        signup(d, name)
    ask(d, b"a", p.Login(rid=1, username="ali", password="pw"))
    for room in ("R3", "r1", "R2"):
        ask(d, b"a", p.CreateRoom(rid=2, room=room))
    pages, after, more = [], "", True
    while more:
        page, _ = ask(d, b"a", p.ListUsers(rid=3, after=after))
        pages.append([u.username for u in page.users])
        after, more = pages[-1][-1].upper(), page.more  # any spelling of the name will do
    assert pages == [["ali", "Bob"], ["Cat", "dan"], ["eve"]]
    first, _ = ask(d, b"a", p.ListRooms(rid=4))
    rest, _ = ask(d, b"a", p.ListRooms(rid=5, after=first.rooms[-1].name))
    assert [[r.name for r in first.rooms], first.more] == [["r1", "R2"], True]
    assert [[r.name for r in rest.rooms], rest.more] == [["R3"], False]


def test_resume_tokens_expire_when_unused(tmp_path: Path) -> None:
    d = directory(tmp_path / "chat.db")
    signup(d, "ali")
    started, _ = ask(d, b"a", p.Login(rid=2, username="ali", password="pw"), now=1000.0)
    later = 1000.0 + d.session_ttl - 1
    d.expire(later)  # the client went silent long ago; its token lives on from now
    resumed, _ = ask(d, b"b", p.Resume(rid=3, token=started.token), now=later + 1)
    assert isinstance(resumed, p.SessionStarted)
    gone_at = later + 10  # the resumed client goes silent too
    d.expire(gone_at)
    assert d.forget_old_tokens(gone_at + d.session_ttl / 2) == 0
    assert d.forget_old_tokens(gone_at + d.session_ttl + 1) == 1
    gone, _ = ask(d, b"c", p.Resume(rid=4, token=started.token), now=gone_at + d.session_ttl + 2)
    assert isinstance(gone, p.Failure) and gone.code == "session_expired"


def test_a_refused_request_carries_its_rid_when_it_has_one(tmp_path: Path) -> None:
    d = directory(tmp_path / "chat.db")
    frames = [msgpack.packb({"t": "Login", "rid": 77, "username": 5, "password": "x"})]
    outcome = d.handle_batch([(b"peer", frames)], 0.0)
    ((_, reply),) = outcome.replies
    assert isinstance(reply, p.Failure) and (reply.code, reply.rid) == ("bad_request", 77)


def test_a_logout_whose_write_fails_keeps_the_session(tmp_path: Path) -> None:
    d = directory(tmp_path / "chat.db")
    signup(d, "ali")
    ask(d, b"peer", p.Login(rid=2, username="ali", password="pw", subscriber_key=KEY_A))
    blocker = sqlite3.connect(tmp_path / "chat.db")
    blocker.execute("BEGIN IMMEDIATE")
    d.store.db.execute("PRAGMA busy_timeout=0")
    reply, outcome = ask(d, b"peer", p.Logout(rid=3))
    assert isinstance(reply, p.Failure) and reply.code == "internal"
    assert outcome.publications == []  # nobody is told ali left
    assert d.may_subscribe(KEY_A)  # and ali's client still hears the rooms
    blocker.rollback()
    reply, _ = ask(d, b"peer", p.ListUsers(rid=4))
    assert isinstance(reply, p.UserList) and [u.online for u in reply.users] == [True]


def test_a_live_session_keeps_its_token_past_the_ttl(tmp_path: Path) -> None:
    d = directory(tmp_path / "chat.db")
    signup(d, "ali")
    started, _ = ask(d, b"a", p.Login(rid=2, username="ali", password="pw"), now=1000.0)
    much_later = 1000.0 + 2 * d.session_ttl
    assert d.forget_old_tokens(much_later) == 0
    d.expire(much_later + 10)  # the connection goes silent: the session ends
    resumed, _ = ask(d, b"b", p.Resume(rid=3, token=started.token), now=much_later + 20)
    assert isinstance(resumed, p.SessionStarted)


def test_a_resent_signup_or_room_creation_gets_the_first_answer(tmp_path: Path) -> None:
    d = directory(tmp_path / "chat.db")
    signup_request = p.Signup(
        rid=1, username="ali", password="pw", first_name="F", last_name="L",
        phone="0633217608", key="k-1",
    )  # fmt: skip
    assert isinstance(ask(d, b"a", signup_request)[0], p.Done)
    # the client reconnected (a new peer) and resent it with the same key
    again, _ = ask(d, b"b", dataclasses.replace(signup_request, rid=9))
    assert isinstance(again, p.Done) and again.rid == 9
    other_key = dataclasses.replace(signup_request, rid=10, key="k-2")
    refused, _ = ask(d, b"b", other_key)
    assert isinstance(refused, p.Failure) and refused.code == "username_taken"
    ask(d, b"b", p.Login(rid=11, username="ali", password="pw"))
    ask(d, b"c", p.Login(rid=1, username="ali", password="pw"))  # ali's other client
    created, first = ask(d, b"b", p.CreateRoom(rid=12, room="Room1", key="r-1"))
    assert [type(r) for to, r in first.replies if to == b"c"] == [p.AccountState]
    resent, outcome = ask(d, b"b", p.CreateRoom(rid=13, room="Room1", key="r-1"))
    assert isinstance(resent, p.RoomReply) and resent.room == created.room
    # announced once: no second RoomCreated, no second AccountState
    assert outcome.publications == []
    assert outcome.replies == [(b"b", resent)]


def test_the_pub_socket_admits_the_subscriber_keys_of_live_sessions_only(tmp_path: Path) -> None:
    d = directory(tmp_path / "chat.db")
    signup(d, "ali")
    signup(d, "sam")
    assert not d.may_subscribe(KEY_A)
    started, _ = ask(d, b"a", p.Login(rid=2, username="ali", password="pw", subscriber_key=KEY_A))
    assert d.may_subscribe(KEY_A) and not d.may_subscribe(KEY_B)
    # sam claims ali's key: harmless (the handshake needs ali's secret), and it
    # must not let sam's logout shut ali out
    ask(d, b"s", p.Login(rid=3, username="sam", password="pw", subscriber_key=KEY_A))
    ask(d, b"s", p.Logout(rid=4))
    assert d.may_subscribe(KEY_A)
    # a session replaced on its connection takes its key with it
    ask(d, b"a", p.Resume(rid=5, token=started.token, subscriber_key=KEY_B))
    assert d.may_subscribe(KEY_B) and not d.may_subscribe(KEY_A)
    ask(d, b"a", p.Logout(rid=6))
    assert not d.may_subscribe(KEY_B)
    ask(d, b"b", p.Login(rid=7, username="ali", password="pw", subscriber_key=KEY_B))
    d.expire(100.0 + 3 * 1.0 + 1)  # a silent session ends too (3 missed 1 s heartbeats)
    assert not d.may_subscribe(KEY_B)
    ask(d, b"c", p.Login(rid=8, username="ali", password="pw"))  # insecure: no key
    assert d.subscribers == {}


def test_a_subscriber_key_that_is_no_curve_key_is_refused(tmp_path: Path) -> None:
    d = directory(tmp_path / "chat.db")
    signup(d, "ali")
    started, _ = ask(d, b"a", p.Login(rid=2, username="ali", password="pw"))
    for bad in ("a" * 39, "a" * 41, "a" * 39 + "~", "a" * 39 + "\u00e9"):
        login = p.Login(rid=3, username="ali", password="pw", subscriber_key=bad)
        resume = p.Resume(rid=4, token=started.token, subscriber_key=bad)
        for request in (login, resume):
            reply, _ = ask(d, b"b", request)
            assert isinstance(reply, p.Failure) and reply.code == "invalid", bad
    assert d.subscribers == {} and list(d.sessions) == [b"a"]


def logged_in(d: Directory, peer: bytes, name: str) -> None:
    signup(d, name)
    reply, _ = ask(d, peer, p.Login(rid=2, username=name, password="pw"))
    assert isinstance(reply, p.SessionStarted)


def test_a_send_that_fails_midway_leaves_memory_as_the_store_has_it(tmp_path: Path) -> None:
    # sends run without a savepoint of their own (see directory._UNGUARDED)
    d = directory(tmp_path / "chat.db")
    logged_in(d, b"ali", "ali")
    logged_in(d, b"sam", "sam")
    d.store.db.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON messages WHEN NEW.body = 'boom'"
        " BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END"
    )  # fails the insert after the new dialog was written
    reply, outcome = ask(d, b"ali", p.SendDirect(rid=5, to="sam", body="boom", client_id="c1"))
    assert isinstance(reply, p.Failure) and reply.code == "internal"
    assert [to for to, _ in outcome.replies] == [b"ali"]  # no delivery of what was not stored
    reply, _ = ask(d, b"ali", p.SendDirect(rid=6, to="sam", body="hello", client_id="c2"))
    assert isinstance(reply, p.Sent) and reply.message.seq == 1
    reply, _ = ask(d, b"sam", p.SendRoom(rid=7, room="nowhere", body="x", client_id="c3"))
    assert isinstance(reply, p.Failure) and reply.code == "no_such_room"
    stored = sqlite3.connect(tmp_path / "chat.db").execute(
        "SELECT conversation_id, seq, inbox_seq, body FROM messages"
    )
    assert stored.fetchall() == [(1, 1, 1, "hello")]


def test_a_resend_gets_its_message_even_after_a_block_or_at_the_rate_limit(tmp_path: Path) -> None:
    d = Directory(
        Store(tmp_path / "chat.db"),
        Passwords("fast"),
        welcome=WELCOME,
        limits=Limits(message_burst=1, messages_per_second=1e-6),
    )
    logged_in(d, b"ali", "ali")
    logged_in(d, b"sam", "sam")
    first = p.SendDirect(rid=5, to="sam", body="hi", client_id="c1")
    sent, _ = ask(d, b"ali", first)
    assert isinstance(sent, p.Sent)
    limited, _ = ask(d, b"ali", p.SendDirect(rid=6, to="sam", body="again", client_id="c2"))
    assert isinstance(limited, p.Failure) and limited.code == "rate_limited"
    resent, _ = ask(d, b"ali", dataclasses.replace(first, rid=7))
    assert isinstance(resent, p.Sent) and resent.message == sent.message
    assert isinstance(ask(d, b"sam", p.Block(rid=8, username="ali"))[0], p.Done)
    resent, _ = ask(d, b"ali", dataclasses.replace(first, rid=9))
    assert isinstance(resent, p.Sent) and resent.message == sent.message
    other, _ = ask(d, b"ali", p.SendDirect(rid=10, to="sam", body="hi", client_id="c3"))
    assert isinstance(other, p.Failure) and other.code == "blocked"
    mismatch, _ = ask(d, b"ali", dataclasses.replace(first, rid=11, body="changed"))
    assert isinstance(mismatch, p.Failure) and mismatch.code == "invalid"


def test_a_client_id_reused_for_a_new_dialog_is_refused_and_leaves_no_dialog(
    tmp_path: Path,
) -> None:
    # found by the model test: the refusal came after the new dialog was written
    d = directory(tmp_path / "chat.db")
    logged_in(d, b"ali", "ali")
    logged_in(d, b"sam", "sam")
    logged_in(d, b"zoe", "zoe")
    sent, _ = ask(d, b"ali", p.SendDirect(rid=5, to="sam", body="hi", client_id="c1"))
    assert isinstance(sent, p.Sent)
    reused, _ = ask(d, b"ali", p.SendDirect(rid=6, to="zoe", body="hi", client_id="c1"))
    assert isinstance(reused, p.Failure) and reused.code == "invalid"
    first, _ = ask(d, b"ali", p.SendDirect(rid=7, to="zoe", body="hello", client_id="c2"))
    assert isinstance(first, p.Sent) and first.message.seq == 1
    dialogs = sqlite3.connect(tmp_path / "chat.db").execute(
        "SELECT COUNT(*) FROM conversations WHERE room IS NULL"
    )
    assert dialogs.fetchone() == (2,)


def test_the_heartbeat_interval_grows_with_the_sessions_and_each_session_expires_by_its_own(
    tmp_path: Path,
) -> None:
    # answering 2 heartbeats a second at most: a third session asks everyone for fewer
    d = Directory(
        Store(tmp_path / "chat.db"), Passwords("fast"), welcome=WELCOME, heartbeats_per_second=2
    )
    for name in ("ali", "bob"):
        signup(d, name)
    first, _ = ask(d, b"a", p.Login(rid=2, username="ali", password="pw"))
    ask(d, b"b", p.Login(rid=2, username="bob", password="pw"))
    assert first.heartbeat_interval == 1.0 == d.heartbeat_interval()
    signup(d, "cat")
    third, _ = ask(d, b"c", p.Login(rid=2, username="cat", password="pw"))
    assert third.heartbeat_interval == 2.0  # 3 sessions / 2 a second: 1.5 s, in whole seconds
    welcome, _ = ask(d, b"new", p.Hello(rid=3, version=p.PROTOCOL_VERSION, agent="t"))
    assert welcome.heartbeat_interval == 2.0
    pong, _ = ask(d, b"a", p.Ping(rid=4, inbox_seen=0), now=101.0)
    assert pong.heartbeat_interval == 2.0
    # bob was told 1 s: three missed heartbeats end his session; ali and cat were told 2 s
    d.expire(104.5)
    assert set(d.sessions) == {b"a", b"c"}
    pong, _ = ask(d, b"a", p.Ping(rid=5, inbox_seen=0), now=105.0)
    assert pong.heartbeat_interval == 1.0  # two sessions: back to the server's own
    d.expire(106.5)  # cat, silent 6.5 s, was told 2 s
    assert set(d.sessions) == {b"a"}
    # had that Pong been lost, ali would heartbeat every 2 s: until told 1 s twice, its
    # session waits three of the longer intervals
    d.expire(108.5)
    assert set(d.sessions) == {b"a"}
    ask(d, b"a", p.Ping(rid=6, inbox_seen=0), now=109.0)
    d.expire(112.5)  # told 1 s twice, silent 3.5 s
    assert d.sessions == {}
