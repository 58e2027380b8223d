"""The server's gatekeeper: a ZAP handler (ZeroMQ RFC 27) run on the server's loop.

libzmq asks it about every new connection to the server's sockets. It admits
only the mechanism the server runs (CURVE, or NULL when insecure) and names
each CURVE peer by its public key (the ``User-Id`` of its messages). Who may
*chat* is decided later, by logging in; this gate keeps out whatever does not
even speak the server's security. Without a handler libzmq would let any CURVE
key in unchecked; with a ZAP domain set and no handler, nobody at all.
"""

from __future__ import annotations

import logging

import zmq
from zmq.utils import z85

log = logging.getLogger(__name__)

ENDPOINT = "inproc://zeromq.zap.01"  # fixed by RFC 27
DOMAIN = b"libimchat"
_VERSION = b"1.0"


class Gatekeeper:
    """Answers ZAP requests; poll :attr:`socket` and call :meth:`answer` when readable."""

    def __init__(self, ctx: zmq.Context[zmq.Socket[bytes]], *, curve: bool) -> None:
        self.mechanism = b"CURVE" if curve else b"NULL"
        self.refused = 0
        self.socket = ctx.socket(zmq.REP)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind(ENDPOINT)

    def guard(self, sock: zmq.Socket[bytes]) -> None:
        """Make libzmq ask this gatekeeper about each connection to ``sock``."""
        sock.setsockopt(zmq.ZAP_DOMAIN, DOMAIN)

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
        if domain != DOMAIN or mechanism != self.mechanism:
            self.refused += 1
            log.info(
                "refused a %s connection from %s",
                mechanism.decode(errors="replace"),
                address.decode(errors="replace"),
            )
            return [_VERSION, request_id, b"400", b"wrong mechanism", b"", b""]
        user_id = z85.encode(credentials[0]) if credentials else b""
        return [_VERSION, request_id, b"200", b"OK", user_id, b""]
