"""Helpers shared by the tests: valid sign-ups and waiting for events with a deadline."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from libimchat import Client, Event, Limits, Server

# quick heartbeats so that a vanished client goes offline within a second
HEARTBEAT = 0.2
LIVENESS = 3
_names = itertools.count(1)


# tests send faster and fail more logins than people do; the limits have their own tests
GENEROUS = Limits(login_failures=1000, message_burst=100_000, messages_per_second=100_000.0)


def start_server(data_dir: Path, port: int = 0, **options: Any) -> Server:
    """A server for tests: quick heartbeats, cheap password hashing, generous limits.

    ``options`` go to :class:`Server` and override those defaults.
    """
    settings: dict[str, Any] = {
        "heartbeat_interval": HEARTBEAT,
        "heartbeat_liveness": LIVENESS,
        "password_profile": "fast",
        "limits": GENEROUS,
    }
    return Server(data_dir, port=port, **(settings | options)).start()


def raw_dealer(
    ctx: zmq.Context[zmq.Socket[bytes]], server: Server, routing_id: bytes | None = None
) -> zmq.Socket[bytes]:
    """A bare DEALER connected to ``server`` (encrypted as a Client would be), for raw frames."""
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    if routing_id is not None:
        sock.setsockopt(zmq.ROUTING_ID, routing_id)
    if server.public_key is not None:
        sock.curve_serverkey = server.public_key
        sock.curve_publickey, sock.curve_secretkey = zmq.curve_keypair()
    sock.connect(f"tcp://{server.host}:{server.port}")
    return sock


def signup(client: Client, username: str | None = None, password: str = "pw") -> str:
    """Sign up a user with valid details; returns the username."""
    username = username or f"user{next(_names)}"
    client.signup(username, password, first_name="First", last_name="Last", phone="0633217608")
    return username


def logged_in(url: str, username: str, timeout: float = 5.0, insecure: bool = False) -> Client:
    """A client of a new user, signed up and logged in (password "pw")."""
    client = Client(url, timeout=timeout, insecure=insecure)
    signup(client, username)
    client.login(username, "pw")
    return client


def wait_for(client: Client, match: Callable[[Event], bool], timeout: float = 5.0) -> Event:
    """The first event that matches, skipping others; fails the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    seen = []
    while (left := deadline - time.monotonic()) > 0:
        event = client.next_event(timeout=left)
        if event is None:
            break
        if match(event):
            return event
        seen.append(event)
    raise AssertionError(f"no matching event within {timeout} s; saw {seen}")


def drain(client: Client, quiet: float = 0.3) -> list[Event]:
    """Every event until none has come for ``quiet`` seconds."""
    events = []
    while (event := client.next_event(timeout=quiet)) is not None:
        events.append(event)
    return events
