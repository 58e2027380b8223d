"""The chat domain's records, as applications see them.

They are plain frozen values: the protocol carries them on the wire, the
clients hand them to applications, and nothing in them refers to a socket or a
database row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

EventKind = Literal[
    "message", "room_message", "presence", "rename", "room_created", "invite", "connection"
]


@dataclass(frozen=True, kw_only=True, slots=True)
class User:
    """A registered account.

    ``id`` never changes; ``username`` does on a rename.
    """

    id: int
    username: str
    first_name: str
    last_name: str
    online: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class Room:
    """A named room.

    ``last_seq`` is the sequence number of its newest message (0 when empty);
    ``joined`` tells whether the user who asked is a member.
    """

    name: str
    created_by: str
    members: int
    joined: bool
    last_seq: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Message:
    """A stored message: a direct message (``recipient`` set) or a room message (``room`` set).

    ``seq`` orders the messages of one room (1, 2, 3... with no gaps) and, for a
    direct message, the recipient's inbox. ``client_id`` is the sender's
    idempotency key. Names are the users' names when the message was read.
    """

    id: int
    seq: int
    sender: str
    recipient: str | None
    room: str | None
    body: str
    sent_at: float
    client_id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Event:
    """Something that happened, pushed by the server.

    ``kind`` says which of the other fields are set:

    - ``"message"``: a direct message, ``message``: one sent to you, or one you
      sent from another client logged in as you (then ``message.sender`` is you).
    - ``"room_message"``: ``message`` (with ``message.room``) and ``room``.
    - ``"presence"``: ``username`` went ``online`` or offline.
    - ``"rename"``: a user renamed from ``old`` to ``new``.
    - ``"room_created"``: ``room`` exists now.
    - ``"invite"``: ``sender`` invites you to ``room``.
    - ``"connection"``: this client lost (``online=False``) or regained
      (``online=True``) its session with the server. If the server no longer
      knows the session (its token expired or was revoked), the client is
      logged out (``client.user`` is ``None``) and no ``online=True`` follows:
      log in again.
    """

    kind: EventKind
    message: Message | None = None
    username: str | None = None
    online: bool | None = None
    old: str | None = None
    new: str | None = None
    room: str | None = None
    sender: str | None = None
