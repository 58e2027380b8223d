"""A TCP proxy for fault injection: it cuts, refuses, freezes and records what it carries.

Tests put it between real clients and a real server. It forwards each of its
listening addresses to a target address, on an asyncio loop of its own thread;
every method is called from the test's thread and returns once it has taken
effect::

    with Proxy.in_front_of(server) as proxy:
        client = Client(proxy.url(server.url))   # both of the client's connections go through it
        proxy.cut()       # every live connection reset at once, mid-stream
        proxy.pause()     # new connections refused...
        proxy.resume()    # ...and accepted again
        proxy.freeze(server.pub_port)   # stop moving bytes on one route, like a stalled reader
        proxy.thaw()
        proxy.captured()  # every byte that went through, both ways
        proxy.refusals()  # connections taken and reset because the target refused
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

Address = tuple[str, int]
T = TypeVar("T")
CHUNK = 65536


class _ServerLike(Protocol):
    port: int
    pub_port: int


@dataclass(eq=False)
class _Route:
    """One listening address and where its connections go."""

    listen: Address
    target: Address
    listener: asyncio.Server | None = None
    flowing: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.flowing.set()


class Proxy:
    """Forwards TCP connections from listening addresses to targets.

    Args:
        routes: ``(listen address, target address)`` pairs.
    """

    def __init__(self, routes: Iterable[tuple[Address, Address]]) -> None:
        self._loop = asyncio.new_event_loop()
        self._routes = [_Route(listen, target) for listen, target in routes]
        # each live connection: its two ends (client side, server side) and its route
        self._connections: dict[tuple[asyncio.StreamWriter, asyncio.StreamWriter], _Route] = {}
        self._captured = bytearray()
        self.refused = 0  # connections reset because the target refused them (loop's side)
        self._thread = threading.Thread(target=self._loop.run_forever, name="proxy", daemon=True)

    @classmethod
    def in_front_of(cls, server: _ServerLike, host: str = "127.0.0.2") -> Proxy:
        """A proxy on ``host`` with the server's two port numbers, forwarding to 127.0.0.1.

        A client given :meth:`url` then reaches both the request port and the
        publication port (learnt from the server's Welcome) through the proxy.
        """
        ports = (server.port, server.pub_port)
        return cls(((host, port), ("127.0.0.1", port)) for port in ports)

    def url(self, server_url: str) -> str:
        """The server's URL, pointed at this proxy (any ``#key`` suffix is kept)."""
        listen, target = self._routes[0].listen, self._routes[0].target
        return server_url.replace(f"{target[0]}:{target[1]}", f"{listen[0]}:{listen[1]}")

    # --- life cycle

    def start(self) -> Proxy:
        self._thread.start()
        self.resume()
        return self

    def close(self) -> None:
        """Refuse new connections, reset the live ones and stop the thread."""
        self._call(self._shut_down())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def __enter__(self) -> Proxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- faults

    def cut(self, port: int | None = None) -> int:
        """Reset live connections at once, both sides, mid-stream; returns how many.

        Args:
            port: only those of the route listening on this port.
        """
        return self._call(self._cut(port))

    def pause(self) -> None:
        """Stop listening: new connections are refused. Live ones go on."""
        self._call(self._stop_listening())

    def resume(self) -> None:
        """Listen again on the same addresses."""
        self._call(self._listen())

    def freeze(self, port: int | None = None) -> None:
        """Stop moving bytes on the route listening on ``port`` (on every route if ``None``).

        Connections stay open and bytes pile up in the kernel's buffers, then in
        the sender's queues, as they do in front of a reader that has stopped reading.
        """
        self._call(self._set_flowing(port, flowing=False))

    def thaw(self, port: int | None = None) -> None:
        """Move bytes again on the route listening on ``port`` (on every route if ``None``)."""
        self._call(self._set_flowing(port, flowing=True))

    def captured(self) -> bytes:
        """Every byte that went through so far, both ways, in the order it was forwarded."""
        return self._call(self._snapshot())

    def refusals(self) -> int:
        """How many connections the proxy took and reset because their target refused them."""
        return self._call(self._refusals())

    def connections(self, port: int | None = None) -> int:
        """How many connections of the route listening on ``port`` (of all routes) are live."""
        return self._call(self._count(port))

    # --- the loop's side

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    async def _listen(self) -> None:
        for route in self._routes:
            if route.listener is None:
                route.listener = await asyncio.start_server(
                    lambda reader, writer, route=route: self._forward(route, reader, writer),
                    *route.listen,
                )

    async def _stop_listening(self) -> None:
        for route in self._routes:
            if route.listener is not None:
                route.listener.close()  # closes the listening socket; connections go on
                route.listener = None

    def _chosen(self, port: int | None) -> list[_Route]:
        chosen = [route for route in self._routes if port in (None, route.listen[1])]
        assert chosen, f"the proxy listens on no port {port}"
        return chosen

    async def _shut_down(self) -> None:
        await self._stop_listening()
        await self._cut(None)
        await self._set_flowing(None, flowing=True)  # frozen pumps wake up and find the reset
        forwarding = asyncio.all_tasks() - {asyncio.current_task()}
        if forwarding:
            await asyncio.wait(forwarding, timeout=5)

    async def _cut(self, port: int | None) -> int:
        routes = self._chosen(port)
        cut = [pair for pair, route in self._connections.items() if route in routes]
        for pair in cut:
            del self._connections[pair]
            for writer in pair:
                _reset(writer)
        return len(cut)

    async def _set_flowing(self, port: int | None, *, flowing: bool) -> None:
        for route in self._chosen(port):
            if flowing:
                route.flowing.set()
            else:
                route.flowing.clear()

    async def _snapshot(self) -> bytes:
        return bytes(self._captured)

    async def _refusals(self) -> int:
        return self.refused

    async def _count(self, port: int | None) -> int:
        routes = self._chosen(port)
        return sum(route in routes for route in self._connections.values())

    async def _forward(
        self, route: _Route, client: asyncio.StreamReader, to_client: asyncio.StreamWriter
    ) -> None:
        try:
            server, to_server = await asyncio.open_connection(*route.target)
        except OSError:
            _reset(to_client)  # the target refused: so does the proxy
            self.refused += 1
            return
        pair = (to_client, to_server)
        self._connections[pair] = route
        try:
            await asyncio.gather(
                self._pump(route, client, to_server), self._pump(route, server, to_client)
            )
        finally:
            self._connections.pop(pair, None)
            for writer in pair:
                writer.close()

    async def _pump(
        self, route: _Route, source: asyncio.StreamReader, sink: asyncio.StreamWriter
    ) -> None:
        """Copy one direction until either side closes (a reset ends both directions)."""
        try:
            while True:
                await route.flowing.wait()
                data = await source.read(CHUNK)
                if not data:
                    break
                await route.flowing.wait()  # frozen while the read was pending
                if sink.is_closing():
                    break  # cut meanwhile: what was read is lost with the connection
                self._captured += data
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            sink.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close a connection abruptly: an RST, not a FIN, and nothing more is sent."""
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(OSError):  # closed already: nothing left to reset
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
