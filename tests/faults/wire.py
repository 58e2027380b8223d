"""Raw ZeroMQ sockets on a server, below libimchat's client: for garbage and for stuck readers.

A server URL may carry the server's CurveZMQ key after ``#``; a raw socket
then speaks CURVE with a throwaway keypair of its own, as any client does.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import zmq


def raw_socket(
    ctx: zmq.Context[zmq.Socket[bytes]], kind: int, url: str, port: int = 0
) -> zmq.Socket[bytes]:
    """A socket of ``kind`` connected to the server of ``url`` (on ``port`` if given).

    Args:
        ctx: the context to make it in.
        kind: ``zmq.DEALER``, ``zmq.SUB``...
        url: ``tcp://host:port`` or ``tcp://host:port#server-key``.
        port: another port of the same host (the publication port, say).
    """
    location, _, server_key = url.partition("#")
    parts = urlsplit(location)
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    if server_key:
        public, secret = zmq.curve_keypair()
        sock.setsockopt(zmq.CURVE_SERVERKEY, server_key.encode())
        sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
    sock.connect(f"tcp://{parts.hostname}:{port or parts.port}")
    return sock
