"""The chat view: toolbar, people, rooms, blocked users and the open conversation.

It turns what the user does into library calls through the bridge, and what
the server says (replies and events) into :class:`~imchat_gui.state.ChatState`
changes, then redraws the panes from the state.
"""

from __future__ import annotations

import tkinter as tk
from typing import TYPE_CHECKING

import ttkbootstrap as ttk

from libimchat import ChatError, Client, Event, Message, Room, User, new_client_id

from .conversation import ConversationPane
from .dialogs import Notice, Prompt, Question
from .look import font
from .rooms import RoomList
from .state import ChatState, Conversation
from .users import BlockedList, PeopleList

if TYPE_CHECKING:
    from .app import ChatApp

PAGE = 50  # messages per page of history
NOTIFY_CHARS = 200


class MainView(ttk.Frame):
    """The main window's content for the signed-in ``user``."""

    def __init__(self, master: tk.Misc, app: ChatApp, user: User) -> None:
        super().__init__(master)
        self.app = app
        self.chat = ChatState(user)
        self.loaded = False  # the lists have come
        self._loading: set[Conversation] = set()
        self._timed_out: dict[tuple[Conversation, str], str] = {}  # -> client_id

        toolbar = ttk.Frame(self, padding=(14, 8))
        toolbar.pack(fill=tk.X)
        ttk.Label(toolbar, image=ttk.Icon("chat-dots-fill", 22, "primary")).pack(side=tk.LEFT)
        ttk.Label(toolbar, text="imchat", font=font(self, size=4, weight="bold")).pack(
            side=tk.LEFT, padx=(6, 18)
        )
        self.me_label = ttk.Label(toolbar, compound=tk.LEFT, font=font(self, weight="bold"))
        self.me_label.pack(side=tk.LEFT)
        self.logout_button = ttk.Button(
            toolbar, text="Logout", icon="box-arrow-right", bootstyle="danger-outline",
            command=self.logout,
        )  # fmt: skip
        self.logout_button.pack(side=tk.RIGHT, padx=(8, 0))
        self.dark = tk.BooleanVar(self, value=app.dark)
        self.theme_switch = ttk.Checkbutton(
            toolbar, text="Dark", variable=self.dark, bootstyle="round-toggle",
            command=app.toggle_theme,
        )  # fmt: skip
        self.theme_switch.pack(side=tk.RIGHT, padx=(12, 4))
        self.unblock_button = ttk.Button(
            toolbar, text="Unblock…", icon="person-check", bootstyle="secondary-outline",
            command=self.ask_unblock,
        )  # fmt: skip
        self.unblock_button.pack(side=tk.RIGHT, padx=(6, 0))
        self.block_button = ttk.Button(
            toolbar, text="Block…", icon="slash-circle", bootstyle="secondary-outline",
            command=self.ask_block,
        )  # fmt: skip
        self.block_button.pack(side=tk.RIGHT, padx=(6, 0))
        self.rename_button = ttk.Button(
            toolbar, text="Change username", icon="pencil", bootstyle="secondary-outline",
            command=self.ask_rename,
        )  # fmt: skip
        self.rename_button.pack(side=tk.RIGHT)
        ttk.Separator(self).pack(fill=tk.X)

        panes = ttk.Panedwindow(self, orient=tk.HORIZONTAL)
        panes.pack(fill=tk.BOTH, expand=True)
        sidebar = ttk.Frame(panes, padding=(12, 10, 8, 10), width=280)
        sidebar.columnconfigure(0, weight=1)
        sidebar.rowconfigure(0, weight=3)
        sidebar.rowconfigure(1, weight=2)
        self.people = PeopleList(
            sidebar,
            on_open=self.open_user,
            on_block=self.ask_block,
            on_unblock=self.ask_unblock,
        )
        self.people.grid(row=0, sticky=tk.NSEW)
        self.rooms = RoomList(
            sidebar, on_open=self.open_room, on_create=self.ask_create_room, on_leave=self.leave
        )
        self.rooms.grid(row=1, sticky=tk.NSEW, pady=(14, 0))
        self.blocked = BlockedList(sidebar, on_unblock=self.ask_unblock)
        self.blocked.grid(row=2, sticky=tk.NSEW, pady=(14, 0))
        self.conversation = ConversationPane(
            panes,
            on_send=self.send_message,
            on_need_older=self.load_older,
            on_invite=self.ask_invite,
        )
        panes.add(sidebar, weight=0)
        panes.add(self.conversation, weight=1)
        self._show_me()

    # --- start and refresh

    def start(self) -> None:
        """Fetch the people, rooms and blocked users; the keyboard goes to the people list."""
        self.refresh()
        self.people.tree.focus_set()

    def refresh(self) -> None:
        """Ask the server for the people, the rooms and the blocked users (again)."""

        def lists(client: Client) -> tuple[list[User], list[Room], list[str]]:
            return client.users(), client.rooms(), client.blocked()

        self.app.bridge.call(lists, on_done=self._got_lists)

    def _got_lists(self, lists: tuple[list[User], list[Room], list[str]]) -> None:
        users, rooms, blocked = lists
        self.chat.set_users(users)
        self.chat.set_rooms(rooms)
        self._got_blocked(blocked)  # draws the people
        self._draw_rooms()
        self.loaded = True

    def _got_users(self, users: list[User]) -> None:
        self.chat.set_users(users)
        self._draw_people()

    def _got_blocked(self, names: list[str]) -> None:
        self.chat.set_blocked(names)
        self._draw_people()
        self.blocked.show(list(self.chat.blocked.values()))

    # --- server events

    def handle(self, event: Event) -> None:
        """Apply one event from the server (connection changes are the app's)."""
        if event.kind in ("message", "room_message") and event.message is not None:
            self._received(event.message)
        elif event.kind == "presence" and event.username is not None:
            if self.chat.presence(event.username, bool(event.online)):
                self._draw_people()
            else:
                self.app.bridge.call(lambda client: client.users(), on_done=self._got_users)
        elif event.kind == "rename" and event.old is not None and event.new is not None:
            self._renamed(event.old, event.new)
        elif event.kind == "room_created" and event.room is not None:
            self.chat.room_created(event.room, event.sender or "")
            self._draw_rooms()
        elif event.kind == "invite" and event.room is not None:
            self._invited(event.room, event.sender or "someone")

    def _received(self, message: Message) -> None:
        conversation = self.chat.conversation_of(message)
        if conversation.kind == "user" and conversation.key not in self.chat.users:
            # someone new (signed up since we listed): list again for the dot
            self.app.bridge.call(lambda client: client.users(), on_done=self._got_users)
        new = self.chat.receive(message)
        if conversation == self.chat.current and self.chat.transcript(conversation).loaded:
            self.conversation.append(message)
        self._draw_badges()
        if new and (conversation != self.chat.current or not self.app.window_focused()):
            title = (
                message.sender if message.room is None else f"{message.sender} in {message.room}"
            )
            body = message.body
            if len(body) > NOTIFY_CHARS:
                body = body[: NOTIFY_CHARS - 1] + "…"
            self.app.notify(title, body)

    def _renamed(self, old: str, new: str) -> None:
        was_me = self.chat.is_me(old)
        self.chat.rename(old, new)
        self._draw_people()
        self._draw_rooms()
        self.blocked.show(list(self.chat.blocked.values()))
        if was_me:
            self._show_me()
        current = self.chat.current
        if current is not None:
            self._draw_header()
            self.conversation.me = self.chat.me.username
            transcript = self.chat.transcript(current)
            if transcript.loaded:
                self.conversation.render(
                    transcript.ordered(), more_before=not transcript.complete, keep_view=True
                )
            if current.kind == "user":
                self.people.select(self.chat.title(current))

    def _invited(self, room: str, sender: str) -> None:
        Question(
            self.app.root,
            "Invitation",
            f"{sender} invites you to the room {room}. Join it now?",
            lambda yes: self.open_room(room) if yes else None,
            yes="Join",
            no="Not now",
        )

    # --- opening conversations

    def open_user(self, username: str, focus: bool = True) -> None:
        """Open the conversation with ``username``; ``focus``: the keyboard goes to the entry."""
        self._open(Conversation.with_user(username), focus)

    def open_room(self, name: str, focus: bool = True) -> None:
        """Open a room, joining it first if need be."""
        conversation = Conversation.in_room(name)
        room = self.chat.rooms.get(conversation.key)
        if room is not None and room.joined:
            self._open(conversation, focus)
            return
        self.app.bridge.call(
            lambda client: client.join(name),
            on_done=lambda room: self._joined(room, focus),
            on_error=self._join_failed,
        )

    def _joined(self, room: Room, focus: bool) -> None:
        self.chat.add_room(room)
        self.app.status.say(f"You joined {room.name}")
        self._open(Conversation.in_room(room.name), focus)

    def _join_failed(self, error: ChatError) -> None:
        self._draw_rooms()
        self.rooms.select(None)
        self.app.show_error(error, "Could not join the room")

    def _open(self, conversation: Conversation, focus: bool = True) -> None:
        if conversation == self.chat.current:
            if focus:
                self.conversation.entry.focus_set()
            return
        self.chat.open(conversation)
        self.conversation.show(
            self.chat.title(conversation),
            "",
            room=conversation.kind == "room",
            me=self.chat.me.username,
        )
        self._draw_header()
        self._draw_badges()
        self._select_current()
        transcript = self.chat.transcript(conversation)
        if transcript.loaded:
            self.conversation.render(transcript.ordered(), more_before=not transcript.complete)
        else:
            self._fetch(conversation, before=None)
        if focus:
            self.conversation.entry.focus_set()

    def load_older(self) -> None:
        """The user scrolled to the top: fetch the page before the oldest message shown."""
        current = self.chat.current
        if current is None:
            return
        transcript = self.chat.transcript(current)
        if transcript.loaded and not transcript.complete and transcript.oldest_id is not None:
            self._fetch(current, before=transcript.oldest_id)

    def _fetch(self, conversation: Conversation, before: int | None) -> None:
        if conversation in self._loading:
            return
        self._loading.add(conversation)
        name = self.chat.title(conversation)
        room = conversation.kind == "room"

        def fetch(client: Client) -> list[Message]:
            if room:
                return client.room_history(name, limit=PAGE, before=before)
            return client.history(name, limit=PAGE, before=before)

        def done(messages: list[Message]) -> None:
            self._loading.discard(conversation)
            self.chat.history_page(conversation, messages, PAGE, newest=before is None)
            if conversation == self.chat.current:
                transcript = self.chat.transcript(conversation)
                self.conversation.render(
                    transcript.ordered(),
                    more_before=not transcript.complete,
                    keep_view=before is not None,
                )

        def failed(error: ChatError) -> None:
            self._loading.discard(conversation)
            self.app.show_error(error, "Could not load the messages")

        self.app.bridge.call(fetch, on_done=done, on_error=failed)

    # --- writing

    def send_message(self, text: str) -> None:
        current = self.chat.current
        if current is None:
            return
        name, room = self.chat.title(current), current.kind == "room"
        # sending again what timed out reuses its id: if the first try did reach
        # the server, the server answers with that message instead of a copy
        client_id = self._timed_out.pop((current, text), None) or new_client_id()

        def post(client: Client) -> Message:
            if room:
                return client.send_room(name, text, client_id=client_id)
            return client.send(name, text, client_id=client_id)

        def failed(error: ChatError) -> None:
            if error.code == "timeout":
                self._timed_out[(current, text)] = client_id
            self.conversation.restore(text)
            self.app.show_error(error, "Message not sent")

        self.app.bridge.call(post, on_done=self._sent, on_error=failed)

    def _sent(self, message: Message) -> None:
        conversation = self.chat.conversation_of(message)
        self.chat.receive(message)
        if conversation == self.chat.current and self.chat.transcript(conversation).loaded:
            self.conversation.append(message)

    # --- rooms

    def ask_create_room(self) -> None:
        Prompt(self.app.root, "Create room", "Name of the new room:", self.create_room, ok="Create")

    def create_room(self, name: str) -> None:
        self.app.bridge.call(
            lambda client: client.create_room(name),
            on_done=self._created,
            on_error=lambda error: self.app.show_error(error, "Could not create the room"),
        )

    def _created(self, room: Room) -> None:
        self.chat.add_room(room)
        self._draw_rooms()
        self._open(Conversation.in_room(room.name))

    def leave(self, name: str) -> None:
        def left(_: None) -> None:
            was_open = self.chat.current == Conversation.in_room(name)
            self.chat.left(name)
            self._draw_rooms()
            if was_open:
                self.conversation.close()
                self._select_current()
            self.app.status.say(f"You left {name}")

        self.app.bridge.call(lambda client: client.leave(name), on_done=left)

    def ask_invite(self) -> None:
        current = self.chat.current
        if current is None or current.kind != "room":
            return
        room = self.chat.title(current)

        def invite(username: str) -> None:
            self.app.bridge.call(
                lambda client: client.invite(room, username),
                on_done=lambda _: self.app.status.say(f"Invitation to {room} sent to {username}"),
                on_error=lambda error: self.app.show_error(error, "Could not invite"),
            )

        Prompt(self.app.root, f"Invite to {room}", "Username to invite:", invite, ok="Invite")

    # --- account

    def ask_rename(self) -> None:
        Prompt(
            self.app.root,
            "Change username",
            "Your new username:",
            self.rename,
            initial=self.chat.me.username,
            ok="Change",
        )

    def rename(self, username: str) -> None:
        old = self.chat.me.username

        def renamed(user: User) -> None:
            if self.chat.is_me(old):
                self._renamed(old, user.username)
            self.app.status.say(f"You are now {user.username}")

        def failed(error: ChatError) -> None:
            if error.code == "username_taken":
                taken = f'The username "{username}" is already taken.'
                Notice(self.app.root, "Could not change your username", taken)
            else:
                self.app.show_error(error, "Could not change your username")

        self.app.bridge.call(lambda client: client.rename(username), renamed, failed)

    def ask_block(self, initial: str | None = None) -> None:
        if initial is None:
            current = self.chat.current
            initial = self.chat.title(current) if current and current.kind == "user" else ""
        Prompt(
            self.app.root,
            "Block a user",
            "Username to block:",
            self.block,
            initial=initial,
            ok="Block",
        )

    def ask_unblock(self, initial: str | None = None) -> None:
        if initial is None:
            names = list(self.chat.blocked.values())
            initial = names[0] if len(names) == 1 else ""
        Prompt(
            self.app.root,
            "Unblock a user",
            "Username to unblock:",
            self.unblock,
            initial=initial,
            ok="Unblock",
        )

    def block(self, username: str) -> None:
        self._set_blocked(username, True)

    def unblock(self, username: str) -> None:
        self._set_blocked(username, False)

    def _set_blocked(self, username: str, blocked: bool) -> None:
        verb = "block" if blocked else "unblock"

        def work(client: Client) -> list[str]:
            (client.block if blocked else client.unblock)(username)
            return client.blocked()

        def done(names: list[str]) -> None:
            self._got_blocked(names)
            self.app.status.say(f"You {verb}ed {username}")

        self.app.bridge.call(
            work,
            on_done=done,
            on_error=lambda error: self.app.show_error(error, f"Could not {verb}"),
        )

    def logout(self) -> None:
        username = self.chat.me.username
        self.logout_button.configure(state=tk.DISABLED)
        self.app.bridge.call(
            lambda client: client.logout(),
            on_done=lambda _: self.app.show_login(username),
            on_error=lambda _: self.app.show_login(username),
        )

    # --- drawing

    def restyle(self) -> None:
        """Redraw what carries theme colours of its own (after a light/dark switch)."""
        self.dark.set(self.app.dark)
        self.people.restyle()
        self.rooms.restyle()
        self.conversation.restyle()
        self._show_me()
        self._draw_header()

    def _show_me(self) -> None:
        self.me_label.configure(
            text=f" {self.chat.me.username}", image=ttk.Icon("person-circle", 18, "primary")
        )
        self.app.set_title(self.chat.me.username)

    def _draw_header(self) -> None:
        current = self.chat.current
        if current is None:
            return
        title = self.chat.title(current)
        if current.kind == "room":
            room = self.chat.rooms.get(current.key)
            members = room.members if room else 0
            subtitle = f"{members} member" + ("" if members == 1 else "s")
        else:
            user = self.chat.users.get(current.key)
            subtitle = "online" if user and user.online else "offline"
            if self.chat.is_blocked(title):
                subtitle += " · blocked"
        self.conversation.set_header(title, subtitle, room=current.kind == "room")

    def _draw_people(self) -> None:
        unread = {c.key: n for c, n in self.chat.unread.items() if c.kind == "user"}
        self.people.show(self.chat.people(), unread, set(self.chat.blocked))
        self._draw_header()

    def _draw_rooms(self) -> None:
        unread = {c.key: n for c, n in self.chat.unread.items() if c.kind == "room"}
        self.rooms.show(self.chat.room_list(), unread)
        self._select_current()

    def _draw_badges(self) -> None:
        self._draw_people()
        self._draw_rooms()

    def _select_current(self) -> None:
        current = self.chat.current
        if current is not None and current.kind == "user":
            self.people.select(self.chat.title(current))
        else:
            self.people.select(None)
        if current is not None and current.kind == "room":
            self.rooms.select(self.chat.title(current))
        else:
            self.rooms.select(None)
