"""``imchat chat``: the interactive terminal chatter.

One asyncio loop runs it all: prompt_toolkit's prompt, the AsyncClient's
events and the messages being sent. Lines print above the prompt, which is
then redrawn as it was, so whatever arrives never mangles the line being
typed (patch_stdout does the same for anything else written to stdout or
stderr). The chatter keeps little state of its own: where plain lines go (the
current conversation), what is unread elsewhere, and the names it has seen,
for tab completion; everything else it asks the server.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from prompt_toolkit import PromptSession
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.input import Input, create_input
from prompt_toolkit.patch_stdout import patch_stdout

from libimchat import AsyncClient, ChatError, ChatTimeout, Event, Message, Room, name_key

from . import options
from .completion import ChatCompleter
from .notify import Notifier
from .render import (
    Fragments,
    echo_line,
    error_line,
    info_line,
    lines,
    message_line,
    room_entry,
    status_line,
    user_entry,
)
from .signin import sign_in
from .slash import BY_NAME, SLASH_COMMANDS, Usage
from .terminal import STYLE_SHEET, bell, show

SWITCH_HISTORY = 10  # messages shown on /query and /join
DEFAULT_HISTORY = 20  # messages shown by /history
REMEMBERED = 2000  # ids of messages shown, to show each once
CONNECTED = "connected to the server again"
DISCONNECTED = "lost the connection to the server; reconnecting..."
QUIT_WAIT = 2.0  # seconds that messages still on their way may take when the user quits


@dataclass(frozen=True, slots=True)
class Conversation:
    """Where a plain line goes: a user (direct messages) or a room."""

    name: str
    room: bool

    @property
    def label(self) -> str:
        return f"#{self.name}" if self.room else self.name

    @property
    def key(self) -> str:
        return ("#" if self.room else "") + name_key(self.name)


def main(argv: list[str]) -> int:
    """``imchat chat [--url URL] [--user NAME] [--password-stdin]``: returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="imchat chat",
        description="Chat in the terminal. Type /help once logged in.",
    )
    options.add_connection_options(parser, user_required=False)
    args = parser.parse_args(argv[1:])
    try:
        password = options.given_password(args)
        return asyncio.run(_chat(args, password))
    except options.UsageError as exc:
        return options.fail(str(exc), 2)
    except ChatError as exc:
        return options.fail(exc.message, 1)


async def _chat(args: argparse.Namespace, password: str | None) -> int:
    # the password may have come from a pipe on stdin: then read keys from the terminal
    keyboard = create_input(always_prefer_tty=True)
    async with AsyncClient(
        args.url, timeout=args.timeout, server_key=args.server_key, insecure=args.insecure
    ) as client:
        show(status_line(f"imchat on {args.url.partition('#')[0]}"))
        session: PromptSession[str] = PromptSession(input=keyboard)
        credentials = await sign_in(client, session, username=args.user, password=password)
        if credentials is None:
            return 0
        await Chatter(client, credentials[0], credentials[1], keyboard=keyboard).run()
    return 0


class Chatter:
    """The chat screen of a logged-in client.

    Args:
        client: logged in as ``username``.
        username: who is logged in.
        password: kept to log in again if the server forgets the session.
        keyboard: where keys come from (default: the terminal on stdin).
    """

    def __init__(
        self,
        client: AsyncClient,
        username: str,
        password: str,
        *,
        keyboard: Input | None = None,
    ) -> None:
        self.client = client
        self._username = username
        self._password = password
        self.current: Conversation | None = None
        self.unread: dict[str, tuple[Conversation, int]] = {}
        self.users: dict[str, str] = {}  # name key -> username, for completion
        self.rooms: dict[str, str] = {}  # name key -> room name
        self.joined: set[str] = set()  # name keys of the rooms we are in
        self._shown: dict[int, None] = {}  # message ids, oldest first
        self._tasks: set[asyncio.Task[None]] = set()
        self._notifier = Notifier()
        self._online = True
        self._logging_in = False
        self._session: PromptSession[str] = PromptSession(
            self._prompt,
            input=keyboard,
            completer=ChatCompleter(self.users.values, self.rooms.values),
            complete_while_typing=False,
            erase_when_done=True,  # the line comes back as a chat line once sent
            style=STYLE_SHEET,
        )
        self._commands: dict[str, Callable[[str], Awaitable[None]]] = {
            "/help": self._help,
            "/users": self._users,
            "/msg": self._msg,
            "/query": self._query,
            "/rooms": self._rooms,
            "/create": self._create,
            "/join": self._join,
            "/leave": self._leave,
            "/invite": self._invite,
            "/nick": self._nick,
            "/block": self._block,
            "/unblock": self._unblock,
            "/blocked": self._blocked,
            "/history": self._history,
        }

    @property
    def me(self) -> str:
        user = self.client.user
        return user.username if user is not None else self._username

    async def run(self) -> None:
        """Chat until ``/quit``, Ctrl-D or Ctrl-C."""
        users = await self.client.users()
        await self._rooms_list()
        self.users.update({name_key(u.username): u.username for u in users})
        others = sorted(u.username for u in users if u.online and not self._is_me(u.username))
        show(status_line(f"logged in as {self.me}; /help lists the commands, Tab completes"))
        show(status_line("online: " + ", ".join(others) if others else "nobody else is online"))
        events = asyncio.create_task(self._follow_events())
        try:
            with patch_stdout():
                while True:
                    try:
                        line = await self._session.prompt_async()
                    except (EOFError, KeyboardInterrupt):
                        break
                    if not await self.handle(line):
                        break
        finally:
            events.cancel()
            await self._finish_tasks()

    async def handle(self, line: str) -> bool:
        """Carry out one typed line; ``False`` means quit."""
        if not line.strip():
            return True
        if not line.startswith("/") or line.startswith("//"):  # "//" sends a line starting "/"
            text = line[1:] if line.startswith("//") else line
            if self.current is None:
                show(error_line("no conversation yet: /query NAME, /join ROOM or /msg NAME TEXT"))
            else:
                self._start(self._send(self.current, text))
            return True
        name, _, args = line.partition(" ")
        name = name.lower()
        if name == "/quit":
            return False
        show(echo_line(line))
        command = self._commands.get(name)
        if command is None:
            show(error_line(f"no command {name}; /help lists them"))
            return True
        try:
            await command(args.strip())
        except Usage as exc:
            show(error_line(f"usage: {exc}"))
        except ChatError as exc:
            show(error_line(exc.message))
        return True

    # --- the prompt

    def _prompt(self) -> FormattedText:
        fragments: Fragments = []
        if self.current is not None:
            fragments.append(("class:prompt.conversation", f"[{self.current.label}]"))
        for conversation, count in self.unread.values():
            fragments.append(("class:prompt.unread", f" {conversation.label}({count})"))
        fragments.append(("", "> "))
        return FormattedText(fragments)

    def _switch(self, conversation: Conversation | None) -> None:
        self.current = conversation
        if conversation is not None:
            self.unread.pop(conversation.key, None)

    # --- events from the server

    async def _follow_events(self) -> None:
        async for event in self.client.events():
            try:
                self._on_event(event)
            except Exception as exc:  # one odd event must not end the chat
                show(error_line(f"could not show a {event.kind} event: {exc!r}"))
            self._session.app.invalidate()  # the prompt shows unread counts

    def _on_event(self, event: Event) -> None:
        if event.message is not None:
            self._on_message(event.message)
        elif event.kind == "presence" and event.username is not None:
            if not self._is_me(event.username):
                self.users[name_key(event.username)] = event.username
                state = "● {} is online" if event.online else "○ {} went offline"
                show(status_line(state.format(event.username)))
        elif event.kind == "rename" and event.old is not None and event.new is not None:
            self._on_rename(event.old, event.new)
        elif event.kind == "room_created" and event.room is not None:
            self.rooms[name_key(event.room)] = event.room
            if not self._is_me(event.sender or ""):
                show(status_line(f"{event.sender} created the room #{event.room}"))
        elif event.kind == "invite" and event.room is not None:
            self.rooms[name_key(event.room)] = event.room
            show(status_line(f"{event.sender} invites you to #{event.room}: /join {event.room}"))
        elif event.kind == "connection":
            self._on_connection(bool(event.online))

    def _on_message(self, message: Message) -> None:
        if message.id in self._shown:
            return
        self._remember(message)
        self.users.setdefault(name_key(message.sender), message.sender)
        conversation = self._conversation_of(message)
        if self.current is not None and conversation.key == self.current.key:
            show(message_line(message))
            return
        show(message_line(message, label=conversation.label))
        if self._is_me(message.sender):
            return
        _, count = self.unread.get(conversation.key, (conversation, 0))
        self.unread[conversation.key] = (conversation, count + 1)
        bell()
        self._notifier.notify(f"imchat: {conversation.label}", f"{message.sender}: {message.body}")

    def _on_rename(self, old: str, new: str) -> None:
        self.users.pop(name_key(old), None)
        self.users[name_key(new)] = new
        if self._is_me(new):
            self._username = new
            show(status_line(f"you are now {new}"))
        else:
            show(status_line(f"{old} is now known as {new}"))
        renamed = Conversation(new, room=False)
        if self.current is not None and self.current.key == name_key(old):
            self.current = renamed
        if name_key(old) in self.unread:
            _, count = self.unread.pop(name_key(old))
            self.unread[renamed.key] = (renamed, count)

    def _on_connection(self, online: bool) -> None:
        # a server that forgot our session says so once the connection is back:
        # a second "offline", with no user any more; then we log in again
        if online != self._online:
            self._online = online
            show(status_line(CONNECTED if online else DISCONNECTED))
        if not online and self.client.user is None and not self._logging_in:
            self._logging_in = True
            self._start(self._log_in_again())

    async def _log_in_again(self) -> None:
        try:
            while True:
                try:
                    await self.client.login(self._username, self._password)
                    break
                except ChatTimeout:
                    continue  # the server is still away
                except ChatError as exc:
                    show(error_line(f"could not log in again: {exc.message}; /quit, then retry"))
                    return
            self._online = True
            show(status_line(f"{CONNECTED}, logged in as {self.me}"))
        finally:
            self._logging_in = False

    # --- commands

    async def _help(self, args: str) -> None:
        width = max(len(command.usage) for command in SLASH_COMMANDS)
        entries = [info_line(f"{c.usage:<{width}}  {c.help}") for c in SLASH_COMMANDS]
        entries.append(info_line("Any other line goes to the conversation shown in the prompt."))
        show(lines(entries))

    async def _users(self, args: str) -> None:
        users = await self.client.users()
        self.users.clear()
        self.users.update({name_key(u.username): u.username for u in users})
        ordered = sorted(users, key=lambda u: (not u.online, name_key(u.username)))
        show(lines(user_entry(user, me=self.me) for user in ordered))

    async def _msg(self, args: str) -> None:
        target, _, text = args.partition(" ")
        if not target or not text.strip():
            raise Usage(BY_NAME["/msg"].usage)
        conversation = self._target(target)
        if self.current is None:
            self._switch(conversation)
        await self._send(conversation, text)

    async def _query(self, args: str) -> None:
        if not args or (" " in args and not args.startswith("#")):
            raise Usage(BY_NAME["/query"].usage)
        conversation = self._target(args)
        if conversation.room and name_key(conversation.name) not in self.joined:
            await self._rooms_list()  # another client of ours may have joined it
        if conversation.room and name_key(conversation.name) not in self.joined:
            show(error_line(f"join {conversation.label} first: /join {conversation.name}"))
            return
        await self._show_history(conversation, SWITCH_HISTORY)
        self._switch(conversation)

    async def _rooms(self, args: str) -> None:
        rooms = await self._rooms_list()
        show(lines(room_entry(room) for room in rooms) if rooms else info_line("no rooms yet"))

    async def _create(self, args: str) -> None:
        if not args:
            raise Usage(BY_NAME["/create"].usage)
        room = await self.client.create_room(args.removeprefix("#"))
        self._joined(room.name)
        show(status_line(f"you created #{room.name} and are in it; invite with /invite NAME"))
        self._switch(Conversation(room.name, room=True))

    async def _join(self, args: str) -> None:
        if not args:
            raise Usage(BY_NAME["/join"].usage)
        room = await self.client.join(args.removeprefix("#"))
        self._joined(room.name)
        conversation = Conversation(room.name, room=True)
        show(status_line(f"you joined #{room.name} ({room.members} members)"))
        await self._show_history(conversation, SWITCH_HISTORY)
        self._switch(conversation)

    async def _leave(self, args: str) -> None:
        if args:
            room = args.removeprefix("#")
        elif self.current is not None and self.current.room:
            room = self.current.name
        else:
            raise Usage(BY_NAME["/leave"].usage)
        await self.client.leave(room)
        self.joined.discard(name_key(room))
        show(status_line(f"you left #{self.rooms.get(name_key(room), room)}"))
        if self.current is not None and self.current.key == "#" + name_key(room):
            self._switch(None)

    async def _invite(self, args: str) -> None:
        room, _, username = args.rpartition(" ")
        if not room and self.current is not None and self.current.room:
            room = self.current.name
        if not room or not username:
            raise Usage(BY_NAME["/invite"].usage)
        await self.client.invite(room.removeprefix("#"), username)
        show(status_line(f"you invited {username} to #{room.removeprefix('#')}"))

    async def _nick(self, args: str) -> None:
        if not args or " " in args:
            raise Usage(BY_NAME["/nick"].usage)
        await self.client.rename(args)  # the rename event says so, to us as to everyone

    async def _block(self, args: str) -> None:
        if not args or " " in args:
            raise Usage(BY_NAME["/block"].usage)
        await self.client.block(args)
        show(status_line(f"you block {args}: nothing of theirs reaches you now"))

    async def _unblock(self, args: str) -> None:
        if not args or " " in args:
            raise Usage(BY_NAME["/unblock"].usage)
        await self.client.unblock(args)
        show(status_line(f"you no longer block {args}"))

    async def _blocked(self, args: str) -> None:
        names = await self.client.blocked()
        show(info_line("you block: " + ", ".join(sorted(names)) if names else "you block nobody"))

    async def _history(self, args: str) -> None:
        if (args and not args.isdigit()) or self.current is None:
            raise Usage(BY_NAME["/history"].usage + " (in a conversation)")
        await self._show_history(self.current, int(args) if args else DEFAULT_HISTORY)

    # --- helpers

    async def _send(self, conversation: Conversation, text: str) -> None:
        try:
            if conversation.room:
                message = await self.client.send_room(conversation.name, text)
            else:
                message = await self.client.send(conversation.name, text)
        except ChatError as exc:
            show(error_line(f"not sent to {conversation.label}: {exc.message}"))
            return
        self._on_message(message)

    async def _show_history(self, conversation: Conversation, limit: int) -> None:
        if conversation.room:
            messages = await self.client.room_history(conversation.name, limit=limit)
        else:
            messages = await self.client.history(conversation.name, limit=limit)
        if not messages:
            show(status_line(f"no messages with {conversation.label} yet"))
            return
        for message in messages:
            self._remember(message)
        show(lines(message_line(message) for message in messages))

    async def _rooms_list(self) -> list[Room]:
        rooms = await self.client.rooms()
        self.rooms.update({name_key(room.name): room.name for room in rooms})
        self.joined = {name_key(room.name) for room in rooms if room.joined}
        return rooms

    def _joined(self, room: str) -> None:
        self.rooms[name_key(room)] = room
        self.joined.add(name_key(room))

    def _target(self, name: str) -> Conversation:
        if name.startswith("#"):
            return Conversation(self.rooms.get(name_key(name[1:]), name[1:]), room=True)
        return Conversation(self.users.get(name_key(name), name), room=False)

    def _conversation_of(self, message: Message) -> Conversation:
        if message.room is not None:
            return Conversation(message.room, room=True)
        mine = self._is_me(message.sender)
        peer = message.recipient if mine and message.recipient else message.sender
        return Conversation(peer, room=False)

    def _is_me(self, name: str) -> bool:
        return name_key(name) == name_key(self.me)

    def _remember(self, message: Message) -> None:
        self._shown[message.id] = None
        if len(self._shown) > REMEMBERED:
            del self._shown[next(iter(self._shown))]

    async def _finish_tasks(self) -> None:
        """Let messages on their way be stored (briefly), then stop what is left."""
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=QUIT_WAIT)
            for task in pending:
                task.cancel()

    def _start(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
