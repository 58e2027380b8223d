"""What waits for a client that reads slower than the server answers, or not at all.

libzmq holds PEER_QUEUE messages for a peer; the rest waits in the server's
outbox. A slow reader gets everything, in order; one that does not read costs
the server a bounded amount of memory, then its session.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from libimchat import Client, Event, Server
from libimchat import protocol as p
from libimchat.limits import Limits
from libimchat.outbox import MAX_WAITING_BYTES, PEER_QUEUE, Outbox
from tests.helpers import raw_dealer, signup, start_server


@pytest.fixture
def quiet(tmp_path: Path) -> Iterator[Server]:
    """No page budget, and heartbeats too rare for any session to expire during a test."""
    server = start_server(tmp_path, limits=Limits.unlimited(), heartbeat_interval=30.0)
    yield server
    server.stop()


@pytest.fixture
def ali(quiet: Server) -> Iterator[Client]:
    """ali, logged in, who wrote sam 16 messages of 8,000 characters."""
    with Client(quiet.url, timeout=5) as sam:
        signup(sam, "sam")
    with Client(quiet.url, timeout=5) as ali:
        signup(ali, "ali")
        ali.login("ali", "pw")
        for i in range(16):
            ali.send("sam", chr(ord("a") + i) * 8000)
        yield ali


def logged_in(quiet: Server, ctx: zmq.Context[zmq.Socket[bytes]]) -> zmq.Socket[bytes]:
    """sam, logged in on a raw DEALER that reads only when told."""
    sam = raw_dealer(ctx, quiet)
    sam.setsockopt(zmq.RCVBUF, 4096)  # little waits in the kernel
    sam.setsockopt(zmq.RCVHWM, 1)  # or in libzmq, which reads ahead of the application
    sam.send_multipart(p.encode(p.Login(rid=1, username="sam", password="pw")))
    assert isinstance(p.decode(sam.recv_multipart()), p.SessionStarted)
    return sam


def ask_pages(sam: zmq.Socket[bytes], pages: int, size: int) -> None:
    """``pages`` pages of ``size`` messages (8 KB each) of ali's, asked for at once."""
    for rid in range(2, 2 + pages):
        sam.send_multipart(p.encode(p.History(rid=rid, peer="ali", limit=size)))


def flood(quiet: Server, ctx: zmq.Context[zmq.Socket[bytes]], pages: int, size: int):  # type: ignore[no-untyped-def]
    """sam logs in on a raw DEALER and asks for pages at once; returns the socket."""
    sam = logged_in(quiet, ctx)
    ask_pages(sam, pages, size)
    return sam


def next_event(client: Client, kind: str, **fields: object) -> Event:
    """The next event of this kind (with these fields) within 10 s."""
    while (event := client.next_event(timeout=10)) is not None and not (
        event.kind == kind and all(getattr(event, k) == v for k, v in fields.items())
    ):
        pass
    assert event is not None, f"no {kind} event"
    return event


def read_all(sock: zmq.Socket[bytes]) -> list[p.ProtocolMessage]:
    got = []
    while sock.poll(1000):
        got.append(p.decode(sock.recv_multipart()))
    return got


def test_a_client_that_reads_slowly_gets_every_reply_in_order(quiet: Server, ali: Client) -> None:
    # 200 pages of 64 KB: past libzmq's queue and the kernel's buffers, within the outbox
    pages = 200
    assert MAX_WAITING_BYTES > 200 * 64_000 and pages > PEER_QUEUE
    with zmq.Context() as ctx:
        sam = flood(quiet, ctx, pages, size=8)
        sam.send_multipart(p.encode(p.Rename(rid=2 + pages, username="sam2")))
        # a peer's requests are handled in order: once the rename shows, all were answered
        assert next_event(ali, "rename").new == "sam2"
        got = read_all(sam)
        assert [type(m) for m in got] == [p.MessagePage] * pages + [p.Profile]
        assert [m.rid for m in got] == list(range(2, 3 + pages))  # type: ignore[attr-defined]
        sam.send_multipart(p.encode(p.Ping(rid=3 + pages, inbox_seen=0)))
        assert isinstance(p.decode(sam.recv_multipart()), p.Pong)  # its session goes on


def test_a_client_that_does_not_read_costs_bounded_memory_then_its_session(
    quiet: Server, ali: Client
) -> None:
    # 700 pages of 130 KB (91 MB): libzmq's default queue of 1,000 held them all
    pages = 700
    with zmq.Context() as ctx:
        sam = flood(quiet, ctx, pages, size=16)
        # heartbeats are 30 s apart: nothing else ends sam's session
        next_event(ali, "presence", username="sam", online=False)
        got = read_all(sam)
        pages_got = sum(isinstance(m, p.MessagePage) for m in got)
        # what libzmq's queue and the kernel's buffers held; what waited in the outbox
        # (64 MiB at most) was dropped with the session
        assert 0 < pages_got <= 2 * PEER_QUEUE < pages
        sam.send_multipart(p.encode(p.Ping(rid=3 + pages, inbox_seen=0)))
        refused = p.decode(sam.recv_multipart())
        assert isinstance(refused, p.Failure) and refused.code == "not_logged_in"
        hello = p.Hello(rid=4 + pages, version=p.PROTOCOL_VERSION, agent="sam")
        sam.send_multipart(p.encode(hello))  # the server still serves it
        assert isinstance(p.decode(sam.recv_multipart()), p.Welcome)


def test_a_client_that_does_not_read_loses_its_session_though_the_write_fails(
    quiet: Server, ali: Client
) -> None:
    blocker = sqlite3.connect(quiet.data_dir / "imchat.db")
    with zmq.Context() as ctx, contextlib.closing(blocker):
        sam = logged_in(quiet, ctx)
        assert quiet._directory is not None
        quiet._directory.store.db.execute("PRAGMA busy_timeout=50")  # fail fast, not in 5 s
        blocker.execute("BEGIN IMMEDIATE")  # noting when the session ended fails
        ask_pages(sam, 700, size=16)
        # before: the session lived on, its lost replies never to be resent
        next_event(ali, "presence", username="sam", online=False)
        blocker.rollback()


# --- the outbox on a bare ROUTER, its clock given


def _dealer(ctx: zmq.Context[zmq.Socket[bytes]], router: zmq.Socket[bytes], port: int):  # type: ignore[no-untyped-def]
    """A DEALER that reads when told, connected to ``router``, and its routing id there."""
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.setsockopt(zmq.RCVBUF, 4096)
    dealer.setsockopt(zmq.RCVHWM, 1)  # libzmq reads ahead of the application otherwise
    dealer.connect(f"tcp://127.0.0.1:{port}")
    dealer.send(b"hello")
    peer, _ = router.recv_multipart()
    return dealer, peer


@pytest.fixture
def peers() -> Iterator[tuple[zmq.Socket[bytes], list[tuple[zmq.Socket[bytes], bytes]]]]:
    """A ROUTER set up as the server's, and two DEALERs with their routing ids."""
    with zmq.Context() as ctx:
        router = ctx.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        router.setsockopt(zmq.SNDHWM, PEER_QUEUE)
        port = router.bind_to_random_port("tcp://127.0.0.1")
        dealers = [_dealer(ctx, router, port) for _ in range(2)]
        yield router, dealers
        router.close(0)
        for dealer, _ in dealers:
            dealer.close(0)


@pytest.fixture
def pair(peers):  # type: ignore[no-untyped-def]
    """The ROUTER, one DEALER that reads when told, and its routing id."""
    router, [(dealer, peer), _] = peers
    return router, dealer, peer


def fill(outbox: Outbox, peer: bytes, count: int, now: float) -> None:
    for i in range(count):
        outbox.send([peer, i.to_bytes(4, "big") + bytes(65_532)], now)


def settle(outbox: Outbox, now: float) -> None:
    """Flush at ``now`` until the kernel's buffers and libzmq's queue take no more."""
    for _ in range(5):
        time.sleep(0.05)
        outbox.flush(now)


def test_a_peer_that_takes_nothing_for_the_stall_limit_does_not_read(pair) -> None:  # type: ignore[no-untyped-def]
    router, _, peer = pair
    outbox = Outbox(router, max_stall=5.0)
    fill(outbox, peer, 400, now=0.0)  # 26 MB: more than the queue and the kernel hold
    settle(outbox, now=0.0)
    assert outbox and outbox.flush(now=4.0) == []
    assert outbox.flush(now=6.0) == [peer]
    assert not outbox  # what waited is dropped


def test_a_peer_that_reads_in_time_gets_everything_in_order(pair) -> None:  # type: ignore[no-untyped-def]
    router, dealer, peer = pair
    outbox = Outbox(router, max_stall=5.0)
    fill(outbox, peer, 400, now=0.0)
    got: list[int] = []
    clock = 0.0
    while len(got) < 400:
        while dealer.poll(100):
            got.append(int.from_bytes(dealer.recv()[:4], "big"))
        clock += 1.0  # reading on, never 5 s without taking one
        assert outbox.flush(now=clock) == []
    assert got == list(range(400)) and not outbox


def test_a_message_dropped_for_room_ends_the_peer_even_if_the_rest_goes_out(pair) -> None:  # type: ignore[no-untyped-def]
    router, dealer, peer = pair
    outbox = Outbox(router, max_bytes=1 << 20)
    fill(outbox, peer, 400, now=0.0)  # past the queue, the kernel and 1 MiB: some dropped
    while dealer.poll(200):  # the peer reads what reached its queue
        dealer.recv()
    assert outbox.flush(now=0.0) == [peer]  # a message was lost: its session must end
    assert not outbox


def test_past_the_total_the_peer_with_the_most_waiting_is_dropped(peers) -> None:  # type: ignore[no-untyped-def]
    router, [(_, ann), (_, bob)] = peers
    outbox = Outbox(router)
    fill(outbox, ann, 400, now=0.0)  # 26 MB: ~19 MB of it past libzmq and the kernel
    outbox.max_total = 8 << 20  # many peers that do not read hold this much together
    fill(outbox, bob, 150, now=0.0)  # 9.8 MB: his first to wait tip the total over
    assert outbox.flush(now=0.0) == [ann]  # the one holding most, not the last to come
    assert outbox  # bob's still wait for him
