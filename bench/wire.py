"""The load generators' side of the wire: raw pyzmq sockets speaking to our server or the relay.

A simulated user is a DEALER (and a SUB when it listens to rooms), not a
:class:`libimchat.Client` with its thread: a load process holds hundreds or
thousands of them. Requests are built with :func:`libimchat.protocol.encode`
and carry client ids from :func:`libimchat.new_client_id`, so the server sees
exactly what a client sends. Hot-path frames are read with
``msgpack.unpackb``, the protocol's own format, rather than
:func:`libimchat.protocol.decode`: decode builds dataclasses at ~6 us a frame
against ~0.8 us, which would make the generator, not the server, the limit
against the relay.

Two flavours share one shape, so that a scenario runs the same loop against
both: :class:`OursWire` (our protocol, log in with ``Resume``) and
:class:`RelayWire` (bench/relay.py: routing id = user name, empty-frame acks).
Message bodies start with the send time (``time.monotonic_ns()``, one clock
for every process of the machine), so that latency is measured from inside
the message, at its recipient.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, NamedTuple

import msgpack
import zmq

from libimchat import new_client_id
from libimchat import protocol as p

from .seed import token, username

ACK, MESSAGE, FAILURE, LOGGED_IN, OTHER = "ack", "message", "failure", "logged_in", "other"
PAD = "x" * 64  # bodies of ~85 bytes, the size of a chat line
DRAIN = 256


def stamped_body() -> str:
    return f"{time.monotonic_ns()} {PAD}"


def sent_at(body: str) -> float:
    """The send time (monotonic seconds) written at the start of a body."""
    return int(body[: body.index(" ")]) / 1e9


class CurveKeys(NamedTuple):
    server: bytes
    public: bytes
    secret: bytes

    def secure(self, sock: zmq.Socket[bytes]) -> None:
        sock.curve_serverkey = self.server
        sock.curve_publickey = self.public
        sock.curve_secretkey = self.secret


class Sim:
    """One simulated user: its sockets and its counters."""

    __slots__ = ("dealer", "index", "inflight", "keys", "logged_in", "name", "rid", "sub")

    def __init__(
        self, index: int, dealer: zmq.Socket[bytes], keys: CurveKeys | None = None
    ) -> None:
        self.index = index
        self.name = username(index)
        self.dealer = dealer
        self.keys = keys  # CurveZMQ: the server's public key and this user's keypair
        self.sub: zmq.Socket[bytes] | None = None
        self.rid = 0
        self.inflight = 0
        self.logged_in = False

    def next_rid(self) -> int:
        self.rid += 1
        return self.rid


# a reply's first key is its type: {"t": "Sent", ...} packs as a map header, then these bytes
_SENT = msgpack.packb("t") + msgpack.packb("Sent")


class OursWire:
    """Our protocol (libimchat.protocol)."""

    name = "ours"

    def open(self, ctx: zmq.Context[Any], url: str, index: int, tag: str = "") -> Sim:
        """A DEALER to ``tcp://host:port#key``, encrypted as a libimchat client's is."""
        location, _, server_key = url.partition("#")
        keys = CurveKeys(server_key.encode(), *zmq.curve_keypair()) if server_key else None
        dealer = ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        if keys is not None:
            keys.secure(dealer)
        dealer.connect(location)
        return Sim(index, dealer, keys)

    def login(self, sim: Sim) -> list[bytes]:
        key = sim.keys.public.decode() if sim.keys else ""
        return p.encode(p.Resume(rid=sim.next_rid(), token=token(sim.index), subscriber_key=key))

    def direct(self, sim: Sim, to: str, body: str) -> list[bytes]:
        rid = sim.next_rid()
        return p.encode(p.SendDirect(rid=rid, to=to, body=body, client_id=new_client_id()))

    def room(self, sim: Sim, room: str, body: str) -> list[bytes]:
        rid = sim.next_rid()
        return p.encode(p.SendRoom(rid=rid, room=room, body=body, client_id=new_client_id()))

    def ping(self, sim: Sim) -> list[bytes]:
        return p.encode(p.Ping(rid=sim.next_rid(), inbox_seen=0))

    def read(self, frames: list[bytes]) -> tuple[str, Any]:
        """What a DEALER frame is: (ACK, None), (MESSAGE, body), (FAILURE, code)...

        A Pong is (ACK, the heartbeat interval it tells), a SessionStarted
        (LOGGED_IN, the same).
        """
        if frames[-1].startswith(_SENT, 1):  # the ack, told without decoding the message it carries
            return ACK, None
        msg = msgpack.unpackb(frames[-1])
        kind = msg["t"]
        if kind == "Pong":
            return ACK, msg.get("heartbeat_interval")
        if kind == "Delivery":
            return MESSAGE, msg["message"]["body"]
        if kind == "SessionStarted":
            return LOGGED_IN, msg.get("heartbeat_interval")
        if kind == "Failure":
            return FAILURE, msg["code"]
        return OTHER, kind

    def read_published(self, frames: list[bytes]) -> str | None:
        msg = msgpack.unpackb(frames[-1])
        return msg["message"]["body"] if msg["t"] == "RoomPost" else None


class RelayWire:
    """bench/relay.py's framing around the same payloads."""

    name = "relay"

    def open(self, ctx: zmq.Context[Any], url: str, index: int, tag: str = "") -> Sim:
        """A DEALER whose routing id is the user's name (plus ``tag``, for a reconnection:
        the relay's ROUTER refuses an id it still holds)."""
        dealer = ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.setsockopt(zmq.ROUTING_ID, (username(index) + tag).encode())
        dealer.connect(url)
        return Sim(index, dealer)

    def login(self, sim: Sim) -> list[bytes]:
        return [b"", b"hello"]

    def direct(self, sim: Sim, to: str, body: str) -> list[bytes]:
        rid = sim.next_rid()
        return [
            to.encode(),
            *p.encode(p.SendDirect(rid=rid, to=to, body=body, client_id=new_client_id())),
        ]

    def room(self, sim: Sim, room: str, body: str) -> list[bytes]:
        rid = sim.next_rid()
        payload = p.encode(p.SendRoom(rid=rid, room=room, body=body, client_id=new_client_id()))
        return [p.room_topic(room), *payload]

    def ping(self, sim: Sim) -> list[bytes]:
        return [b"", *p.encode(p.Ping(rid=sim.next_rid(), inbox_seen=0))]

    def read(self, frames: list[bytes]) -> tuple[str, Any]:
        if not frames[-1]:
            return ACK, None
        return MESSAGE, msgpack.unpackb(frames[-1])["body"]

    def read_published(self, frames: list[bytes]) -> str | None:
        return str(msgpack.unpackb(frames[-1])["body"])


WIRES = {"ours": OursWire, "relay": RelayWire}


def subscribe(ctx: zmq.Context[Any], sim: Sim, pub_url: str, topics: Iterable[bytes]) -> None:
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    if sim.keys is not None:
        sim.keys.secure(sub)  # admitted once the user's session has started
    sub.setsockopt(zmq.RCVHWM, 100_000)  # the receiving side is not where drops should happen
    for topic in topics:
        sub.setsockopt(zmq.SUBSCRIBE, topic)
    sub.connect(pub_url)
    sim.sub = sub


def log_in_all(wire: Any, sims: list[Sim], timeout: float) -> None:
    """Log every sim in (all requests first, then the answers), within ``timeout``.

    With the relay, the answer only proves the connection is known to it.

    Raises:
        RuntimeError: a login failed or did not finish in time.
    """
    for sim in sims:
        sim.dealer.send_multipart(wire.login(sim))
    poller = zmq.Poller()
    for sim in sims:
        poller.register(sim.dealer, zmq.POLLIN)
    by_socket = {sim.dealer: sim for sim in sims}
    left = len(sims)
    deadline = time.monotonic() + timeout
    while left:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{left} of {len(sims)} logins unanswered after {timeout:g} s")
        for sock, _ in poller.poll(200):
            sim = by_socket[sock]
            for _ in range(DRAIN):
                try:
                    frames = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                kind, detail = wire.read(frames)
                if kind == FAILURE:
                    raise RuntimeError(f"login of {sim.name} failed: {detail}")
                if kind in (LOGGED_IN, ACK) and not sim.logged_in:
                    sim.logged_in = True
                    left -= 1
                    poller.unregister(sock)
                    break


def close_all(sims: Iterable[Sim]) -> None:
    for sim in sims:
        sim.dealer.close(0)
        if sim.sub is not None:
            sim.sub.close(0)
