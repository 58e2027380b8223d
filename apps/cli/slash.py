"""The chatter's slash commands as data: name, arguments, usage and help.

``/help`` prints this table and tab completion reads the argument kinds from
it; the chatter (chatter.py) carries the commands out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# what an argument is, for completion: a username, a room name (the rest of the
# line: room names may hold spaces), a username or #room, free text (where
# usernames complete, as nicks do in IRC), or anything else (nothing to complete)
ArgKind = Literal["user", "room", "target", "text", "other"]


class Usage(Exception):
    """A command typed with the wrong arguments; the message is its usage."""


@dataclass(frozen=True, slots=True)
class SlashCommand:
    name: str
    args: tuple[ArgKind, ...]
    usage: str
    help: str


SLASH_COMMANDS = (
    SlashCommand("/help", (), "/help", "this list"),
    SlashCommand("/users", (), "/users", "everyone, online ● or offline ○"),
    SlashCommand(
        "/msg", ("target", "text"), "/msg NAME TEXT", "send one message to NAME (or to #ROOM)"
    ),
    SlashCommand(
        "/query", ("target",), "/query NAME", "talk to NAME (or #ROOM) from now on; recent history"
    ),
    SlashCommand("/rooms", (), "/rooms", "the rooms, with their members"),
    SlashCommand("/create", ("other",), "/create ROOM", "create a room and go in"),
    SlashCommand("/join", ("room",), "/join ROOM", "join a room and talk there; recent history"),
    SlashCommand("/leave", ("room",), "/leave [ROOM]", "leave a room (default: this one)"),
    SlashCommand(
        "/invite", ("room", "user"), "/invite [ROOM] NAME", "invite NAME to a room (default: this)"
    ),
    SlashCommand("/nick", ("other",), "/nick NEW", "change your username"),
    SlashCommand("/block", ("user",), "/block NAME", "receive nothing more from NAME"),
    SlashCommand("/unblock", ("user",), "/unblock NAME", "receive NAME's messages again"),
    SlashCommand("/blocked", (), "/blocked", "the names you block"),
    SlashCommand("/history", ("other",), "/history [N]", "the last N messages here (default 20)"),
    SlashCommand("/quit", (), "/quit", "log out and leave (Ctrl-D too)"),
)

BY_NAME = {command.name: command for command in SLASH_COMMANDS}
