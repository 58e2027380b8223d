"""Readers that stop reading while a room is busy: nobody else waits for them.

Two kinds of stalled reader watch a room while two users post thousands of
large messages to it:

- raw subscribers with a receive queue of one message and a small socket
  buffer, which never read until the posting is over: the server must drop
  publications for them, not wait, so they end with only a prefix of the room;
- a real client whose both connections are frozen in a proxy (bytes pile up
  in the kernel and in the server's queues, as in front of a stuck reader).

The posters receive every message, in order, while the frozen client is still
frozen (the test waits for them before thawing it, so a server that waited for
slow readers would fail here, whatever the timing). Then the frozen client,
thawed, ends with every message of the room, once and in order: what its
subscriber lost, it fetches.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from libimchat import Client, Server
from libimchat import protocol as p
from tests.faults.proxy import Proxy
from tests.faults.wire import Context, endpoint, raw_socket, secured_socket
from tests.helpers import HEARTBEAT, LIVENESS, logged_in, signup, start_server

ROOM = "Busy"
POSTS = 3000
BODY = 4000  # long: a few thousand fill the buffers (a backfill page of them stays under 1 MiB)
STUCK = 2


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    server = start_server(tmp_path / "data")
    yield server
    server.stop()


@pytest.mark.timeout(60)
def test_stalled_readers_slow_nobody_and_the_client_catches_up_in_full(server: Server) -> None:
    with contextlib.ExitStack() as closing:
        ctx: Context = zmq.Context()
        closing.callback(ctx.term)
        stuck = [_stuck_subscriber(ctx, server, f"stuck{index}") for index in range(STUCK)]
        for sock in stuck:
            closing.callback(sock.close, linger=0)
        alice = closing.enter_context(logged_in(server.url, "alice"))
        bob = closing.enter_context(logged_in(server.url, "bob"))
        proxy = closing.enter_context(Proxy.in_front_of(server))
        slow = closing.enter_context(logged_in(proxy.url(server.url), "slow"))
        alice.create_room(ROOM)
        bob.join(ROOM)
        slow.join(ROOM)

        proxy.freeze()
        posters = [alice, bob]
        posted = [
            posters[i % 2].send_room(ROOM, f"{i:05d} ".ljust(BODY, "x")) for i in range(POSTS)
        ]
        expected = [m.id for m in posted]  # posted one after the other: room order
        assert [m.seq for m in posted] == list(range(1, POSTS + 1))
        assert _room_ids(alice, POSTS, timeout=20) == expected
        assert _room_ids(bob, POSTS, timeout=20) == expected
        # ...while the frozen client has seen nothing yet
        assert _room_ids(slow, POSTS, timeout=0) == []
        for sock in stuck:
            seqs = _drain(sock)
            assert 0 < len(seqs) < POSTS, f"no publication was dropped: {len(seqs)} kept"
            assert seqs == list(range(1, len(seqs) + 1))  # what was kept: the start, in order

        proxy.thaw()
        # it noticed the silence and backed off (1 s, then 2 s...) while frozen
        assert _room_ids(slow, POSTS, timeout=20) == expected
        assert _room_ids(slow, 1, timeout=3 * HEARTBEAT * LIVENESS) == []  # and no more


def test_a_backfill_of_the_longest_messages_fits_in_a_frame(server: Server) -> None:
    """A subscriber that missed long messages gets them by backfill, like any others.

    The client fetches what its subscriber missed in pages of 200 messages
    (core.BACKFILL_PAGE); 200 bodies of the longest allowed length (8000
    characters) make a 1.6 MB reply, over the 1 MiB frame limit the client sets
    on its socket (MAXMSGSIZE). The page has to fit, or libzmq drops the
    connection on receiving it, and the client asks for the same page again
    after reconnecting, forever.
    """
    longest = 8000  # validation.py: the longest body
    with contextlib.ExitStack() as closing:
        poster = closing.enter_context(logged_in(server.url, "poster"))
        proxy = closing.enter_context(Proxy.in_front_of(server))
        reader = closing.enter_context(logged_in(proxy.url(server.url), "reader"))
        poster.create_room(ROOM)
        reader.join(ROOM)
        proxy.freeze(server.pub_port)  # its subscriber misses everything from now on
        posted = [poster.send_room(ROOM, f"{i:05d} ".ljust(longest, "x")).id for i in range(250)]
        assert _room_ids(reader, len(posted), timeout=5) == posted


def _stuck_subscriber(ctx: Context, server: Server, name: str) -> zmq.Socket[bytes]:
    """A subscriber to the room that holds one message and a few KiB in its kernel buffer.

    The server's PUB socket admits only a key that a live session named, so a
    raw DEALER logs ``name`` in naming the subscriber's key, and the
    subscriber connects while that session lives.
    """
    keypair = zmq.curve_keypair()
    with Client(server.url) as client:
        signup(client, name)
    dealer = raw_socket(ctx, zmq.DEALER, server.url)
    sock = secured_socket(ctx, zmq.SUB, server.url, keypair)
    sock.setsockopt(zmq.RCVHWM, 1)
    sock.setsockopt(zmq.RCVBUF, 4096)
    sock.setsockopt(zmq.SUBSCRIBE, p.room_topic(ROOM))
    admitted = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
    try:
        subscriber_key = keypair[0].decode() if server.public_key else ""
        login = p.Login(rid=1, username=name, password="pw", subscriber_key=subscriber_key)
        dealer.send_multipart(p.encode(login))
        assert dealer.poll(5000), "no answer to Login"
        assert isinstance(p.decode(dealer.recv_multipart()), p.SessionStarted)
        sock.connect(endpoint(server.url, server.pub_port))
        assert admitted.poll(5000), "the server did not admit the subscriber"
    finally:
        sock.disable_monitor()
        admitted.close(linger=0)
        dealer.close(linger=0)  # the session lapses; an admitted subscriber stays
    return sock


def _drain(sock: zmq.Socket[bytes]) -> list[int]:
    """The room seqs of every publication the socket holds (it is read only now)."""
    seqs = []
    while sock.poll(500):
        post = p.decode(sock.recv_multipart())
        assert isinstance(post, p.RoomPost), post
        seqs.append(post.message.seq)
    return seqs


def _room_ids(client: Client, count: int, timeout: float) -> list[int]:
    """Ids of the next ``count`` room messages the client emits, or of those that came in time."""
    deadline = time.monotonic() + timeout
    ids: list[int] = []
    while len(ids) < count:
        event = client.next_event(timeout=max(deadline - time.monotonic(), 0))
        if event is None:
            break
        if event.kind == "room_message" and event.message is not None:
            ids.append(event.message.id)
    return ids
