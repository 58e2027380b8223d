"""libimchat: a chat library on ZeroMQ and SQLite.

Run a :class:`Server`, connect with a :class:`Client` (or an
:class:`AsyncClient`), and every failure the server reports is a
:class:`ChatError` with a stable ``.code``; ``Server(limits=Limits(...))`` sets
how much one client may ask. :func:`name_key` is how the server
compares user and room names, for front ends that must do the same, and
:func:`new_client_id` makes the idempotency key of a message to send.
"""

from __future__ import annotations

from .aio import AsyncClient
from .client import Client
from .client_ids import new_client_id
from .errors import ChatError, ChatTimeout, ProtocolError
from .limits import Limits
from .models import Event, EventKind, Message, Room, User
from .server import Server, default_data_dir
from .validation import name_key

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "ChatError",
    "ChatTimeout",
    "Client",
    "Event",
    "EventKind",
    "Limits",
    "Message",
    "ProtocolError",
    "Room",
    "Server",
    "User",
    "default_data_dir",
    "name_key",
    "new_client_id",
]
