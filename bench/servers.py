"""The servers under test, each in its own process: ours (libimchat.Server) and the relay.

Both run in a spawned process so that their CPU and memory can be read by pid,
apart from the load. ``stop()`` asks politely and then kills; a stopped server
can be started again on the same ports (the restart of the reconnect storm).
The IRC daemon has its own launcher in bench/irc.py.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import signal
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from . import relay
from .procs import SPAWN, BenchError
from .seed import seed_users

HOST = "127.0.0.1"
START_TIMEOUT = 60.0  # loading a 10^7-message database takes a while


def _serve_ours(conn: Any, data_dir: str, options: dict[str, Any]) -> None:
    from libimchat import Server
    from libimchat.limits import Limits

    logging.basicConfig(level=logging.WARNING)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # the load generators send as fast as they can: flood limits would measure themselves
    options.setdefault("limits", Limits.unlimited())
    server = Server(data_dir, host=HOST, **options).start()
    conn.send((server.port, server.pub_port, server.url))
    try:
        while not stop.is_set() and not conn.poll(0.2):
            pass
    finally:
        server.stop()


def _limited(open_files: int | None, target: Any, *args: Any) -> None:
    """Run a server's ``target`` in a process whose open-files limit is ``open_files``."""
    if open_files is not None:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, hard))
    target(*args)


class _Process:
    kind = "server"
    open_files: int | None = None  # the process's open-files limit; None: the machine's

    def __init__(self) -> None:
        self.proc: Any = None
        self.conn: Any = None
        self.port = 0
        self.pub_port = 0
        self.url = ""  # what a client needs: tcp://host:port (with #key for ours)

    @property
    def pid(self) -> int:
        return int(self.proc.pid)

    def _launch(self, target: Any, args: tuple[Any, ...]) -> None:
        mine, theirs = SPAWN.Pipe()
        self.proc = SPAWN.Process(
            target=_limited, args=(self.open_files, target, theirs, *args), daemon=True
        )
        self.proc.start()
        theirs.close()
        self.conn = mine
        if not mine.poll(START_TIMEOUT):
            self.stop()
            raise BenchError(f"{self.kind} did not start within {START_TIMEOUT:g} s")
        try:
            self.port, self.pub_port, *url = mine.recv()
            self.url = url[0] if url else f"tcp://{HOST}:{self.port}"
        except EOFError:
            self.stop()
            raise BenchError(f"{self.kind} died while starting") from None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process (and wait for it); safe to call twice."""
        if self.proc is None:
            return
        with contextlib.suppress(BrokenPipeError, OSError):
            self.conn.send("stop")
        self.proc.join(timeout)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(3.0)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(3.0)
        self.conn.close()
        self.proc = None

    def __enter__(self) -> Any:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class OurServer(_Process):
    """libimchat's server on a data dir (seeded beforehand by bench/seed.py).

    Args:
        data_dir: the folder of the database.
        options: keyword arguments for :class:`libimchat.Server` (profile, heartbeat...).
    """

    kind = "libimchat server"

    def __init__(self, data_dir: Path, **options: Any) -> None:
        super().__init__()
        self.data_dir = data_dir
        self.options = options

    def start(self, port: int = 0, pub_port: int = 0) -> OurServer:
        options = dict(self.options, port=port or self.port, pub_port=pub_port or self.pub_port)
        if not options["port"]:
            options.pop("pub_port")  # port 0 picks both
        self._launch(_serve_ours, (str(self.data_dir), options))
        return self


class Relay(_Process):
    """The raw pyzmq relay of bench/relay.py."""

    kind = "raw pyzmq relay"

    def start(self, port: int = 0, pub_port: int = 0) -> Relay:
        self._launch(relay.serve, (HOST, port or self.port, pub_port or self.pub_port))
        return self


def launch(
    side: str,
    data_dir: Path,
    *,
    users: int = 0,
    room: str | None = None,
    open_files: int | None = None,
    **options: Any,
) -> Any:
    """Seed (for ours) and start the server of one side: ``"ours"`` or ``"relay"``.

    Args:
        side: which server.
        data_dir: a fresh folder for our server's database.
        users: users to seed, each with a resume token (see bench/seed.py).
        room: a room to seed with every user in it.
        open_files: the server process's open-files limit (``ulimit -n``).
        options: for :class:`libimchat.Server`.
    """
    server: _Process
    if side == "ours":
        seed_users(data_dir, users, profile=options.get("password_profile", "fast"), room=room)
        options.setdefault("password_profile", "fast")
        server = OurServer(data_dir, **options)
    elif side == "relay":
        server = Relay()
    else:
        raise ValueError(f"unknown side {side!r}")
    server.open_files = open_files
    return server.start()
