"""What a valid username, phone number, room name or message body is.

Usernames and room names are compared by a *key*: NFKC-normalised and
case-folded, so "Ali", "ALI" and "ａｌｉ" (full-width) are one name. The form a
user typed is kept for display.
"""

from __future__ import annotations

import re
import unicodedata

from .errors import ChatError

MAX_BODY = 8000
MAX_NAME = 64
MAX_PASSWORD = 1024
_USERNAME = re.compile(r"[^\W_][\w.-]{1,31}")
_ROOM = re.compile(r"[^\W_][\w .#-]{0,47}")
_PHONE_DIGITS = re.compile(r"\+?[0-9]{6,15}")
_PHONE_SEPARATORS = re.compile(r"[ ().-]")
_Z85 = frozenset(
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
)


def name_key(name: str) -> str:
    """The form two names are compared in (NFKC + casefold, outer spaces trimmed)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold()).strip()


def check_username(username: str) -> str:
    """The username as it will be stored (NFKC), or ``ChatError("invalid")``."""
    username = unicodedata.normalize("NFKC", username.strip())
    if not _USERNAME.fullmatch(username):
        raise ChatError(
            "invalid",
            "a username has 2 to 32 letters, digits, '.', '_' or '-', starting with"
            " a letter or digit",
        )
    return username


def check_room_name(room: str) -> str:
    room = unicodedata.normalize("NFKC", room.strip())
    if not _ROOM.fullmatch(room):
        raise ChatError(
            "invalid",
            "a room name has 1 to 48 letters, digits, spaces, '.', '_', '#' or '-',"
            " starting with a letter or digit",
        )
    return room


def check_subscriber_key(key: str) -> str:
    """A SUB socket's CURVE public key as Z85 (40 characters), or "" for none."""
    if key and (len(key) != 40 or not _Z85.issuperset(key)):
        raise ChatError("invalid", "subscriber_key is a CURVE public key: 40 Z85 characters")
    return key


def check_phone(phone: str) -> str:
    """The phone number without separators, or ``ChatError("invalid")``."""
    compact = _PHONE_SEPARATORS.sub("", phone.strip())
    if not _PHONE_DIGITS.fullmatch(compact):
        raise ChatError("invalid", "a phone number has 6 to 15 digits, optionally after '+'")
    return compact


def check_person_name(field: str, value: str) -> str:
    value = value.strip()
    if len(value) > MAX_NAME or any(unicodedata.category(ch).startswith("C") for ch in value):
        raise ChatError("invalid", f"{field} must be at most {MAX_NAME} printable characters")
    return value


def check_password(password: str) -> str:
    if len(password) > MAX_PASSWORD:
        raise ChatError("invalid", f"a password has at most {MAX_PASSWORD} characters")
    return password


def check_body(body: str) -> str:
    if not body.strip():
        raise ChatError("invalid", "a message cannot be empty")
    if len(body) > MAX_BODY:
        raise ChatError("invalid", f"a message has at most {MAX_BODY} characters")
    return body


def require(**fields: str) -> None:
    """Raise ``missing_fields`` naming every field that is empty."""
    missing = [name for name, value in fields.items() if not value.strip()]
    if missing:
        raise ChatError("missing_fields", "required: " + ", ".join(missing))


def shown(name: str) -> str:
    """A name a client sent, quoted for an error message: cut to :data:`MAX_NAME`
    characters, so that a refusal never grows with what was sent."""
    return repr(name) if len(name) <= MAX_NAME else repr(name[:MAX_NAME]) + "..."
