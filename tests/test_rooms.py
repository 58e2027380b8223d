"""Rooms: create, list, join, leave, invite, post; ordered, gap-free delivery."""

from __future__ import annotations

import pytest

from libimchat import ChatError
from tests.helpers import drain, wait_for


def test_create_list_join_and_leave(user) -> None:
    ali = user("ali")
    sam = user("sam")
    room = ali.create_room("Room1")
    assert (room.name, room.created_by, room.members, room.joined) == ("Room1", "ali", 1, True)
    event = wait_for(sam, lambda e: e.kind == "room_created")
    assert (event.room, event.sender) == ("Room1", "ali")
    assert [(r.name, r.joined) for r in sam.rooms()] == [("Room1", False)]
    assert sam.join("room1").members == 2  # names match in any case
    assert [(r.name, r.members, r.joined) for r in sam.rooms()] == [("Room1", 2, True)]
    sam.leave("Room1")
    assert [(r.name, r.members, r.joined) for r in sam.rooms()] == [("Room1", 1, False)]


def test_room_errors(user) -> None:
    ali = user("ali")
    ali.create_room("Room1")
    cases = [
        (lambda: ali.create_room("ROOM1"), "room_exists"),
        (lambda: ali.create_room(""), "missing_fields"),
        (lambda: ali.create_room("bad/name"), "invalid"),
        (lambda: ali.join("nowhere"), "no_such_room"),
        (lambda: ali.send_room("nowhere", "hi"), "no_such_room"),
        (lambda: ali.room_history("nowhere"), "no_such_room"),
        (lambda: ali.invite("Room1", "nobody"), "no_such_user"),
    ]
    for call, code in cases:
        with pytest.raises(ChatError) as caught:
            call()
        assert caught.value.code == code


def test_posting_needs_membership(user) -> None:
    ali = user("ali")
    sam = user("sam")
    ali.create_room("Room1")
    with pytest.raises(ChatError) as caught:
        sam.send_room("Room1", "let me in")
    assert caught.value.code == "not_member"


def test_room_messages_reach_every_member_once_in_order(user) -> None:
    ali = user("ali")
    sam = user("sam")
    bob = user("bob")
    ali.create_room("Room1")
    sam.join("Room1")
    bob.join("Room1")
    sent = [c.send_room("Room1", f"m{i}") for i, c in enumerate([ali, sam, bob] * 4)]
    assert [m.seq for m in sent] == list(range(1, 13))
    for client in (ali, sam, bob):
        got = [wait_for(client, lambda e: e.kind == "room_message").message for _ in sent]
        assert got == sent
        assert [e for e in drain(client) if e.kind == "room_message"] == []
    assert ali.room_history("Room1") == sent
    assert ali.room_history("Room1", limit=2, before=sent[5].id) == sent[3:5]


def test_a_member_who_left_gets_no_more_room_messages(user) -> None:
    ali = user("ali")
    sam = user("sam")
    ali.create_room("Room1")
    sam.join("Room1")
    sam.leave("Room1")
    ali.send_room("Room1", "are you there?")
    assert [e for e in drain(sam) if e.kind == "room_message"] == []


def test_room_messages_from_blocked_users_are_hidden(user) -> None:
    ali = user("ali")
    sam = user("sam")
    bob = user("bob")
    ali.create_room("Room1")
    sam.join("Room1")
    bob.join("Room1")
    ali.block("sam")
    sam.send_room("Room1", "from sam")
    bob.send_room("Room1", "from bob")
    got = [e.message.body for e in drain(ali) if e.kind == "room_message"]
    assert got == ["from bob"]


def test_invites_reach_the_guest_unless_blocked(user) -> None:
    ali = user("ali")
    sam = user("sam")
    bob = user("bob")
    ali.create_room("Room1")
    ali.invite("Room1", "sam")
    event = wait_for(sam, lambda e: e.kind == "invite")
    assert (event.room, event.sender) == ("Room1", "ali")
    bob.block("ali")
    ali.invite("Room1", "bob")
    assert [e for e in drain(bob) if e.kind == "invite"] == []


def test_inviting_needs_membership(user) -> None:
    ali = user("ali")
    user("sam")
    bob = user("bob")
    ali.create_room("Room1")
    with pytest.raises(ChatError) as caught:
        bob.invite("Room1", "sam")
    assert caught.value.code == "not_member"


def test_a_member_who_just_joined_misses_nothing_of_a_burst(user) -> None:
    ali = user("ali")
    sam = user("sam")
    ali.create_room("Room1")
    sam.join("Room1")  # the SUB subscription may not have reached the server yet
    sent = [ali.send_room("Room1", f"burst {i}") for i in range(50)]
    got = [wait_for(sam, lambda e: e.kind == "room_message").message for _ in sent]
    assert got == sent
    assert [e for e in drain(sam) if e.kind == "room_message"] == []


def test_any_spelling_of_a_room_name_joins_and_leaves_it(user) -> None:
    ali = user("ali")
    sam = user("sam")
    ali.create_room("Room1")
    sam.join("ROOM1")
    posted = ali.send_room("room1", "hello")
    assert wait_for(sam, lambda e: e.kind == "room_message").message == posted
    sam.leave("rOoM1")
    ali.send_room("Room1", "gone?")
    assert [e for e in drain(sam) if e.kind == "room_message"] == []
