"""What the terminal shows: chat lines as styled fragments, and the same lines as plain text.

A fragment is a ``(style, text)`` pair, as prompt_toolkit prints them. The
chatter prints them with :data:`STYLE`; the scriptable commands print
:func:`plain` text. This module does not import prompt_toolkit, so the
scriptable commands start without it.
"""

from __future__ import annotations

import time
import unicodedata
import zlib
from collections.abc import Iterable

from libimchat import Message, Room, User, name_key

Fragments = list[tuple[str, str]]

# one colour per sender, picked by a hash of the name: the same on every run
SENDER_COLOURS = (
    "ansired",
    "ansigreen",
    "ansiyellow",
    "ansiblue",
    "ansimagenta",
    "ansicyan",
    "ansibrightred",
    "ansibrightgreen",
    "ansibrightblue",
    "ansibrightmagenta",
    "ansibrightcyan",
)

STYLE = {
    "time": "ansibrightblack",
    "label": "bold",
    "status": "dim",
    "error": "ansired bold",
    "online": "ansigreen",
    "offline": "ansibrightblack",
    "meta": "dim",
    "echo": "dim",
    "prompt.conversation": "bold",
    "prompt.unread": "ansiyellow bold",
}


def printable(text: str) -> str:
    """``text`` with control characters other than newline and tab made harmless."""
    return "".join(
        "\ufffd" if unicodedata.category(ch) == "Cc" and ch not in "\n\t" else ch for ch in text
    )


def sender_colour(name: str) -> str:
    return SENDER_COLOURS[zlib.crc32(name_key(name).encode()) % len(SENDER_COLOURS)]


def timestamp(when: float, *, full: bool = False) -> str:
    """``HH:MM`` for today, with the date before it for other days (or when ``full``)."""
    moment = time.localtime(when)
    if full or moment[:3] != time.localtime()[:3]:
        return time.strftime("%Y-%m-%d %H:%M", moment)
    return time.strftime("%H:%M", moment)


def message_line(message: Message, *, label: str | None = None, full: bool = False) -> Fragments:
    """``12:01 [label] <SAM> text``: the label names the conversation when it is not obvious."""
    fragments: Fragments = [("class:time", timestamp(message.sent_at, full=full) + " ")]
    if label is not None:
        fragments.append(("class:label", f"[{printable(label)}] "))
    fragments.append((sender_colour(message.sender), f"<{message.sender}>"))
    fragments.append(("", " " + printable(message.body)))
    return fragments


def status_line(text: str) -> Fragments:
    """Something that happened (presence, rename, invite, connection): dim, with the time."""
    return [("class:time", timestamp(time.time()) + " "), ("class:status", printable(text))]


def error_line(text: str) -> Fragments:
    return [("class:error", "✗ " + printable(text))]


def echo_line(command: str) -> Fragments:
    """The command the user typed, kept above its answer (the prompt line itself is erased)."""
    return [("class:echo", "» " + printable(command))]


def info_line(text: str) -> Fragments:
    """An answer to a command."""
    return [("", printable(text))]


def user_entry(user: User, *, me: str | None = None) -> Fragments:
    """``● SAM  Sam Smith`` (online) or ``○ SAM  Sam Smith`` (offline)."""
    mark = ("class:online", "● ") if user.online else ("class:offline", "○ ")
    you = " (you)" if me is not None and name_key(user.username) == name_key(me) else ""
    full_name = printable(f"{user.first_name} {user.last_name}".strip())
    return [
        mark,
        (sender_colour(user.username), user.username),
        ("class:meta", f"  {full_name}{you}"),
    ]


def room_entry(room: Room) -> Fragments:
    """``#Room1  3 members, created by ALI (joined)``."""
    members = f"{room.members} member" + ("" if room.members == 1 else "s")
    joined = " (joined)" if room.joined else ""
    return [
        ("class:label", f"#{printable(room.name)}"),
        ("class:meta", f"  {members}, created by {room.created_by}{joined}"),
    ]


def lines(entries: Iterable[Fragments]) -> Fragments:
    """Several lines as one block (printed at once, so the prompt is redrawn once)."""
    block: Fragments = []
    for number, entry in enumerate(entries):
        if number:
            block.append(("", "\n"))
        block.extend(entry)
    return block


def plain(fragments: Fragments) -> str:
    return "".join(text for _, text in fragments)
