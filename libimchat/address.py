"""Where a server is and how to know it: ``tcp://host:port#<server public key>``.

A server URL carries the server's CurveZMQ public key after ``#`` (Server.url
and ``imchat serve`` give it so), so one string is all a client needs. Without
a key in the URL, the client takes the one passed as ``server_key``, or else
the key of a server on this machine using the default data dir. Plain text is
only ever spoken when asked for (``insecure=True``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .errors import ChatError
from .keys import check_key, default_data_dir, local_server_key


@dataclass(frozen=True)
class Address:
    """A server's host, port and public key (``None``: plain text, insecure)."""

    host: str
    port: int
    server_key: bytes | None

    def endpoint(self, port: int | None = None) -> str:
        return tcp_endpoint(self.host, port or self.port)


def server_url(host: str, port: int, server_key: bytes | None) -> str:
    """The one string a client needs: ``tcp://host:port#key`` (no ``#key`` when insecure)."""
    return tcp_endpoint(host, port) + (f"#{server_key.decode()}" if server_key else "")


def tcp_endpoint(host: str, port: int | str) -> str:
    """``tcp://host:port`` for libzmq, an IPv6 address in brackets (``tcp://[::1]:5555``)."""
    return f"tcp://[{host}]:{port}" if is_ipv6(host) else f"tcp://{host}:{port}"


def is_ipv6(host: str) -> bool:
    """Whether a host is an IPv6 address (a socket must then be told ``zmq.IPV6``)."""
    return ":" in host


def parse_url(
    url: str,
    *,
    server_key: str | bytes | None = None,
    insecure: bool = False,
    data_dir: Path | None = None,
) -> Address:
    """Resolve a URL (and the key options) into an :class:`Address`.

    Raises:
        ChatError: ``invalid`` for a malformed URL or key, or a key with
            ``insecure``; ``handshake_failed`` when no key is found anywhere.
    """
    location, _, url_key = url.partition("#")
    malformed = ChatError("invalid", f"a server URL looks like tcp://host:port[#key], not {url!r}")
    try:
        parts = urlsplit(location)
        port = parts.port
    except ValueError:  # a bad port, or an unclosed bracket of an IPv6 address
        raise malformed from None
    if parts.scheme != "tcp" or not parts.hostname or not port or parts.path or parts.query:
        raise malformed
    given = server_key or url_key or None
    if insecure:
        if given:
            raise ChatError("invalid", "a server key and insecure=True contradict each other")
        return Address(parts.hostname, port, None)
    key = check_key(given) if given else local_server_key(data_dir)
    if key is None:
        raise ChatError(
            "handshake_failed",
            f"no key for the server at {location}: use the URL `imchat serve` printed"
            f" (tcp://host:port#key) or pass its key (server_key=..., --server-key); no local"
            f" server's key is in {data_dir or default_data_dir()}. Only for a server run with"
            " --insecure: insecure=True (--insecure).",
        )
    return Address(parts.hostname, port, key)
