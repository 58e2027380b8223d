"""Look-alike names: the skeleton of a name, and the server refusing a new name that looks taken."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libimchat import ChatError
from libimchat.confusables import skeleton
from libimchat.validation import name_key
from tests.helpers import logged_in, signup, start_server

CYRILLIC_A, CYRILLIC_E, CYRILLIC_O = "\u0430", "\u0435", "\u043e"


@pytest.mark.parametrize(
    ("name", "look_alike"),
    [
        ("alice", f"{CYRILLIC_A}lice"),
        ("steve", f"st{CYRILLIC_E}v{CYRILLIC_E}"),
        ("bob", f"b{CYRILLIC_O}b"),
        ("mary", "rnary"),  # confusables.txt maps "m" to "rn"
        ("bob", "b0b"),  # "0" to "O", whose key is "o"
        ("lee", "1ee"),  # "1" to "l"
        ("mary", "ｍａｒｙ"),  # full-width
        ("ALICE", f"{CYRILLIC_A}lice"),  # any letter case
        ("Dev Talk", "dev ta1k"),
    ],
)
def test_look_alikes_share_a_skeleton(name: str, look_alike: str) -> None:
    assert skeleton(name) == skeleton(look_alike)


@pytest.mark.parametrize(("name", "other"), [("alice", "alina"), ("mary", "many"), ("bob", "bib")])
def test_different_names_have_different_skeletons(name: str, other: str) -> None:
    assert skeleton(name) != skeleton(other)


def test_a_skeleton_is_not_a_display_form() -> None:
    assert skeleton("Mary") == "rnary"


names = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)


@given(names)
def test_skeleton_is_idempotent(name: str) -> None:
    assert skeleton(skeleton(name)) == skeleton(name)


@given(names, st.sampled_from([str.upper, str.lower, str.title, lambda s: f"  {s} "]))
def test_names_with_one_key_have_one_skeleton(name: str, spell) -> None:
    other = spell(name)
    if name_key(other) == name_key(name):
        assert skeleton(other) == skeleton(name)


# --- the server


def test_a_look_alike_signup_is_taken_and_the_original_still_logs_in(connect) -> None:
    client = connect()
    signup(client, "alice")
    with pytest.raises(ChatError) as caught:
        signup(client, f"{CYRILLIC_A}lice")
    assert caught.value.code == "username_taken"
    assert "looks like 'alice'" in caught.value.message
    assert client.login("alice", "pw").username == "alice"
    assert [u.username for u in client.users()] == ["alice"]


def test_a_rename_to_a_look_alike_of_someone_else_is_taken(user) -> None:
    user("mary")
    bob = user("bob")
    with pytest.raises(ChatError) as caught:
        bob.rename("rnary")
    assert caught.value.code == "username_taken"
    # a look-alike of your own name is fine
    assert bob.rename(f"B{CYRILLIC_O}B").username == f"B{CYRILLIC_O}B"
    assert sorted(u.username for u in bob.users()) == [f"B{CYRILLIC_O}B", "mary"]


def test_a_renamed_user_frees_the_old_look_alikes(user, connect) -> None:
    bob = user("bob")
    bob.rename("robert")
    signup(connect(), "b0b")
    with pytest.raises(ChatError) as caught:
        signup(connect(), "r0bert")
    assert caught.value.code == "username_taken"


def test_a_look_alike_room_is_refused(user) -> None:
    ali = user("ali")
    ali.create_room("Lobby")
    with pytest.raises(ChatError) as caught:
        ali.create_room("L0bby")
    assert caught.value.code == "room_exists"
    assert "looks like 'Lobby'" in caught.value.message
    assert [r.name for r in ali.rooms()] == ["Lobby"]


def test_a_genuinely_different_name_is_accepted(user) -> None:
    alice = user("alice")
    user("alina")
    alice.create_room("Lobby")
    alice.create_room("Library")
    assert [u.username for u in alice.users()] == ["alice", "alina"]


def test_look_alikes_are_refused_after_a_restart(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data")
    with logged_in(server.url, "alice") as alice:
        alice.create_room("Lobby")
    server.stop()
    server = start_server(tmp_path / "data")
    try:
        with logged_in(server.url, "bob") as bob:
            with pytest.raises(ChatError) as caught:
                signup(bob, f"{CYRILLIC_A}lice")
            assert caught.value.code == "username_taken"
            with pytest.raises(ChatError) as caught:
                bob.create_room(f"L{CYRILLIC_O}bby")
            assert caught.value.code == "room_exists"
    finally:
        server.stop()
