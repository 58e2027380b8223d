"""The server's gatekeeper: a ZAP handler (ZeroMQ RFC 27) run on the server's loop.

libzmq asks it about every new connection to the server's sockets. It admits
only the mechanism the server runs (CURVE, or NULL when insecure) and names
each CURVE peer by its public key (the ``User-Id`` of its messages). Without a
handler libzmq would let any CURVE key in unchecked; with a ZAP domain set and
no handler, nobody at all.

Each socket is guarded under a ZAP domain, and a domain may narrow the gate
with a predicate over the peer's public key. The ROUTER takes any CURVE peer
(strangers must reach it to sign up and log in; who may *chat* is decided by
logging in). The PUB socket takes only the keys the server's logic names, the
keys of live sessions: the predicate is a callable, so this module knows
nothing of sessions. Under NULL there are no keys and no predicate is asked.

A domain may also say whether the server can take one more connection
(capacity.py): a server out of file descriptors would spin in libzmq's
listener, so once it is full every handshake is refused, whoever knocks.

The gate is shut at connection time only: ZAP runs once per handshake, so a
peer admitted earlier stays connected until it disconnects. libzmq (4.3) does
not retry a handshake refused with 400: the refused peer must connect again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import zmq
from zmq.utils import z85

log = logging.getLogger(__name__)

ENDPOINT = "inproc://zeromq.zap.01"  # fixed by RFC 27
REQUESTS = b"libimchat"  # the ROUTER socket's domain
PUBLICATIONS = b"libimchat-pub"  # the PUB socket's domain
_VERSION = b"1.0"
FULL_LOG_INTERVAL = 60.0  # seconds between two warnings that the server is full

Admits = Callable[[bytes], bool]
"""Whether a CURVE public key (Z85, 40 bytes) may connect."""
HasCapacity = Callable[[], bool]
"""Whether the server can take one more connection now."""


class Gatekeeper:
    """Answers ZAP requests; poll :attr:`socket` and call :meth:`answer` when readable."""

    def __init__(self, ctx: zmq.Context[zmq.Socket[bytes]], *, curve: bool) -> None:
        self.mechanism = b"CURVE" if curve else b"NULL"
        self.refused = 0
        self.refused_full = 0
        self._told_full_at = -FULL_LOG_INTERVAL  # when the log last said so
        self._domains: dict[bytes, tuple[Admits | None, HasCapacity | None]] = {}
        self.socket = ctx.socket(zmq.REP)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind(ENDPOINT)

    def guard(
        self,
        sock: zmq.Socket[bytes],
        domain: bytes,
        admits: Admits | None = None,
        has_capacity: HasCapacity | None = None,
    ) -> None:
        """Make libzmq ask this gatekeeper about each connection to ``sock``.

        Args:
            sock: a server socket, before it binds (a listener keeps the
                options it was bound with).
            domain: the ZAP domain of ``sock``; sockets under one domain are
                guarded alike.
            admits: under CURVE, which public keys may connect (``None``: any);
                asked on the server's loop at each handshake.
            has_capacity: whether the server can take one more connection
                (``None``: always); asked once the mechanism is known right,
                before ``admits``, under either mechanism.
        """
        self._domains[domain] = (admits, has_capacity)
        sock.setsockopt(zmq.ZAP_DOMAIN, domain)

    def answer(self) -> None:
        """Answer every pending request (never blocks)."""
        while True:
            try:
                request = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.socket.send_multipart(self._verdict(request))

    def _verdict(self, request: list[bytes]) -> list[bytes]:
        if len(request) < 6 or request[0] != _VERSION:
            log.warning("malformed ZAP request: %r", request[:6])
            request_id = request[1] if len(request) > 1 else b""
            return [_VERSION, request_id, b"500", b"malformed request", b"", b""]
        _, request_id, domain, address, _server_id, mechanism, *credentials = request
        if domain not in self._domains or mechanism != self.mechanism:
            self.refused += 1
            log.info(
                "refused a %s connection from %s",
                mechanism.decode(errors="replace"),
                address.decode(errors="replace"),
            )
            return [_VERSION, request_id, b"400", b"wrong mechanism", b"", b""]
        admits, has_capacity = self._domains[domain]
        if has_capacity is not None and not has_capacity():
            self.refused += 1
            self.refused_full += 1
            self._tell_full()
            return [_VERSION, request_id, b"400", b"server full", b"", b""]
        user_id = z85.encode(credentials[0]) if credentials else b""
        if admits is not None and self.mechanism == b"CURVE" and not admits(user_id):
            self.refused += 1
            # debug only: anyone may knock, and a client whose session just ended may too
            log.debug("refused key %s on %s", user_id.decode(), domain.decode())
            return [_VERSION, request_id, b"400", b"no session", b"", b""]
        return [_VERSION, request_id, b"200", b"OK", user_id, b""]

    def _tell_full(self) -> None:
        """Log refusals of a full server: the first, then once a minute at most."""
        now = time.monotonic()
        if now - self._told_full_at >= FULL_LOG_INTERVAL:
            self._told_full_at = now
            log.warning(
                "the server is full (its open-files limit): turning new connections away"
                " (%d so far)",
                self.refused_full,
            )
