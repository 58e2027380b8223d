"""Hypothesis strategies for libimchat's protocol: valid messages of every type, and garbage."""

from __future__ import annotations

import dataclasses
import typing
from types import UnionType
from typing import Any, Union

import msgpack
from hypothesis import strategies as st

from libimchat import protocol as p
from libimchat.models import Message

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# dataclasses of protocol.py that are only ever nested inside a message
RECORDS = {p.RoomMark}

_SCALARS: dict[Any, st.SearchStrategy[Any]] = {
    int: st.integers(INT64_MIN, INT64_MAX),
    # NaN is a valid float on the wire, but NaN != NaN would make equality meaningless
    float: st.floats(allow_nan=False),
    str: st.text(max_size=20),
    bool: st.booleans(),
}


def strategy_for(hint: Any) -> st.SearchStrategy[Any]:
    """Values of a field's type hint (scalars, optionals, unions, tuples, records)."""
    origin = typing.get_origin(hint)
    if origin in (Union, UnionType):
        return st.one_of([strategy_for(arg) for arg in typing.get_args(hint)])
    if hint is type(None):
        return st.none()
    if origin is tuple:
        item, ellipsis = typing.get_args(hint)
        assert ellipsis is Ellipsis, f"only tuple[X, ...] is supported, not {hint!r}"
        return st.lists(strategy_for(item), max_size=3).map(tuple)
    if dataclasses.is_dataclass(hint):
        hints = typing.get_type_hints(hint)
        fields = {f.name: strategy_for(hints[f.name]) for f in dataclasses.fields(hint)}
        return st.builds(typing.cast(type, hint), **fields)
    if hint in _SCALARS:
        return _SCALARS[hint]
    raise TypeError(f"no strategy for {hint!r}: teach strategy_for about it")


def example_of(hint: Any) -> Any:
    """A plain valid value of a hint (no hypothesis, so usable outside @given)."""
    origin = typing.get_origin(hint)
    if origin in (Union, UnionType):
        return example_of(typing.get_args(hint)[0])
    if origin is tuple:
        return (example_of(typing.get_args(hint)[0]),)
    if dataclasses.is_dataclass(hint):
        hints = typing.get_type_hints(hint)
        return typing.cast(type, hint)(
            **{f.name: example_of(hints[f.name]) for f in dataclasses.fields(hint)}
        )
    return {int: 7, float: 1.5, str: "x", bool: True}[hint]


def conforms(value: Any, hint: Any) -> bool:
    """Whether a decoded value has exactly the type its hint promises."""
    origin = typing.get_origin(hint)
    if origin in (Union, UnionType):
        return any(conforms(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is tuple:
        item = typing.get_args(hint)[0]
        return type(value) is tuple and all(conforms(v, item) for v in value)
    if dataclasses.is_dataclass(hint):
        hints = typing.get_type_hints(hint)
        return type(value) is hint and all(
            conforms(getattr(value, f.name), hints[f.name]) for f in dataclasses.fields(hint)
        )
    if hint is int:
        return type(value) is int and INT64_MIN <= value <= INT64_MAX
    return type(value) is hint


any_message = st.one_of([strategy_for(cls) for cls in p.MESSAGE_TYPES])


TYPE_NAMES = st.sampled_from(sorted(cls.__name__ for cls in p.MESSAGE_TYPES))
FIELD_NAMES = st.sampled_from(
    sorted(
        {f.name for cls in (*p.MESSAGE_TYPES, *RECORDS) for f in dataclasses.fields(cls)}
        | {f.name for cls in (Message, p.User, p.Room) for f in dataclasses.fields(cls)}
        | {"t"}
    )
)
EDGE_INTS = st.sampled_from([INT64_MIN, INT64_MAX, 2**63, 2**64 - 1, -1, 0])
leaf_garbage = st.one_of(
    st.none(),
    st.booleans(),
    # up to the largest MessagePack integer, beyond a signed 64-bit field
    st.integers(INT64_MIN, 2**64 - 1),
    EDGE_INTS,
    st.floats(),
    st.text(max_size=10),
    st.binary(max_size=10),
    TYPE_NAMES,
    st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=12)),
    st.builds(msgpack.Timestamp, st.integers(0, 2**34), st.integers(0, 999_999_999)),
)
garbage = st.recursive(
    leaf_garbage,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(FIELD_NAMES | st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)


def _mutate(draw: st.DrawFn, node: Any) -> Any:
    """One random change somewhere in a decoded MessagePack tree."""
    if isinstance(node, dict) and node:
        key = draw(st.sampled_from(list(node)))
        op = draw(st.sampled_from(["drop", "replace", "descend", "add", "retype", "whole"]))
        new = dict(node)
        if op == "drop":
            del new[key]
        elif op == "replace":
            new[key] = draw(garbage)
        elif op == "descend":
            new[key] = _mutate(draw, node[key])
        elif op == "add":
            new[draw(FIELD_NAMES)] = draw(garbage)
        elif op == "retype":
            new["t"] = draw(TYPE_NAMES | st.text(max_size=10) | garbage)
        else:
            return draw(garbage | st.just([node]))
        return new
    if isinstance(node, list) and node:
        index = draw(st.integers(0, len(node) - 1))
        op = draw(st.sampled_from(["drop", "replace", "descend", "add"]))
        new_list = list(node)
        if op == "drop":
            del new_list[index]
        elif op == "replace":
            new_list[index] = draw(garbage)
        elif op == "descend":
            new_list[index] = _mutate(draw, node[index])
        else:
            new_list.insert(index, draw(garbage))
        return new_list
    return draw(garbage)


@st.composite
def mutated_encodings(draw: st.DrawFn) -> bytes:
    """A valid message's encoding with one to three things broken (or, rarely, none)."""
    wire = msgpack.unpackb(p.encode(draw(any_message))[0])
    for _ in range(draw(st.integers(1, 3))):
        wire = _mutate(draw, wire)
    return typing.cast(bytes, msgpack.packb(wire, use_bin_type=True))
