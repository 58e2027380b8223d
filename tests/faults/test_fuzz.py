"""Fuzz a live server for a while with mangled frames, then check it still serves and did not bloat.

test_garbage.py sends each kind of garbage once and checks the answer. This
test sends volume instead, for IMCHAT_FUZZ_SECONDS (20 s by default):
hypothesis draws volleys of frames for several raw DEALERs, some logged in (so
that garbage reaches the handlers behind the session check), made of

- real requests of a session (a message to another user, a page of history,
  a room to join...) encoded by libimchat.protocol, then damaged byte by byte:
  bits flipped, cut short, bytes inserted or dropped, a slice repeated, two
  requests spliced into one frame;
- the same requests broken in their structure (tests.strategies.mutated_encodings);
- the requests intact, alone or repeated as several frames of one message;
- random bytes.

After each volley every socket must get one valid reply per message (no
``internal`` failure, nothing undecodable), then a Welcome to a Hello. After
the fuzz, a normal client signs up, logs in and exchanges a message, and the
server process's resident memory has grown by less than RSS_GROWTH_MIB.
"""

from __future__ import annotations

import itertools
import os
import time
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import zmq
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from libimchat import protocol as p
from libimchat.errors import CODES
from tests.faults.servers import ServerProcess, rss_mib
from tests.faults.wire import raw_socket
from tests.helpers import logged_in, wait_for
from tests.strategies import garbage, mutated_encodings
from tests.test_garbage import hello, packed

FUZZ_SECONDS = float(os.environ.get("IMCHAT_FUZZ_SECONDS", "20"))
SOCKETS = 4  # the first two log in
RSS_GROWTH_MIB = 32
REPLIES = typing.get_args(p.Reply)
PUSHES = (p.Delivery, p.Invited, p.AccountState)
REPLY_TIMEOUT = 5.0
_rids = itertools.count(1 << 40)


def session_requests(peer: str, room: str) -> list[p.Request]:
    """Valid requests of a logged-in user, one of each kind, to be damaged."""
    return [
        p.Hello(rid=11, version=p.PROTOCOL_VERSION, agent="fuzz"),
        p.Ping(rid=12, inbox_seen=3),
        p.ListUsers(rid=13),
        p.ListRooms(rid=14),
        p.ListBlocked(rid=15),
        p.Events(rid=16, after=0),
        p.Inbox(rid=17, after=0, limit=20),
        p.History(rid=18, peer=peer, limit=20, before=None),
        p.RoomHistory(rid=19, room=room, limit=20, before=None, after_seq=0),
        p.SendDirect(rid=20, to=peer, body="fuzzed hello", client_id="fz-1"),
        p.SendRoom(rid=21, room=room, body="fuzzed post", client_id="fz-2"),
        p.Join(rid=22, room=room),
        p.Leave(rid=23, room="Elsewhere"),
        p.Invite(rid=24, room=room, username=peer),
        p.Block(rid=25, username="nobody-here"),
        p.Unblock(rid=26, username=peer),
        p.CreateRoom(rid=27, room="Fuzz Room", key="k-1"),
        p.Rename(rid=28, username="fuzzer0"),
        p.Login(rid=29, username="fuzzer0", password="pw"),
        p.Resume(rid=30, token="not-a-token"),
        p.Logout(rid=32, inbox_seen=0),
        p.Signup(
            rid=31,
            username="fuzzer0",
            password="pw",
            first_name="F",
            last_name="Z",
            phone="0633217608",
            key="",
        ),
    ]


SEEDS = [p.encode(request)[0] for request in session_requests("fuzzer1", "Fuzzing")]


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    """A real request's encoding, damaged byte by byte one to four times."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["flip", "cut", "insert", "drop", "repeat", "splice"]))
        if op == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "drop":
            del data[at : at + draw(st.integers(1, 8))]
        elif op == "repeat":
            data[at:at] = data[at : at + draw(st.integers(1, 16))]
        elif op == "splice":
            data[at:] = draw(st.sampled_from(SEEDS))[draw(st.integers(0, 20)) :]
    return bytes(data)


frame = st.one_of(
    damaged(),
    mutated_encodings(),
    st.sampled_from(SEEDS),
    st.builds(packed, garbage),
    st.binary(max_size=100),
)
message = st.one_of(
    frame.map(lambda f: [f]),
    frame.map(lambda f: [f, f]),  # the same frame twice in one message
    st.lists(frame, min_size=2, max_size=4),
)
volley = st.lists(st.tuples(st.integers(0, SOCKETS - 1), message), min_size=1, max_size=12)


@dataclass
class Tally:
    volleys: int = 0
    frames: int = 0
    messages: int = 0
    replies: int = 0
    pushes: int = 0
    answers: dict[str, int] = field(default_factory=dict)  # by reply type, or failure code


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path).start()
    yield server
    server.stop()


@pytest.mark.timeout(FUZZ_SECONDS + 60)
def test_a_fuzzed_server_still_serves_and_does_not_bloat(server: ServerProcess, capsys) -> None:
    for name in ("fuzzer0", "fuzzer1"):
        logged_in(server.url, name).close()
    owner = logged_in(server.url, "owner")
    owner.create_room("Fuzzing")
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sockets = [raw_socket(ctx, zmq.DEALER, server.url) for _ in range(SOCKETS)]
    tally = Tally()
    try:
        for sock, name in zip(sockets, ("fuzzer0", "fuzzer1"), strict=False):
            reply = _ask(sock, p.Login(rid=next(_rids), username=name, password="pw"))
            assert isinstance(reply, p.SessionStarted), reply

        @settings(
            max_examples=100,  # a round: the test runs rounds until its time is up
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(volley=volley)
        def fuzz(volley: list[tuple[int, list[bytes]]]) -> None:
            _fire(sockets, volley, tally)

        # the first round fills caches, pools and tables: measure growth from there
        fuzz()
        rss_before = rss_mib(server.pid)
        deadline = time.monotonic() + FUZZ_SECONDS
        while time.monotonic() < deadline:
            fuzz()
        rss_after = rss_mib(server.pid)
    finally:
        for sock in sockets:
            sock.close(linger=0)
        ctx.term()

    # a normal client still gets through, and everyone is answered as before
    ali, sam = logged_in(server.url, "ali"), logged_in(server.url, "sam")
    sent = ali.send("sam", "still here?")
    assert wait_for(sam, lambda e: e.kind == "message").message == sent
    post = owner.send_room("Fuzzing", "and the room too?")
    assert owner.room_history("Fuzzing", limit=1) == [post]
    for client in (ali, sam, owner):
        client.close()
    assert tally.messages > 0
    assert rss_after - rss_before < RSS_GROWTH_MIB, (rss_before, rss_after)
    with capsys.disabled():
        print(
            f"\nFIGURES: fuzz seconds={FUZZ_SECONDS:g} volleys={tally.volleys}"
            f" frames_sent={tally.frames} messages_sent={tally.messages}"
            f" replies={tally.replies} pushes={tally.pushes}"
            f" server_rss_mib={rss_before:.0f}->{rss_after:.0f}"
            f" answers={dict(sorted(tally.answers.items()))}"
        )


def _fire(
    sockets: list[zmq.Socket[bytes]], volley: list[tuple[int, list[bytes]]], tally: Tally
) -> None:
    """Send a volley, then check that each socket got one valid reply per message, and more."""
    sent = [0] * len(sockets)
    for index, frames in volley:
        sockets[index].send_multipart(frames)
        sent[index] += 1
        tally.frames += len(frames)
    tally.messages += len(volley)
    tally.volleys += 1
    for index in {index for index, _ in volley}:
        sock = sockets[index]
        rid = next(_rids)
        sock.send_multipart(hello(rid))
        replies = 0
        while True:
            assert sock.poll(int(REPLY_TIMEOUT * 1000)), f"no Welcome after {volley!r:.500}"
            reply = p.decode(sock.recv_multipart())  # raises on anything but valid protocol
            if isinstance(reply, p.Welcome) and reply.rid == rid:
                break
            if isinstance(reply, PUSHES):
                tally.pushes += 1
                continue
            assert isinstance(reply, REPLIES), reply
            if isinstance(reply, p.Failure):
                assert reply.code in CODES and reply.code != "internal", reply
            answer = reply.code if isinstance(reply, p.Failure) else type(reply).__name__
            tally.answers[answer] = tally.answers.get(answer, 0) + 1
            replies += 1
        assert replies == sent[index], f"{replies} replies to {sent[index]} messages"
        tally.replies += replies


def _ask(sock: zmq.Socket[bytes], request: p.Request) -> p.ProtocolMessage:
    sock.send_multipart(p.encode(request))
    assert sock.poll(int(REPLY_TIMEOUT * 1000)), f"no reply to {request}"
    return p.decode(sock.recv_multipart())
