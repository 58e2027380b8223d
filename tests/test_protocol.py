"""The wire codec alone, no sockets: every message round-trips, garbage is only a ProtocolError.

Strategies are built from the message dataclasses' type hints, so a new message
type or field is tested without touching this file (and an unknown kind of hint
fails loudly in :func:`strategy_for`).
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libimchat import protocol as p
from libimchat.errors import ProtocolError
from libimchat.models import Message
from libimchat.validation import name_key
from tests.strategies import (
    INT64_MAX,
    INT64_MIN,
    RECORDS,
    any_message,
    conforms,
    example_of,
    garbage,
    mutated_encodings,
    strategy_for,
)


def decode_or_reject(frames: list[bytes]) -> p.ProtocolMessage | None:
    """Decode; a rejection must be a ProtocolError coded bad_request, a success well-typed."""
    try:
        msg = p.decode(frames)
    except ProtocolError as exc:
        assert exc.code == "bad_request"
        return None
    assert type(msg) in p.MESSAGE_TYPES
    assert conforms(msg, type(msg)), msg
    return msg


BOUNDED = settings(max_examples=250, deadline=None)
PER_TYPE = settings(max_examples=40, deadline=None)


# --- the list of message types


def _dataclasses_in(hint: Any) -> set[type]:
    """The dataclasses a type hint mentions, at any depth."""
    if dataclasses.is_dataclass(hint):
        return {typing.cast(type, hint)}
    return {cls for arg in typing.get_args(hint) for cls in _dataclasses_in(arg)}


def test_message_types_cover_every_message_dataclass() -> None:
    defined = {
        obj
        for obj in vars(p).values()
        if isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__ == p.__name__
    }
    unlisted = defined - RECORDS - set(p.MESSAGE_TYPES)
    assert not unlisted, f"add {unlisted} to a union in MESSAGE_TYPES (or to RECORDS here)"
    assert set(p.MESSAGE_TYPES) <= defined
    requests, replies, pushes = (set(typing.get_args(u)) for u in (p.Request, p.Reply, p.Push))
    for cls in p.MESSAGE_TYPES:
        has_rid = "rid" in {f.name for f in dataclasses.fields(cls)}
        assert (cls in requests or cls in replies) == has_rid, cls
        assert (cls in pushes) != has_rid, cls
    assert not requests & replies
    assert len({cls.__name__ for cls in p.MESSAGE_TYPES}) == len(p.MESSAGE_TYPES)


def test_records_are_nested_in_messages_and_never_sent_alone() -> None:
    nested = {
        record
        for cls in p.MESSAGE_TYPES
        for hint in typing.get_type_hints(cls).values()
        for record in _dataclasses_in(hint)
    }
    for record in RECORDS:
        assert "rid" not in {f.name for f in dataclasses.fields(record)}
        assert record in nested
        assert record not in p.MESSAGE_TYPES


# --- round trips


@pytest.mark.parametrize("cls", p.MESSAGE_TYPES, ids=lambda cls: cls.__name__)
@PER_TYPE
@given(data=st.data())
def test_every_message_type_round_trips(cls: type, data: st.DataObject) -> None:
    msg = data.draw(strategy_for(cls))
    frames = p.encode(msg)
    assert len(frames) == 1 and isinstance(frames[0], bytes)
    assert p.decode(frames) == msg


@BOUNDED
@given(st.lists(strategy_for(p.Delivery), min_size=1, max_size=4), st.data())
def test_messages_sharing_a_record_encode_it_alike_and_never_a_stale_one(
    deliveries: list[p.Delivery], data: st.DataObject
) -> None:
    # a Sent and a Delivery of the same message, in a row, share its converted map
    for delivery in deliveries:
        rid = data.draw(st.integers(min_value=0, max_value=2**31))
        sent = p.Sent(rid=rid, message=delivery.message)
        assert p.decode(p.encode(sent)) == sent
        assert p.decode(p.encode(delivery)) == delivery
        # an equal message that is another object is converted anew, and alike
        copy = dataclasses.replace(delivery.message)
        assert p.decode(p.encode(p.Delivery(message=copy))) == delivery


@BOUNDED
@given(any_message)
def test_a_decoded_message_has_the_types_its_hints_promise(msg: Any) -> None:
    decoded = p.decode(p.encode(msg))
    assert conforms(decoded, type(decoded))


WITH_DEFAULTS = [
    cls
    for cls in p.MESSAGE_TYPES
    if any(f.default is not dataclasses.MISSING for f in dataclasses.fields(cls))
]


@pytest.mark.parametrize("cls", WITH_DEFAULTS, ids=lambda cls: cls.__name__)
def test_fields_with_defaults_may_be_left_out(cls: type) -> None:
    full = msgpack.unpackb(p.encode(example_of(cls))[0])
    defaults = {
        f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING
    }
    for name in defaults:
        del full[name]
    decoded = p.decode([msgpack.packb(full)])
    assert {name: getattr(decoded, name) for name in defaults} == defaults


def test_int_fields_hold_exactly_64_bit_signed_integers() -> None:
    for rid in (INT64_MIN, INT64_MAX):
        assert p.decode(p.encode(p.Ping(rid=rid, inbox_seen=0))) == p.Ping(rid=rid, inbox_seen=0)
    for rid in (2**63, 2**64 - 1, True, 1.0, "1", None):
        with pytest.raises(ProtocolError):
            p.decode([msgpack.packb({"t": "Ping", "rid": rid, "inbox_seen": 0})])


def test_an_int_is_accepted_where_a_float_is_expected_and_becomes_a_float() -> None:
    wire = msgpack.unpackb(p.encode(example_of(p.Welcome))[0])
    wire["heartbeat_interval"] = 2
    decoded = p.decode([msgpack.packb(wire)])
    assert isinstance(decoded, p.Welcome)
    assert type(decoded.heartbeat_interval) is float and decoded.heartbeat_interval == 2.0


# --- garbage in: a ProtocolError (code bad_request) and nothing else


@BOUNDED
@given(st.binary(max_size=200))
def test_arbitrary_bytes_are_rejected_as_bad_request(data: bytes) -> None:
    decode_or_reject([data])


@BOUNDED
@given(st.lists(st.binary(max_size=40), max_size=4))
def test_arbitrary_frame_lists_are_rejected_as_bad_request(frames: list[bytes]) -> None:
    decoded = decode_or_reject(frames)
    if len(frames) not in (1, 2):
        assert decoded is None


@BOUNDED
@given(garbage)
def test_any_messagepack_value_is_a_message_or_bad_request(value: Any) -> None:
    decode_or_reject([msgpack.packb(value, use_bin_type=True)])


@settings(max_examples=300, deadline=None)
@given(mutated_encodings(), st.binary(max_size=8))
def test_mutated_valid_encodings_are_a_message_or_bad_request(body: bytes, topic: bytes) -> None:
    decode_or_reject([body])
    decode_or_reject([topic, body])


HANDMADE_GARBAGE = {
    "empty": b"",
    "never-used byte": b"\xc1",
    "truncated": p.encode(p.Hello(rid=1, version=1, agent="x"))[0][:-1],
    "trailing byte": p.encode(p.Hello(rid=1, version=1, agent="x"))[0] + b"\x00",
    "int keys": msgpack.packb({1: 2}),
    "array key": msgpack.packb({(1, 2): 3}),
    "bytes type name": msgpack.packb({"t": b"Hello", "rid": 1, "version": 1, "agent": "x"}),
    "unknown type": msgpack.packb({"t": "Goodbye", "rid": 1}),
    "no type": msgpack.packb({"rid": 1, "version": 1, "agent": "x"}),
    "missing field": msgpack.packb({"t": "Hello", "rid": 1, "version": 1}),
    "array of 2**32-1 items": b"\xdd\xff\xff\xff\xff",
    "string of 2**32-1 bytes": b"\xdb\xff\xff\xff\xff",
    "map of 2**32-1 pairs": b"\xdf\xff\xff\xff\xff",
    "invalid UTF-8": b"\x81\xa1t\xa2\xff\xfe",
    # fixext 1 of type -1: a timestamp cannot be one byte long
    "bad timestamp": msgpack.packb({"t": "Ping", "inbox_seen": 0, "rid": None})[:-1]
    + b"\xd4\xff\x00",
    "user not a map": msgpack.packb(
        {"t": "UserList", "rid": 1, "users": [["id", 1, "username", "a"]]}
    ),
    "event of a non-event type": msgpack.packb(
        {"t": "EventPage", "rid": 1, "complete": True, "events": [{"t": "Hello", "rid": 1}]}
    ),
    "event not a map": msgpack.packb(
        {"t": "EventPage", "rid": 1, "complete": True, "events": ["PresenceChanged"]}
    ),
}


@pytest.mark.parametrize("data", HANDMADE_GARBAGE.values(), ids=HANDMADE_GARBAGE.keys())
def test_handmade_garbage_is_rejected_as_bad_request(data: bytes) -> None:
    with pytest.raises(ProtocolError) as raised:
        p.decode([data])
    assert raised.value.code == "bad_request"


def _nested_arrays(depth: int) -> bytes:
    """``[[[...[nil]...]]]``, written by hand: msgpack.packb refuses to nest this deep."""
    return b"\x91" * depth + b"\xc0"


@pytest.mark.parametrize("depth", [10, 500, 1000, 1020, 1024, 5000])
@pytest.mark.parametrize("where", ["type", "event type", "field"])
def test_deeply_nested_garbage_is_rejected_as_bad_request(where: str, depth: int) -> None:
    # msgpack itself gives up at 1024 levels (a StackError, turned into a ProtocolError);
    # just below that, Python's recursion limit is what the decoder must not trip over
    if where == "type":
        data = b"\x81\xa1t" + _nested_arrays(depth)
    elif where == "event type":
        page = {"t": "EventPage", "rid": 1, "complete": True, "events": [{"t": None}]}
        data = msgpack.packb(page)[:-1] + _nested_arrays(depth)  # replaces the trailing nil
    else:
        data = msgpack.packb({"t": "Hello", "rid": 1, "version": 1, "agent": None})
        data = data[:-1] + _nested_arrays(depth)
    with pytest.raises(ProtocolError) as raised:
        p.decode([data])
    assert raised.value.code == "bad_request"


# --- publications: the topic first, so that SUB sockets filter by prefix

room_names = st.text(
    st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=20
)


@BOUNDED
@given(strategy_for(Message), room_names)
def test_a_room_post_is_published_on_its_rooms_topic(message: Message, room: str) -> None:
    post = p.RoomPost(message=dataclasses.replace(message, room=room, recipient=None))
    frames = p.publication(post)
    assert frames[0] == b"room:" + name_key(room).encode() + b"\x00" == p.room_topic(room)
    assert len(frames) == 2
    assert p.decode(frames) == post


def test_a_rooms_topic_is_not_a_prefix_of_a_longer_rooms_topic() -> None:
    assert p.room_topic("a") == b"room:a\x00"
    assert not p.room_topic("ab").startswith(p.room_topic("a"))


def test_every_spelling_of_a_room_name_has_one_topic() -> None:
    assert p.room_topic("Room1") == p.room_topic("ROOM1") == p.room_topic(" room1 ")


@BOUNDED
@given(room_names, room_names)
def test_no_rooms_topic_is_a_prefix_of_another_rooms_or_the_global_one(a: str, b: str) -> None:
    if name_key(a) != name_key(b):
        assert not p.room_topic(b).startswith(p.room_topic(a))
    assert not p.room_topic(a).startswith(p.GLOBAL_TOPIC)
    assert not p.GLOBAL_TOPIC.startswith(p.room_topic(a))


SERVER_EVENTS = typing.get_args(p.ServerEvent)


def test_publications_are_room_posts_and_server_events() -> None:
    assert set(typing.get_args(p.Publication)) == {p.RoomPost, *SERVER_EVENTS}


@pytest.mark.parametrize("cls", SERVER_EVENTS, ids=lambda cls: cls.__name__)
@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_server_events_are_published_on_the_global_topic(cls: type, data: st.DataObject) -> None:
    event = data.draw(strategy_for(cls))
    frames = p.publication(event)
    assert frames == [p.GLOBAL_TOPIC, *p.encode(event)]
    assert p.decode(frames) == event
