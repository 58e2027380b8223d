"""A crowd of logged-in clients in a process of its own, for the reconnect storm.

``python -m tests.faults.crowd URL LIVENESS NAME...`` signs up and logs in each
NAME (password "pw") with a real :class:`~libimchat.Client` of that heartbeat
liveness (0: the server's), prints ``ready``, and
keeps them, reading and dropping their events as an application would, until
its stdin closes; then it closes them.

Why processes: every client has a connection thread, and a few hundred of them
in one Python process spend their time fighting over its GIL, miss their own
heartbeats and reconnect again and again: the test would measure itself.
Users on separate machines share no GIL; a few processes are the nearest
honest stand-in on a small machine.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from libimchat import Client
from tests.faults.servers import ROOT
from tests.helpers import signup


class Crowd:
    """Clients of ``names``, logged in to ``url`` by a process of their own.

    Args:
        url: the server.
        names: the users, signed up and logged in by the process.
        heartbeat_liveness: the clients' (``Client(heartbeat_liveness=...)``); 0: the server's.
    """

    def __init__(self, url: str, names: list[str], heartbeat_liveness: int = 0) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.crowd", url, str(heartbeat_liveness), *names],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def wait_ready(self) -> None:
        """Return once every client is logged in."""
        assert self._process.stdout is not None
        said = self._process.stdout.readline()
        assert said == "ready\n", f"the crowd did not log in (it said {said!r})"

    def close(self) -> None:
        """Log every client out and end the process."""
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.close()
        try:
            self._process.wait(30)
        finally:
            self._process.kill()
            self._process.stdout.close()


def main(url: str, liveness: str, *names: str) -> None:
    def log_in(name: str) -> Client:
        client = Client(url, timeout=30.0, heartbeat_liveness=int(liveness) or None)
        client.login(signup(client, name), "pw")
        return client

    with ThreadPoolExecutor(8) as pool:
        clients = list(pool.map(log_in, names))
    done = threading.Event()
    threading.Thread(target=_drop_events, args=(clients, done), daemon=True).start()
    print("ready", flush=True)
    sys.stdin.read()
    done.set()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(Client.close, clients))


def _drop_events(clients: list[Client], done: threading.Event) -> None:
    """Empty the clients' event queues now and then, as their applications would."""
    while not done.is_set():
        for client in clients:
            while client.next_event(timeout=0) is not None:
                pass
        time.sleep(0.1)


if __name__ == "__main__":
    main(*sys.argv[1:])
