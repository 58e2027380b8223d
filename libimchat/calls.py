"""The public API's requests, shared by Client and AsyncClient.

Each function builds the protocol request for one API call and says how to read
its reply. The two clients differ only in how they wait for the reply.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from . import protocol as p
from .client_ids import new_client_id
from .errors import ChatError
from .models import Message, Room, User

T = TypeVar("T")
Call = tuple[p.Request, Callable[[Any], T]]
# a paged list's call for the page after the item of this name: (the page, whether more follow)
Pages = Callable[[str], Call[tuple[list[T], bool]]]
DEFAULT_PAGE = 50


def result(reply: p.Reply, read: Callable[[Any], T]) -> T:
    """The value of a reply, or the server's failure raised as a ChatError."""
    if isinstance(reply, p.Failure):
        raise ChatError(reply.code, reply.message, retry_after=reply.retry_after or None)
    return read(reply)


def _nothing(reply: p.Reply) -> None:
    return None


def signup(username: str, password: str, first_name: str, last_name: str, phone: str) -> Call[None]:
    request = p.Signup(
        rid=0,
        username=username,
        password=password,
        first_name=first_name,
        last_name=last_name,
        phone=phone,
        key=uuid.uuid4().hex,
    )
    return request, _nothing


def login(username: str, password: str) -> Call[User]:
    return p.Login(rid=0, username=username, password=password), lambda r: r.user


def logout() -> Call[None]:
    return p.Logout(rid=0), _nothing


def users(after: str = "") -> Call[tuple[list[User], bool]]:
    """A page of users from the one after ``after``; whether more follow."""
    return p.ListUsers(rid=0, after=after), lambda r: (list(r.users), r.more)


def send(to: str, body: str, client_id: str | None) -> Call[Message]:
    request = p.SendDirect(rid=0, to=to, body=body, client_id=client_id or new_client_id())
    return request, lambda r: r.message


def send_room(room: str, body: str, client_id: str | None) -> Call[Message]:
    request = p.SendRoom(rid=0, room=room, body=body, client_id=client_id or new_client_id())
    return request, lambda r: r.message


def history(peer: str, limit: int, before: int | None) -> Call[list[Message]]:
    return p.History(rid=0, peer=peer, limit=limit, before=before), lambda r: list(r.messages)


def room_history(room: str, limit: int, before: int | None) -> Call[list[Message]]:
    request = p.RoomHistory(rid=0, room=room, limit=limit, before=before)
    return request, lambda r: list(r.messages)


def create_room(room: str) -> Call[Room]:
    return p.CreateRoom(rid=0, room=room, key=uuid.uuid4().hex), lambda r: r.room


def rooms(after: str = "") -> Call[tuple[list[Room], bool]]:
    """A page of rooms from the one after ``after``; whether more follow."""
    return p.ListRooms(rid=0, after=after), lambda r: (list(r.rooms), r.more)


def join(room: str) -> Call[Room]:
    return p.Join(rid=0, room=room), lambda r: r.room


def leave(room: str) -> Call[None]:
    return p.Leave(rid=0, room=room), _nothing


def invite(room: str, username: str) -> Call[None]:
    return p.Invite(rid=0, room=room, username=username), _nothing


def rename(username: str) -> Call[User]:
    return p.Rename(rid=0, username=username), lambda r: r.user


def block(username: str) -> Call[None]:
    return p.Block(rid=0, username=username), _nothing


def unblock(username: str) -> Call[None]:
    return p.Unblock(rid=0, username=username), _nothing


def blocked() -> Call[list[str]]:
    return p.ListBlocked(rid=0), lambda r: list(r.names)
