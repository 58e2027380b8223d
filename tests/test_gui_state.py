"""The main window's state on its own, without Tk or a server: ordering, unread, renames."""

from __future__ import annotations

import itertools

from imchat_gui.state import ChatState, Conversation

from libimchat import Message, Room, User

_ids = itertools.count(1)


def user(name: str, online: bool = True) -> User:
    return User(id=next(_ids), username=name, first_name="F", last_name="L", online=online)


def dm(sender: str, recipient: str, body: str = "hi", message_id: int | None = None) -> Message:
    number = message_id or next(_ids)
    return Message(
        id=number,
        seq=number,
        sender=sender,
        recipient=recipient,
        room=None,
        body=body,
        sent_at=0.0,
        client_id=str(number),
    )


def post(sender: str, room: str, message_id: int | None = None) -> Message:
    number = message_id or next(_ids)
    return Message(
        id=number,
        seq=number,
        sender=sender,
        recipient=None,
        room=room,
        body="hello room",
        sent_at=0.0,
        client_id=str(number),
    )


def test_people_are_online_first_then_by_name_and_never_me() -> None:
    chat = ChatState(user("Ali"))
    chat.set_users([user("ali"), user("zed"), user("Bob", online=False), user("cat")])
    assert [u.username for u in chat.people()] == ["cat", "zed", "Bob"]
    assert chat.presence("BOB", True)
    assert [u.username for u in chat.people()] == ["Bob", "cat", "zed"]
    assert not chat.presence("newcomer", True)  # unknown: the window lists again


def test_a_message_counts_as_unread_once_and_only_outside_the_open_conversation() -> None:
    chat = ChatState(user("ali"))
    bob, room = Conversation.with_user("bob"), Conversation.in_room("Lobby")
    chat.open(room)
    message = dm("bob", "ali")
    assert chat.receive(message)
    assert not chat.receive(message)  # the same message again (an event after a reply)
    assert chat.receive(post("bob", "LOBBY"))
    assert chat.unread == {bob: 1}
    assert not chat.receive(dm("ali", "bob"))  # mine: never new, never unread
    chat.open(bob)
    assert chat.unread == {}


def test_a_message_that_came_first_with_history_is_still_news_once() -> None:
    chat = ChatState(user("ali"))
    bob = Conversation.with_user("bob")
    chat.open(bob)
    message = dm("bob", "ali", "racing its event")
    chat.history_page(bob, [message], 50, newest=True)
    assert chat.receive(message)  # the event, after the page: notify if unfocused
    assert not chat.receive(message)
    assert chat.transcript(bob).ordered() == [message]


def test_a_full_first_page_drops_what_came_before_it_so_no_gap_is_left() -> None:
    chat = ChatState(user("ali"))
    bob = Conversation.with_user("bob")
    early = dm("bob", "ali", "early", message_id=5)
    chat.receive(early)
    page = [dm("bob", "ali", f"m{n}", message_id=n) for n in range(10, 13)]
    chat.history_page(bob, page, 3, newest=True)
    assert [m.id for m in chat.transcript(bob).ordered()] == [10, 11, 12]
    assert not chat.transcript(bob).complete
    chat.history_page(bob, [early], 3, newest=False)
    assert [m.id for m in chat.transcript(bob).ordered()] == [5, 10, 11, 12]
    assert chat.transcript(bob).complete


def test_a_message_arriving_while_the_first_page_loads_is_kept() -> None:
    chat = ChatState(user("ali"))
    bob = Conversation.with_user("bob")
    chat.open(bob)
    late = dm("bob", "ali", "while loading", message_id=20)
    chat.receive(late)
    chat.history_page(bob, [dm("bob", "ali", message_id=19)], 50, newest=True)
    assert [m.id for m in chat.transcript(bob).ordered()] == [19, 20]


def test_a_rename_moves_the_conversation_badges_and_names() -> None:
    chat = ChatState(user("ali"))
    chat.set_users([user("bob")])
    chat.set_blocked(["bob"])
    chat.add_room(Room(name="Lobby", created_by="bob", members=2, joined=True, last_seq=0))
    bob = Conversation.with_user("bob")
    chat.history_page(bob, [dm("bob", "ali", message_id=1)], 50, newest=True)
    chat.receive(dm("bob", "ali", message_id=2))
    chat.rename("bob", "Robert")
    robert = Conversation.with_user("robert")
    assert [u.username for u in chat.people()] == ["Robert"]
    assert chat.unread == {robert: 1}
    assert [m.sender for m in chat.transcript(robert).ordered()] == ["Robert", "Robert"]
    assert chat.is_blocked("ROBERT") and not chat.is_blocked("bob")
    assert chat.rooms["lobby"].created_by == "Robert"
    chat.rename("ali", "alison")
    assert chat.me.username == "alison"
    assert chat.transcript(robert).ordered()[0].recipient == "alison"


def test_leaving_the_open_room_closes_it() -> None:
    chat = ChatState(user("ali"))
    chat.room_created("Lobby", "ali")
    assert chat.rooms["lobby"].joined
    chat.room_created("Party", "bob")
    assert [r.name for r in chat.room_list()] == ["Lobby", "Party"]
    chat.open(Conversation.in_room("Lobby"))
    chat.left("Lobby")
    assert chat.current is None
    assert not chat.rooms["lobby"].joined
    assert [r.name for r in chat.room_list()] == ["Lobby", "Party"]
