"""Garbage on the wire against a live server: it answers a Failure or drops the connection.

A raw DEALER (no libimchat client) sends random bytes, odd frame counts, unknown
types, wrong field types, frames over the server's size limit, and requests that
need a session without one. Whatever it sends, the server must answer each bad
message with a ``Failure`` (or, for an oversized frame, have libzmq drop the
connection), and go on serving: a normal client can still sign up, log in and
exchange a direct message afterwards.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import time
import typing
from collections.abc import Callable, Iterator
from typing import Any

import msgpack
import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st
from zmq.utils.monitor import recv_monitor_message

from libimchat import Client, Server
from libimchat import protocol as p
from libimchat.errors import CODES
from libimchat.server import MAX_FRAME
from tests.helpers import raw_dealer, wait_for
from tests.strategies import example_of, garbage, mutated_encodings

REPLY_TIMEOUT = 5.0
REQUESTS = typing.get_args(p.Request)
REPLIES = typing.get_args(p.Reply)
NO_SESSION_NEEDED = {p.Hello, p.Signup, p.Login, p.Resume}
_rids = itertools.count(1000)

RawSocket = zmq.Socket


@pytest.fixture
def raw(server: Server) -> Iterator[Callable[[], RawSocket]]:
    """Make plain DEALER sockets connected to ``server``; all closed at the end of the test."""
    ctx = zmq.Context()
    sockets: list[RawSocket] = []

    def make() -> RawSocket:
        sock = raw_dealer(ctx, server)
        sockets.append(sock)
        return sock

    yield make
    for sock in sockets:
        sock.close(linger=0)
    ctx.term()


def receive(sock: RawSocket, timeout: float = REPLY_TIMEOUT) -> p.ProtocolMessage | None:
    """The next reply, decoded (it must be valid protocol), or None after ``timeout``."""
    if not sock.poll(int(timeout * 1000), zmq.POLLIN):
        return None
    return p.decode(sock.recv_multipart())


def ask(sock: RawSocket, frames: list[bytes]) -> p.ProtocolMessage:
    sock.send_multipart(frames)
    reply = receive(sock)
    assert reply is not None, f"no reply within {REPLY_TIMEOUT} s to {frames!r:.200}"
    return reply


def assert_failure(reply: p.ProtocolMessage, code: str, rid: int = 0) -> None:
    assert isinstance(reply, p.Failure), reply
    assert (reply.code, reply.rid) == (code, rid), reply


def rid_of(body: dict[str, Any]) -> int:
    """The rid a refusal carries: the request's own when it is a valid 64-bit int, else 0."""
    rid = body.get("rid")
    return rid if type(rid) is int and -(2**63) <= rid < 2**63 else 0


def failure_of(reply: p.ProtocolMessage) -> tuple[str, int] | p.ProtocolMessage:
    """``(code, rid)`` of a Failure; any other reply as it is, so that a diff shows it."""
    return (reply.code, reply.rid) if isinstance(reply, p.Failure) else reply


def hello(rid: int) -> list[bytes]:
    return p.encode(p.Hello(rid=rid, version=p.PROTOCOL_VERSION, agent="x"))


def assert_answers_hello(sock: RawSocket) -> None:
    rid = next(_rids)
    reply = ask(sock, hello(rid))
    assert isinstance(reply, p.Welcome) and reply.rid == rid, reply


def assert_chat_works(user: Callable[[str], Client]) -> None:
    """New users can sign up, log in and exchange a direct message."""
    ali, sam = user(f"ali{next(_rids)}"), user(f"sam{next(_rids)}")
    assert sam.user is not None
    sent = ali.send(sam.user.username, "still here?")
    assert wait_for(sam, lambda e: e.kind == "message").message == sent


def wire(msg: Any) -> dict[str, Any]:
    return typing.cast(dict[str, Any], msgpack.unpackb(p.encode(msg)[0]))


def packed(value: Any) -> bytes:
    return typing.cast(bytes, msgpack.packb(value, use_bin_type=True))


# --- bytes and frames


def test_random_bytes_are_answered_with_bad_request(raw, user) -> None:
    sock = raw()
    rng = random.Random(20240611)
    blobs = [rng.randbytes(rng.choice([1, 2, 7, 64, 1000, 60_000])) for _ in range(40)]
    blobs += [
        b"\xc1",
        b"\xff" * 100,
        b"\x00" * 5000,
        b"\xdd\xff\xff\xff\xff",
        b"\xdb\x7f\xff\xff\xff",
    ]
    for blob in blobs:
        assert_failure(ask(sock, [blob]), "bad_request")
    assert_answers_hello(sock)
    assert_chat_works(user)


EMPTY_AND_MANY_FRAMES = {
    "empty": [b""],
    "two empty": [b"", b""],
    "three empty": [b"", b"", b""],
    "three hellos": hello(1) * 3,
    "100 frames": [b"x"] * 100,
    "1000 empty": [b""] * 1000,
}


def test_empty_frames_and_too_many_frames_are_answered_with_bad_request(raw, user) -> None:
    sock = raw()
    answers = {
        name: failure_of(ask(sock, frames)) for name, frames in EMPTY_AND_MANY_FRAMES.items()
    }
    assert answers == dict.fromkeys(EMPTY_AND_MANY_FRAMES, ("bad_request", 0))
    assert_answers_hello(sock)
    assert_chat_works(user)


def test_a_frame_at_the_size_limit_is_read_and_answered(raw) -> None:
    sock = raw()
    assert_failure(ask(sock, [b"\x00" * MAX_FRAME]), "bad_request")
    assert_answers_hello(sock)


def test_a_frame_over_the_size_limit_drops_the_connection_and_nothing_else(raw, user) -> None:
    bystander = user("bystander")
    sock = raw()
    monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    try:
        assert_answers_hello(sock)  # connected
        sock.send(b"\x00" * (MAX_FRAME + 1))
        deadline = time.monotonic() + REPLY_TIMEOUT
        events = []
        while zmq.EVENT_DISCONNECTED not in events:
            left = deadline - time.monotonic()
            assert left > 0 and monitor.poll(int(left * 1000)), f"not dropped; saw {events}"
            events.append(recv_monitor_message(monitor)["event"])
    finally:
        sock.disable_monitor()
        monitor.close(linger=0)
    # the DEALER reconnects by itself; the oversized frame was never answered
    assert_answers_hello(sock)
    assert_chat_works(user)
    assert bystander.users()


# --- well-formed MessagePack that is not a valid request


NOT_REQUESTS: list[Any] = [
    {"t": "Goodbye", "rid": 3},
    {"t": "", "rid": 3},
    {"t": None, "rid": 3},
    {"t": 7, "rid": 3},
    {"t": ["Hello"], "rid": 3, "version": 1, "agent": "x"},
    {"rid": 3, "version": 1, "agent": "x"},
    {},
    ["Hello", 3, 1, "x"],
    "Hello",
    42,
    None,
]


def test_unknown_types_and_non_maps_are_answered_with_bad_request(raw) -> None:
    sock = raw()
    answers = {repr(body): failure_of(ask(sock, [packed(body)])) for body in NOT_REQUESTS}
    assert answers == {repr(body): ("bad_request", 0) for body in NOT_REQUESTS}
    assert_answers_hello(sock)


def test_replies_and_pushes_sent_to_the_server_are_not_requests(raw) -> None:
    sock = raw()
    sent = [example_of(cls) for cls in p.MESSAGE_TYPES if cls not in REQUESTS]
    answers = {type(msg).__name__: failure_of(ask(sock, p.encode(msg))) for msg in sent}
    assert answers == {type(msg).__name__: ("bad_request", getattr(msg, "rid", 0)) for msg in sent}
    assert_answers_hello(sock)


WRONG_VALUES: dict[Any, list[Any]] = {
    int: ["1", 1.0, True, None, 2**63, 2**64 - 1, [1], {"n": 1}, b"\x01"],
    str: [1, None, True, b"name", ["x"], {"x": "y"}, 1.5],
}


def test_requests_with_fields_of_the_wrong_type_are_answered_with_bad_request(raw, user) -> None:
    sock = raw()
    asked = 0
    for cls in REQUESTS:
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            base = typing.get_args(hints[field.name]) or (hints[field.name],)
            for value in WRONG_VALUES[base[0]]:
                if value is None and type(None) in base:
                    continue  # an optional field may be nil
                body = wire(example_of(cls)) | {field.name: value}
                assert_failure(ask(sock, [packed(body)]), "bad_request", rid_of(body))
                asked += 1
            if field.default is dataclasses.MISSING:
                body = wire(example_of(cls))
                del body[field.name]
                assert_failure(ask(sock, [packed(body)]), "bad_request", rid_of(body))
                asked += 1
    assert asked > 10 * len(REQUESTS)
    assert_answers_hello(sock)
    assert_chat_works(user)


def test_deeply_nested_garbage_is_answered_with_bad_request(raw, user) -> None:
    # 1020 nested arrays: msgpack reads them (its limit is 1024), the decoder must cope too
    sock = raw()
    assert_failure(ask(sock, [b"\x81\xa1t" + b"\x91" * 1020 + b"\xc0"]), "bad_request")
    assert_answers_hello(sock)
    assert_chat_works(user)


def test_garbage_does_not_cost_the_requests_around_it_their_replies(raw) -> None:
    # sent in one burst, so that the server reads them in one batch
    sock = raw()
    deep = b"\x81\xa1t" + b"\x91" * 1020 + b"\xc0"
    rids = [next(_rids) for _ in range(20)]
    for rid in rids[:10]:
        sock.send_multipart(hello(rid))
    sock.send(deep)
    for rid in rids[10:]:
        sock.send_multipart(hello(rid))
    replies = []
    while len(replies) < len(rids) + 1 and (reply := receive(sock)) is not None:
        replies.append(reply)
    welcomed = sorted(r.rid for r in replies if isinstance(r, p.Welcome))
    failures = [(r.rid, r.code) for r in replies if isinstance(r, p.Failure)]
    assert (welcomed, failures) == (rids, [(0, "bad_request")])


# --- requests that need a session, sent without one


def test_requests_needing_a_session_are_refused_without_one(raw) -> None:
    sock = raw()
    sent = [
        dataclasses.replace(example_of(cls), rid=next(_rids))
        for cls in REQUESTS
        if cls not in NO_SESSION_NEEDED
    ]
    answers = {type(req).__name__: failure_of(ask(sock, p.encode(req))) for req in sent}
    assert answers == {type(req).__name__: ("not_logged_in", req.rid) for req in sent}
    assert_answers_hello(sock)


def test_requests_that_open_a_session_refuse_bad_credentials(raw, user) -> None:
    user("sam")
    sock = raw()
    cases = [
        (p.Hello(rid=1, version=p.PROTOCOL_VERSION + 1, agent="x"), "unsupported_version"),
        (p.Login(rid=2, username="sam", password="wrong"), "bad_credentials"),
        (p.Login(rid=3, username="nobody", password="pw"), "bad_credentials"),
        (p.Login(rid=4, username="", password=""), "missing_fields"),
        (p.Resume(rid=5, token="not a token"), "session_expired"),
        (
            p.Signup(rid=6, username="x", password="pw", first_name="F", last_name="L", phone="1"),
            "invalid",
        ),
    ]
    for request, code in cases:
        assert_failure(ask(sock, p.encode(request)), code, request.rid)
    # and the refused socket is still not logged in
    assert_failure(ask(sock, p.encode(p.ListUsers(rid=7))), "not_logged_in", 7)
    assert_chat_works(user)


# --- everything at once, then the chat still works


def test_after_every_kind_of_garbage_from_many_sockets_chat_still_works(raw, user) -> None:
    rng = random.Random(7)
    sockets = [raw() for _ in range(5)]
    bodies = [
        packed({"t": "Goodbye"}),
        packed(wire(example_of(p.SendDirect)) | {"to": 5}),
        packed(wire(example_of(p.Welcome))),
        *p.encode(example_of(p.ListUsers)),
    ]
    for sock in sockets:
        for _ in range(20):
            frames = [rng.randbytes(rng.randrange(50)) for _ in range(rng.randrange(1, 4))]
            sock.send_multipart(rng.choice([frames, [rng.choice(bodies)]]))
    for sock in sockets:
        for _ in range(20):
            reply = receive(sock)
            assert isinstance(reply, p.Failure) and reply.code in CODES, reply
            assert reply.code != "internal", reply
    for sock in sockets:
        assert_answers_hello(sock)
    assert_chat_works(user)


# --- hypothesis: random frame lists from one socket, the server answers Hello after each

frame = st.one_of(
    st.binary(max_size=64),
    st.builds(packed, garbage),
    mutated_encodings(),
    st.sampled_from(REQUESTS).map(lambda cls: p.encode(example_of(cls))[0]),
)


def test_random_frame_lists_never_stop_the_server_answering_hello(raw) -> None:
    sock = raw()  # one socket for every example: the garbage adds up

    @settings(max_examples=150, deadline=None)
    @given(frames=st.lists(frame, min_size=1, max_size=4))
    def garbage_then_hello(frames: list[bytes]) -> None:
        sock.send_multipart(frames)
        rid = next(_rids)
        sock.send_multipart(hello(rid))
        before_welcome = []
        while (reply := receive(sock)) is not None:
            if isinstance(reply, p.Welcome) and reply.rid == rid:
                break
            before_welcome.append(reply)
        else:
            raise AssertionError(f"no Welcome within {REPLY_TIMEOUT} s after {frames!r:.300}")
        assert len(before_welcome) <= 1, before_welcome
        for other in before_welcome:
            assert type(other) in REPLIES, other
            if isinstance(other, p.Failure):
                assert other.code in CODES and other.code != "internal", other

    garbage_then_hello()
