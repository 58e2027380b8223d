"""Password work off the server's loop: logins do not stall others, and a client's order holds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from libimchat import Client, Server
from libimchat import protocol as p
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
