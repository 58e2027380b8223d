"""Raw ZeroMQ sockets on a server, below libimchat's client: for garbage and for stuck readers.

A server URL may carry the server's CurveZMQ key after ``#``; a raw socket
then speaks CURVE, with a throwaway keypair of its own unless given one.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import zmq

Context = zmq.Context[zmq.Socket[bytes]]


def raw_socket(ctx: Context, kind: int, url: str, port: int = 0) -> zmq.Socket[bytes]:
    """A socket of ``kind`` connected to the server of ``url`` (on ``port`` if given)."""
    sock = secured_socket(ctx, kind, url)
    sock.connect(endpoint(url, port))
    return sock


def secured_socket(
    ctx: Context, kind: int, url: str, keypair: tuple[bytes, bytes] | None = None
) -> zmq.Socket[bytes]:
    """A socket of ``kind`` set up to speak to the server of ``url``, not connected yet.

    Args:
        ctx: the context to make it in.
        kind: ``zmq.DEALER``, ``zmq.SUB``...
        url: ``tcp://host:port`` or ``tcp://host:port#server-key``.
        keypair: the socket's CURVE keys (public, secret), for a server that
            has to know them; a new pair by default.
    """
    server_key = url.partition("#")[2]
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    if server_key:
        public, secret = keypair or zmq.curve_keypair()
        sock.setsockopt(zmq.CURVE_SERVERKEY, server_key.encode())
        sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
    return sock


def endpoint(url: str, port: int = 0) -> str:
    """The server's ZeroMQ endpoint, on another of its ports if given."""
    parts = urlsplit(url.partition("#")[0])
    return f"tcp://{parts.hostname}:{port or parts.port}"
