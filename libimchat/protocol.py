"""The libimchat wire protocol, sans-IO: values in, frames out, and back.

Nothing here touches a socket. ``encode(msg)`` turns a protocol message into
ZeroMQ frames and ``decode(frames)`` turns frames into a message, raising
:class:`~libimchat.errors.ProtocolError` (and nothing else) for anything that
is not a valid message. docs/PROTOCOL.md describes the same format for people
writing a client in another language.

Every message is one MessagePack map in one frame, ``{"t": <type>, ...fields}``.
Requests carry a client-chosen ``rid`` that the reply repeats. Messages the
server publishes on its PUB socket are sent as two frames, ``[topic, body]``,
so that subscribers filter by room in libzmq, not in Python.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from dataclasses import dataclass
from types import UnionType
from typing import Any, Union

import msgpack

from .errors import ProtocolError
from .models import Message, Room, User
from .validation import name_key

PROTOCOL_VERSION = 1
GLOBAL_TOPIC = b"all\x00"
_ROOM_TOPIC_PREFIX = b"room:"
_INT64 = (-(2**63), 2**63 - 1)


def room_topic(room: str) -> bytes:
    """The PUB topic of a room's channel: its name key, so any spelling of the name finds it.

    The NUL ends the topic, so that room "a" does not match room "ab".
    """
    return _ROOM_TOPIC_PREFIX + name_key(room).encode() + b"\x00"


@dataclass(frozen=True, kw_only=True, slots=True)
class RoomMark:
    """A room and the sequence number of its newest message."""

    room: str
    seq: int


# --- requests: client -> server, each answered by exactly one reply with its rid


@dataclass(frozen=True, kw_only=True, slots=True)
class Hello:
    rid: int
    version: int
    agent: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Signup:
    rid: int
    username: str
    password: str
    first_name: str
    last_name: str
    phone: str
    key: str = ""  # idempotency key: a resend with the same key gets the first answer


@dataclass(frozen=True, kw_only=True, slots=True)
class Login:
    rid: int
    username: str
    password: str
    # the CURVE public key (Z85) this client's SUB socket presents: the PUB socket
    # admits only the keys of live sessions. Not a secret; "" when insecure
    subscriber_key: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class Resume:
    rid: int
    token: str
    subscriber_key: str = ""  # as for Login


@dataclass(frozen=True, kw_only=True, slots=True)
class Logout:
    rid: int
    inbox_seen: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class Ping:
    rid: int
    inbox_seen: int


@dataclass(frozen=True, kw_only=True, slots=True)
class ListUsers:
    rid: int
    after: str = ""  # from the first user whose name sorts after this one ("": from the first)


@dataclass(frozen=True, kw_only=True, slots=True)
class SendDirect:
    rid: int
    to: str
    body: str
    client_id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class SendRoom:
    rid: int
    room: str
    body: str
    client_id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class History:
    rid: int
    peer: str
    limit: int
    before: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class RoomHistory:
    rid: int
    room: str
    limit: int
    before: int | None = None
    after_seq: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Inbox:
    rid: int
    after: int
    limit: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Events:
    """The server-wide events (presence, renames, new rooms) after sequence number ``after``."""

    rid: int
    after: int


@dataclass(frozen=True, kw_only=True, slots=True)
class CreateRoom:
    rid: int
    room: str
    key: str = ""  # idempotency key: a resend with the same key gets the first answer


@dataclass(frozen=True, kw_only=True, slots=True)
class ListRooms:
    rid: int
    after: str = ""  # from the first room whose name sorts after this one ("": from the first)


@dataclass(frozen=True, kw_only=True, slots=True)
class Join:
    rid: int
    room: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Leave:
    rid: int
    room: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Invite:
    rid: int
    room: str
    username: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Rename:
    rid: int
    username: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Block:
    rid: int
    username: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Unblock:
    rid: int
    username: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ListBlocked:
    rid: int


Request = Union[
    Hello, Signup, Login, Resume, Logout, Ping, ListUsers, SendDirect, SendRoom, History,
    RoomHistory, Inbox, Events, CreateRoom, ListRooms, Join, Leave, Invite, Rename, Block,
    Unblock, ListBlocked,
]  # fmt: skip

# --- replies: server -> one client, carrying the rid of the request they answer


@dataclass(frozen=True, kw_only=True, slots=True)
class Welcome:
    rid: int
    version: int
    pub_port: int
    heartbeat_interval: float
    heartbeat_liveness: int


@dataclass(frozen=True, kw_only=True, slots=True)
class SessionStarted:
    rid: int
    user: User
    token: str
    epoch: str
    inbox_acked: int
    inbox_head: int
    rooms: tuple[RoomMark, ...]
    blocked: tuple[str, ...]
    events_seq: int
    # the heartbeat interval from now on; None (from an older server): Welcome's
    heartbeat_interval: float | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Pong:
    rid: int
    inbox_head: int
    rooms: tuple[RoomMark, ...]
    events_seq: int
    heartbeat_interval: float | None = None  # as in SessionStarted


@dataclass(frozen=True, kw_only=True, slots=True)
class Done:
    rid: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Profile:
    """Your account as it is now (the answer to Rename)."""

    rid: int
    user: User


@dataclass(frozen=True, kw_only=True, slots=True)
class UserList:
    rid: int
    users: tuple[User, ...]
    more: bool = False  # more users follow: ask again with after= the last one's name


@dataclass(frozen=True, kw_only=True, slots=True)
class Sent:
    rid: int
    message: Message


@dataclass(frozen=True, kw_only=True, slots=True)
class MessagePage:
    rid: int
    messages: tuple[Message, ...]
    # the page was cut short to fit in a frame: ask again from its last message
    more: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class EventPage:
    """The events asked for, oldest first; ``complete`` is false when older ones were forgotten."""

    rid: int
    events: tuple[ServerEvent, ...]
    complete: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class RoomReply:
    rid: int
    room: Room


@dataclass(frozen=True, kw_only=True, slots=True)
class RoomList:
    rid: int
    rooms: tuple[Room, ...]
    more: bool = False  # more rooms follow: ask again with after= the last one's name


@dataclass(frozen=True, kw_only=True, slots=True)
class NameList:
    rid: int
    names: tuple[str, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class Failure:
    rid: int
    code: str
    message: str
    retry_after: float = 0.0  # rate_limited, server_full: seconds before a retry can succeed


Reply = Union[
    Welcome, SessionStarted, Pong, Done, Profile, UserList, Sent, MessagePage, EventPage, RoomReply,
    RoomList, NameList, Failure,
]  # fmt: skip

# --- events: pushed by the server without a request


@dataclass(frozen=True, kw_only=True, slots=True)
class Delivery:
    """A direct message, sent to each session of its recipient (and the sender's others)."""

    message: Message


@dataclass(frozen=True, kw_only=True, slots=True)
class Invited:
    room: str
    sender: str


@dataclass(frozen=True, kw_only=True, slots=True)
class AccountState:
    """Your blocks and rooms changed on another of your clients: here they are now."""

    blocked: tuple[str, ...]
    rooms: tuple[RoomMark, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class RoomPost:
    """A room message, published on the room's topic."""

    message: Message


@dataclass(frozen=True, kw_only=True, slots=True)
class PresenceChanged:
    seq: int
    username: str
    online: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class Renamed:
    seq: int
    old: str
    new: str


@dataclass(frozen=True, kw_only=True, slots=True)
class RoomCreated:
    seq: int
    room: str
    created_by: str


Push = Union[Delivery, Invited, AccountState, RoomPost, PresenceChanged, Renamed, RoomCreated]
ServerEvent = Union[PresenceChanged, Renamed, RoomCreated]
Publication = Union[RoomPost, ServerEvent]
ProtocolMessage = Union[Request, Reply, Push]

MESSAGE_TYPES: tuple[type, ...] = (
    *typing.get_args(Request), *typing.get_args(Reply), *typing.get_args(Push),
)  # fmt: skip
_BY_NAME: dict[str, type] = {cls.__name__: cls for cls in MESSAGE_TYPES}


def encode(msg: ProtocolMessage) -> list[bytes]:
    """Frames for a message sent between a DEALER and the ROUTER.

    Published messages get their topic too (see :func:`publication`).
    """
    return [msgpack.packb(_to_wire(msg), use_bin_type=True)]


def publication(msg: Publication) -> list[bytes]:
    """``[topic, body]`` frames for a message sent on the PUB socket."""
    if isinstance(msg, RoomPost):
        assert msg.message.room is not None
        topic = room_topic(msg.message.room)
    else:
        topic = GLOBAL_TOPIC
    return [topic, *encode(msg)]


def decode(frames: list[bytes]) -> ProtocolMessage:
    """Parse frames received from a peer.

    Accepts one frame (DEALER/ROUTER traffic) or ``[topic, body]`` (PUB traffic).

    Raises:
        ProtocolError: the frames are not exactly one valid message.
    """
    if len(frames) not in (1, 2):
        raise ProtocolError(f"expected 1 or 2 frames, got {len(frames)}")
    try:
        body = msgpack.unpackb(frames[-1], raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises many types for bad bytes
        raise ProtocolError(f"not MessagePack: {exc.__class__.__name__}") from None
    if not isinstance(body, dict):
        raise ProtocolError("a message must be a map")
    name = body.get("t")
    cls = _BY_NAME.get(name) if isinstance(name, str) else None
    if cls is None:
        # never repr() what a peer sent: it may be nested deep enough to overflow the stack
        shown = repr(name[:40]) if isinstance(name, str) else type(name).__name__
        raise ProtocolError(f"unknown message type {shown}")
    rid = body.get("rid")
    rid = rid if type(rid) is int and _INT64[0] <= rid <= _INT64[1] else 0
    try:
        msg = _from_wire(cls, body)
    except ProtocolError as exc:
        raise ProtocolError(exc.message, rid) from None
    except Exception as exc:  # anything else a hostile value could provoke
        raise ProtocolError(f"bad {cls.__name__}: {exc.__class__.__name__}", rid) from None
    return typing.cast(ProtocolMessage, msg)


# --- field conversion, planned once per type from its type hints

_Convert = Callable[[Any, str], Any]


def _to_wire(record: Any) -> dict[str, Any]:
    shape = _SHAPES.get(type(record)) or _shape(type(record))
    tag, names = shape
    out: dict[str, Any] = {"t": tag} if tag else {}
    for name in names:
        value = getattr(record, name)
        if hasattr(value, "__dataclass_fields__"):
            value = _nested_to_wire(value)
        elif type(value) is tuple:
            value = [_to_wire(v) if hasattr(v, "__dataclass_fields__") else v for v in value]
        out[name] = value
    return out


def _nested_to_wire(record: Any) -> dict[str, Any]:
    """A record inside a message, converted once for consecutive messages that carry it.

    A direct message goes out twice in a row, in the sender's ``Sent`` and the
    recipient's ``Delivery``: the second reuses the first's map (msgpack only
    reads it). The last record and its map are swapped in as one tuple, so a
    thread never pairs a record with another's map; records are frozen.
    """
    global _last_nested
    last = _last_nested
    if last[0] is record:
        return last[1]
    wire = _to_wire(record)
    _last_nested = (record, wire)
    return wire


_last_nested: tuple[Any, dict[str, Any]] = (None, {})

# per record type: its "t" (None for nested records such as User) and field names
_SHAPES: dict[type, tuple[str | None, tuple[str, ...]]] = {}


def _shape(cls: type) -> tuple[str | None, tuple[str, ...]]:
    tag = cls.__name__ if cls.__name__ in _BY_NAME else None
    _SHAPES[cls] = (tag, tuple(field.name for field in dataclasses.fields(cls)))
    return _SHAPES[cls]


def _from_wire(cls: type, data: Any) -> Any:
    plan = _PLANS.get(cls) or _plan(cls)
    if not isinstance(data, dict):
        raise ProtocolError(f"{cls.__name__} must be a map")
    kwargs = {}
    for name, convert, required in plan:
        if name in data:
            kwargs[name] = convert(data[name], name)
        elif required:
            raise ProtocolError(f"{cls.__name__} lacks field {name!r}")
    return cls(**kwargs)


_PLANS: dict[type, list[tuple[str, _Convert, bool]]] = {}


def _plan(cls: type) -> list[tuple[str, _Convert, bool]]:
    hints = typing.get_type_hints(cls)
    plan = []
    for field in dataclasses.fields(cls):
        required = field.default is dataclasses.MISSING
        plan.append((field.name, _converter(hints[field.name]), required))
    _PLANS[cls] = plan
    return plan


def _converter(hint: Any) -> _Convert:
    origin = typing.get_origin(hint)
    if origin in (Union, UnionType):
        choices = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(choices) > 1:
            return _one_of(choices)
        convert_inner = _converter(choices[0])
        return lambda value, name: None if value is None else convert_inner(value, name)
    if origin is tuple:
        convert_item = _converter(typing.get_args(hint)[0])

        def convert_tuple(value: Any, name: str) -> tuple[Any, ...]:
            if not isinstance(value, list):
                raise ProtocolError(f"field {name!r} must be an array")
            return tuple(convert_item(item, name) for item in value)

        return convert_tuple
    if dataclasses.is_dataclass(hint):
        return lambda value, name: _from_wire(typing.cast(type, hint), value)
    return _SCALARS[hint]


def _one_of(choices: list[type]) -> _Convert:
    """A nested message of one of several types, told apart by its "t"."""
    by_name = {cls.__name__: cls for cls in choices}

    def convert(value: Any, name: str) -> Any:
        kind = value.get("t") if isinstance(value, dict) else None
        cls = by_name.get(kind) if isinstance(kind, str) else None
        if cls is None:
            raise ProtocolError(f"field {name!r} must be one of {sorted(by_name)}")
        return _from_wire(cls, value)

    return convert


def _int(value: Any, name: str) -> int:
    if type(value) is not int or not _INT64[0] <= value <= _INT64[1]:
        raise ProtocolError(f"field {name!r} must be a 64-bit integer")
    return value


def _float(value: Any, name: str) -> float:
    if type(value) not in (int, float):
        raise ProtocolError(f"field {name!r} must be a number")
    return float(value)


def _str(value: Any, name: str) -> str:
    if type(value) is not str:
        raise ProtocolError(f"field {name!r} must be a string")
    return value


def _bool(value: Any, name: str) -> bool:
    if type(value) is not bool:
        raise ProtocolError(f"field {name!r} must be a boolean")
    return value


_SCALARS: dict[Any, _Convert] = {int: _int, float: _float, str: _str, bool: _bool}

for _cls in MESSAGE_TYPES:
    _plan(_cls)
