"""The scriptable commands: ``imchat send``, ``history``, ``users`` and ``rooms``.

Each one logs in, does one thing, logs out and exits with status 0. When the
server refuses (wrong password, no such user...) or does not answer within
``--timeout``, it prints ``imchat: <the server's message>`` on stderr and exits
with status 1; a wrongly called command exits with status 2. Plain output is
for people, ``--json`` output for programs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable
from typing import Any

from libimchat import ChatError, Client

from . import options
from .render import lines, message_line, plain, room_entry, user_entry

DEFAULT_LIMIT = 20


def _send(client: Client, args: argparse.Namespace) -> str:
    text = " ".join(args.text)
    if args.room is not None:
        message = client.send_room(args.room, text)
    else:
        message = client.send(args.to, text)
    return _json(message) if args.json else ""


def _history(client: Client, args: argparse.Namespace) -> str:
    if args.room is not None:
        messages = client.room_history(args.room, limit=args.limit)
    else:
        messages = client.history(args.peer, limit=args.limit)
    if args.json:
        return _json(messages)
    return plain(lines(message_line(message, full=True) for message in messages))


def _users(client: Client, args: argparse.Namespace) -> str:
    users = client.users()
    if args.json:
        return _json(users)
    return plain(lines(user_entry(user) for user in users))


def _rooms(client: Client, args: argparse.Namespace) -> str:
    rooms = client.rooms()
    if args.json:
        return _json(rooms)
    return plain(lines(room_entry(room) for room in rooms))


def _json(value: Any) -> str:
    if isinstance(value, list):
        return json.dumps(
            [dataclasses.asdict(item) for item in value], ensure_ascii=False, indent=2
        )
    return json.dumps(dataclasses.asdict(value), ensure_ascii=False, indent=2)


COMMANDS: dict[str, Callable[[Client, argparse.Namespace], str]] = {
    "send": _send,
    "history": _history,
    "users": _users,
    "rooms": _rooms,
}


def _parser(command: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"imchat {command}")
    options.add_connection_options(parser, user_required=True)
    if command == "send":
        parser.description = "Send one message to a user or a room."
        where = parser.add_mutually_exclusive_group(required=True)
        where.add_argument("--to", metavar="NAME", help="a user")
        where.add_argument("--room", metavar="ROOM", help="a room you are in")
        parser.add_argument("text", nargs="+", help="the message (words are joined by spaces)")
        parser.add_argument("--json", action="store_true", help="print the stored message")
    elif command == "history":
        parser.description = "Your messages with a user, or a room's, oldest first."
        parser.add_argument("peer", nargs="?", metavar="NAME", help="a user")
        parser.add_argument("--room", metavar="ROOM", help="a room instead of a user")
        parser.add_argument(
            "--limit",
            type=int,
            default=DEFAULT_LIMIT,
            help=f"the newest N (default {DEFAULT_LIMIT})",
        )
    else:
        parser.description = f"List the {command}."
    if command != "send":
        parser.add_argument("--json", action="store_true", help="print JSON")
    return parser


def main(argv: list[str]) -> int:
    """Run one scriptable command; ``argv[0]`` is its name. Returns the exit status."""
    command = argv[0]
    parser = _parser(command)
    args = parser.parse_args(argv[1:])
    if command == "history" and (args.peer is None) == (args.room is None):
        parser.error("give a NAME or --room ROOM")
    try:
        password = options.password(args, args.user)
        with Client(
            args.url, timeout=args.timeout, server_key=args.server_key, insecure=args.insecure
        ) as client:
            client.login(args.user, password)
            output = COMMANDS[command](client, args)
    except options.UsageError as exc:
        return options.fail(str(exc), 2)
    except ChatError as exc:
        return options.fail(exc.message, 1)
    if output:
        print(output)
    return 0
