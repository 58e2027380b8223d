"""What the main window knows, without Tk: people, rooms, transcripts, unread counts.

The window feeds it what the server says (lists, events, replies) and draws
from it; nothing here touches a widget or the network, so the rules (who is
listed first, where a message belongs, what counts as unread, what a rename
changes) live in one place.

Names are compared by the same key the server uses (NFKC, case-folded), so
"Ali" and "ALI" are one person.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from libimchat import Message, Room, User, name_key

ConversationKind = Literal["user", "room"]


@dataclass(frozen=True, slots=True)
class Conversation:
    """A direct conversation with a user, or a room; ``key`` is the name's key."""

    kind: ConversationKind
    key: str

    @classmethod
    def with_user(cls, username: str) -> Conversation:
        return cls("user", name_key(username))

    @classmethod
    def in_room(cls, room: str) -> Conversation:
        return cls("room", name_key(room))


@dataclass
class Transcript:
    """The messages of one conversation fetched so far, by id.

    ``loaded`` turns true with the first page of history. Messages that arrive
    before it are kept too: one may come while that page is on its way.
    ``complete`` means the server has nothing older.
    """

    messages: dict[int, Message] = field(default_factory=dict)
    loaded: bool = False
    complete: bool = False

    def ordered(self) -> list[Message]:
        return [self.messages[i] for i in sorted(self.messages)]

    @property
    def oldest_id(self) -> int | None:
        return min(self.messages) if self.messages else None


class ChatState:
    """The signed-in user's view of the chat.

    Args:
        me: the account signed in.
    """

    def __init__(self, me: User) -> None:
        self.me = me
        self.users: dict[str, User] = {}
        self.rooms: dict[str, Room] = {}
        self.blocked: dict[str, str] = {}  # key -> name as shown
        self.unread: Counter[Conversation] = Counter()
        self.transcripts: dict[Conversation, Transcript] = {}
        self.current: Conversation | None = None
        self._announced: set[int] = set()  # ids of the messages received as they came

    # --- people

    def is_me(self, username: str | None) -> bool:
        return username is not None and name_key(username) == name_key(self.me.username)

    def set_users(self, users: list[User]) -> None:
        self.users = {name_key(u.username): u for u in users if not self.is_me(u.username)}

    def people(self) -> list[User]:
        """Everyone but me: online first, then by name."""
        return sorted(self.users.values(), key=lambda u: (not u.online, name_key(u.username)))

    def presence(self, username: str, online: bool) -> bool:
        """Mark a user online or offline; ``False`` if the user is unknown (list again)."""
        if self.is_me(username):
            return True
        user = self.users.get(name_key(username))
        if user is None:
            return False
        self.users[name_key(username)] = dataclasses.replace(user, online=online)
        return True

    def set_blocked(self, names: list[str]) -> None:
        self.blocked = {name_key(n): n for n in names}

    def is_blocked(self, username: str) -> bool:
        return name_key(username) in self.blocked

    def rename(self, old: str, new: str) -> None:
        """A user changed name: everywhere the old name shows, the new one does."""
        old_key, new_key = name_key(old), name_key(new)
        if self.is_me(old):
            self.me = dataclasses.replace(self.me, username=new)
        user = self.users.pop(old_key, None)
        if user is not None:
            self.users[new_key] = dataclasses.replace(user, username=new)
        if self.blocked.pop(old_key, None) is not None:
            self.blocked[new_key] = new
        for key, room in self.rooms.items():
            if name_key(room.created_by) == old_key:
                self.rooms[key] = dataclasses.replace(room, created_by=new)
        for transcript in self.transcripts.values():
            for message_id, message in transcript.messages.items():
                transcript.messages[message_id] = _renamed(message, old_key, new)
        old_dm, new_dm = Conversation("user", old_key), Conversation("user", new_key)
        if old_dm in self.transcripts:
            self.transcripts[new_dm] = self.transcripts.pop(old_dm)
        if old_dm in self.unread:
            self.unread[new_dm] = self.unread.pop(old_dm)
        if self.current == old_dm:
            self.current = new_dm

    # --- rooms

    def set_rooms(self, rooms: list[Room]) -> None:
        self.rooms = {name_key(r.name): r for r in rooms}

    def room_list(self) -> list[Room]:
        """Rooms I am in first, then the others, by name."""
        return sorted(self.rooms.values(), key=lambda r: (not r.joined, name_key(r.name)))

    def add_room(self, room: Room) -> None:
        self.rooms[name_key(room.name)] = room

    def room_created(self, name: str, creator: str) -> None:
        if name_key(name) not in self.rooms:
            joined = self.is_me(creator)
            self.add_room(Room(name=name, created_by=creator, members=1, joined=joined, last_seq=0))

    def left(self, name: str) -> None:
        room = self.rooms.get(name_key(name))
        if room is not None:
            members = max(room.members - 1, 0)
            self.add_room(dataclasses.replace(room, joined=False, members=members))
        conversation = Conversation.in_room(name)
        self.transcripts.pop(conversation, None)
        self.unread.pop(conversation, None)
        if self.current == conversation:
            self.current = None

    # --- conversations

    def title(self, conversation: Conversation) -> str:
        """The name to show for a conversation."""
        if conversation.kind == "room":
            room = self.rooms.get(conversation.key)
            return room.name if room else conversation.key
        user = self.users.get(conversation.key)
        return user.username if user else conversation.key

    def conversation_of(self, message: Message) -> Conversation:
        if message.room is not None:
            return Conversation.in_room(message.room)
        peer = message.recipient if self.is_me(message.sender) else message.sender
        return Conversation.with_user(peer or "")

    def transcript(self, conversation: Conversation) -> Transcript:
        return self.transcripts.setdefault(conversation, Transcript())

    def open(self, conversation: Conversation) -> None:
        self.current = conversation
        self.unread.pop(conversation, None)

    def receive(self, message: Message) -> bool:
        """A message arrived (an event, or the reply to my send).

        Returns:
            ``True`` if it is news: not mine, and not announced before (my own
            room messages come back as events too). A message already shown
            with a page of history still is news: the page may have come
            first, while the user was looking elsewhere.
        """
        conversation = self.conversation_of(message)
        if message.id in self._announced:
            return False
        self._announced.add(message.id)
        self.transcript(conversation).messages.setdefault(message.id, message)
        mine = self.is_me(message.sender)
        if not mine and conversation != self.current:
            self.unread[conversation] += 1
        return not mine

    def history_page(
        self, conversation: Conversation, messages: list[Message], page: int, *, newest: bool
    ) -> None:
        """A page of history came: the ``newest`` one, or an older one (``before=``)."""
        transcript = self.transcript(conversation)
        if newest and len(messages) == page:
            # what arrived before and is older than this full page would leave
            # a gap: the pages before it bring it back in order
            first = messages[0].id
            transcript.messages = {i: m for i, m in transcript.messages.items() if i >= first}
        for message in messages:
            transcript.messages[message.id] = message
        transcript.loaded = True
        if len(messages) < page:
            transcript.complete = True


def _renamed(message: Message, old_key: str, new: str) -> Message:
    changes: dict[str, str] = {}
    if name_key(message.sender) == old_key:
        changes["sender"] = new
    if message.recipient is not None and name_key(message.recipient) == old_key:
        changes["recipient"] = new
    return dataclasses.replace(message, **changes) if changes else message  # type: ignore[arg-type]
