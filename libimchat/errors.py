"""Errors raised by libimchat.

Every failure a caller can see is a :class:`ChatError` with a stable string
``code`` (safe to branch on) and a human ``message`` (safe to show)::

    ChatError                 root; .code names the failure (see CODES)
    ├── ProtocolError         a frame that is not valid libimchat protocol
    └── ChatTimeout           the server did not answer in time (code "timeout")

Errors the server reports travel as a code and a message and are raised again
on the client as a ``ChatError`` with the same code, so an application handles
``ChatError`` and switches on ``.code``.
"""

from __future__ import annotations

CODES: dict[str, str] = {
    "missing_fields": "a required field is empty",
    "invalid": "a field has a bad value (username, phone, room name, body...)",
    "username_taken": "that username, or one that looks like it, belongs to someone else",
    "bad_credentials": "wrong username or password",
    "not_logged_in": "log in first",
    "session_expired": "the session has ended; log in again",
    "no_such_user": "no user has that name",
    "no_such_room": "no room has that name",
    "room_exists": "a room with that name exists already",
    "not_member": "join the room first",
    "blocked": "the recipient has blocked you",
    "bad_request": "the request is not valid libimchat protocol",
    "unsupported_version": "the peer speaks another protocol version",
    "rate_limited": "too many requests of one kind; wait retry_after seconds",
    "too_many_rooms": "the user is in as many rooms as one user may be",
    "too_many_blocks": "the user blocks as many users as one user may",
    "server_full": "the server holds as many connections or sessions as it can; try later",
    "timeout": "the server did not answer in time",
    "handshake_failed": "the secure handshake failed (wrong server key, or plain text)",
    "closed": "the client is closed",
    "internal": "the server failed to handle the request",
}


class ChatError(Exception):
    """A failure reported by the server or detected by the client.

    Attributes:
        code: a stable identifier from :data:`CODES`.
        message: a sentence for humans.
        retry_after: for ``rate_limited`` and ``server_full``, seconds after which
            a retry may succeed.
    """

    def __init__(
        self, code: str, message: str | None = None, *, retry_after: float | None = None
    ) -> None:
        self.code = code
        self.message = message or CODES.get(code, code)
        self.retry_after = retry_after
        super().__init__(f"{code}: {self.message}")


class ProtocolError(ChatError):
    """Bytes that do not decode to a libimchat protocol message.

    Attributes:
        rid: the request id, when the bytes were a map with a valid ``rid``
            (so that the refusal can still be matched to its request), else 0.
    """

    def __init__(self, message: str, rid: int = 0) -> None:
        super().__init__("bad_request", message)
        self.rid = rid


class ChatTimeout(ChatError):
    """The server did not answer within the timeout."""

    def __init__(self, message: str = "the server did not answer in time") -> None:
        super().__init__("timeout", message)
