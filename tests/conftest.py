"""Fixtures: a real server on 127.0.0.1 (free ports, a real SQLite file) and clients on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from libimchat import Client, Server
from tests.helpers import signup, start_server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the GUI tests last.

    Tk objects that outlive their window are freed whenever the garbage
    collector runs, on whichever thread triggers it; from a thread other than
    Tk's, each deletion waits a second for a main loop that has ended. A
    client's connection thread stalled that way misses heartbeats and answers
    (a state-machine test timed out in CI), so no other test may run after Tk
    has been used in the process.
    """
    items.sort(key=lambda item: item.path.name.startswith("test_gui"))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    server = start_server(tmp_path / "data")
    yield server
    server.stop()


@pytest.fixture
def connect(server: Server) -> Iterator[Callable[..., Client]]:
    """Make clients of ``server``; all closed at the end of the test."""
    clients: list[Client] = []

    def make(**options: object) -> Client:
        client = Client(server.url, timeout=5.0, **options)  # type: ignore[arg-type]
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def user(connect: Callable[..., Client]) -> Callable[[str], Client]:
    """A logged-in client for a new user of the given name."""

    def make(username: str) -> Client:
        client = connect()
        signup(client, username)
        client.login(username, "pw")
        return client

    return make
