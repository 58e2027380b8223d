"""Password work off the server's loop: logins do not stall others, and a client's order holds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from libimchat import ChatError, Client, Server, password_pool
from libimchat import protocol as p
from libimchat.directory import PasswordWork
from libimchat.password_pool import PasswordPool
from libimchat.passwords import Passwords
from tests.helpers import raw_dealer, start_server

LOGINS = 16


@pytest.fixture
def owasp_server(tmp_path: Path) -> Iterator[Server]:
    # the real cost (~16 ms a check): sixteen logins are ~250 ms of Argon2
    server = start_server(tmp_path, password_profile="owasp")
    try:
        yield server
    finally:
        server.stop()


def _ask(sock: zmq.Socket[bytes], request: p.Request) -> None:
    sock.send_multipart(p.encode(request))


def _answer(sock: zmq.Socket[bytes]) -> p.ProtocolMessage:
    assert sock.poll(10_000), "no answer within 10 s"
    return p.decode(sock.recv_multipart())


def test_logins_under_way_do_not_hold_up_other_requests(owasp_server: Server) -> None:
    names = [f"user{i}" for i in range(LOGINS)]
    with Client(owasp_server.url, timeout=30) as client:
        for name in names:
            client.signup(name, "pw", first_name="F", last_name="L", phone="0633217608")
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        logins = [raw_dealer(ctx, owasp_server) for _ in names]
        other = raw_dealer(ctx, owasp_server)
        for sock in [*logins, other]:  # connected (and handshaken) before the race
            _ask(sock, p.Hello(rid=1, version=p.PROTOCOL_VERSION, agent="t"))
            assert isinstance(_answer(sock), p.Welcome)
        for sock, name in zip(logins, names, strict=True):
            _ask(sock, p.Login(rid=2, username=name, password="pw"))
        _ask(other, p.Hello(rid=2, version=p.PROTOCOL_VERSION, agent="t"))
        # sent after the logins, yet answered before most of them (a loop that hashed them
        # itself would answer all of them first; a reply may still be on its way, hence half)
        assert isinstance(_answer(other), p.Welcome)
        finished_before = sum(bool(sock.poll(0)) for sock in logins)
        assert finished_before <= LOGINS // 2, f"{finished_before} logins answered first"
        assert all(isinstance(_answer(sock), p.SessionStarted) for sock in logins)
    finally:
        ctx.destroy(linger=0)


def test_logins_beyond_the_pools_work_are_refused_as_busy_and_may_retry(
    owasp_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the loop never works a password out: a login the pool has no room for is refused
    # at once, where before the loop checked it itself, ~16 ms each, and the chat waited
    monkeypatch.setattr(password_pool, "MAX_JOBS", 2)
    names = [f"user{i}" for i in range(LOGINS)]
    with Client(owasp_server.url, timeout=30) as client:
        for name in names:  # one at a time: within the pool's room
            client.signup(name, "pw", first_name="F", last_name="L", phone="0633217608")
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        logins = [raw_dealer(ctx, owasp_server) for _ in names]
        for sock in logins:
            _ask(sock, p.Hello(rid=1, version=p.PROTOCOL_VERSION, agent="t"))
            assert isinstance(_answer(sock), p.Welcome)
        for sock, name in zip(logins, names, strict=True):
            _ask(sock, p.Login(rid=2, username=name, password="pw"))
        answers = [_answer(sock) for sock in logins]
        refused = [a for a in answers if isinstance(a, p.Failure)]
        assert len(refused) >= LOGINS // 2, answers
        assert {(a.rid, a.code) for a in refused} == {(2, "rate_limited")}
        assert all(a.retry_after > 0 for a in refused)
        assert len(refused) + sum(isinstance(a, p.SessionStarted) for a in answers) == LOGINS
        # a refusal is no failed login: the same login, retried, gets in
        again = logins[answers.index(refused[0])]
        _ask(again, p.Login(rid=3, username=names[answers.index(refused[0])], password="pw"))
        assert isinstance(_answer(again), p.SessionStarted)
    finally:
        ctx.destroy(linger=0)


def test_requests_sent_behind_a_login_are_answered_after_it_in_order(server: Server) -> None:
    with Client(server.url) as client:
        client.signup("ali", "pw", first_name="F", last_name="L", phone="0633217608")
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        sock = raw_dealer(ctx, server)
        # no waiting: the list and the second login must see the first login's session
        _ask(sock, p.Login(rid=1, username="ali", password="pw"))
        _ask(sock, p.ListUsers(rid=2))
        _ask(sock, p.Login(rid=3, username="ali", password="wrong"))
        _ask(sock, p.ListUsers(rid=4))
        answers = [_answer(sock) for _ in range(4)]
        assert [type(a).__name__ for a in answers] == [
            "SessionStarted",
            "UserList",
            "Failure",
            "UserList",
        ]
        assert [getattr(a, "rid", None) for a in answers] == [1, 2, 3, 4]
        assert isinstance(answers[2], p.Failure) and answers[2].code == "bad_credentials"
    finally:
        ctx.destroy(linger=0)


def _login(name: str) -> list[bytes]:
    return p.encode(p.Login(rid=1, username=name, password="pw"))


def _work(peer: bytes, frames: list[bytes], now: float) -> PasswordWork | None:
    request = p.decode(frames)
    return PasswordWork(password="pw", stored_hash=None) if isinstance(request, p.Login) else None


def test_the_pool_holds_a_bounded_amount_and_the_loop_does_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(password_pool, "MAX_JOBS", 1)
    monkeypatch.setattr(password_pool, "HELD_PER_PEER", 2)
    pool = PasswordPool(Passwords("fast"))
    try:
        ping = p.encode(p.Ping(rid=2, inbox_seen=0))
        passing = pool.admit(
            [
                (b"a", _login("ali")),
                (b"b", _login("bob")),
                (b"a", ping),
                (b"a", ping),
                (b"a", ping),
            ],
            _work,
            0.0,
        )
        # ali's login is worked on; bob's would be a second job: the loop does it; two of
        # ali's pings wait behind her login, the third is not held
        assert passing == [(b"b", _login("bob")), (b"a", ping)]
        released: list[tuple[bytes, list[bytes]]] = []
        while not released:  # the worker's answer comes back through the pool's descriptor
            zmq.select([pool.fileno()], [], [], 10.0)
            released = pool.release(_work, 0.0)
        assert released == [(b"a", _login("ali")), (b"a", ping), (b"a", ping)]
    finally:
        pool.close()


def test_answers_kept_for_the_same_question_are_each_taken_once() -> None:
    passwords = Passwords("fast")
    stored = passwords.hash("pw")
    passwords.keep_verdict(stored, "pw", (True, None))
    passwords.keep_verdict(stored, "pw", (True, "upgraded"))
    assert {passwords.verify(stored, "pw"), passwords.verify(stored, "pw")} == {
        (True, None),
        (True, "upgraded"),
    }
    assert passwords.verify(stored, "pw") == (True, None)  # none kept: worked out
    passwords.keep_hash("pw", "a")
    passwords.keep_hash("pw", "b")
    assert {passwords.hash("pw"), passwords.hash("pw")} == {"a", "b"}


def test_passwords_worked_ahead_hand_over_kept_answers_and_refuse_without_one() -> None:
    passwords = Passwords("fast", worked_ahead=True)
    stored = passwords.work_out_hash("pw")
    passwords.keep_verdict(stored, "pw", (True, None))
    passwords.keep_hash("new", "kept hash")
    assert passwords.verify(stored, "pw") == (True, None)
    assert passwords.hash("new") == "kept hash"
    for ask in (lambda: passwords.verify(stored, "pw"), lambda: passwords.hash("new")):
        with pytest.raises(ChatError) as caught:
            ask()
        assert caught.value.code == "rate_limited"
        assert caught.value.retry_after and caught.value.retry_after > 0
