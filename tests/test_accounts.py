"""Sign-up, login, presence, rename and blocks, end to end against a real server."""

from __future__ import annotations

import sqlite3

import pytest

from libimchat import ChatError, Client, Server
from tests.helpers import drain, signup, wait_for


def test_signup_then_login_returns_the_user(connect) -> None:
    client = connect()
    client.signup("YASSINE", "pw", first_name="yassine", last_name="ouabou", phone="0633217608")
    user = client.login("YASSINE", "pw")
    assert (user.username, user.first_name, user.last_name, user.online) == (
        "YASSINE",
        "yassine",
        "ouabou",
        True,
    )
    assert client.user == user


@pytest.mark.parametrize(
    ("fields", "missing"),
    [
        ({"first_name": ""}, "first_name"),
        ({"last_name": "  "}, "last_name"),
        ({"phone": ""}, "phone"),
        ({"username": ""}, "username"),
        ({"password": ""}, "password"),
    ],
)
def test_signup_names_each_missing_field(connect, fields, missing) -> None:
    details = {
        "username": "sam",
        "password": "pw",
        "first_name": "Sam",
        "last_name": "Lee",
        "phone": "0633217608",
    }
    details.update(fields)
    with pytest.raises(ChatError) as caught:
        connect().signup(details.pop("username"), details.pop("password"), **details)
    assert caught.value.code == "missing_fields"
    assert missing in caught.value.message


def test_signup_reports_every_missing_field_at_once(connect) -> None:
    with pytest.raises(ChatError) as caught:
        connect().signup("", "", first_name="", last_name="x", phone="")
    assert caught.value.code == "missing_fields"
    for field in ("username", "password", "first_name", "phone"):
        assert field in caught.value.message
    assert "last_name" not in caught.value.message


@pytest.mark.parametrize("username", ["a", "has space", "x" * 33, "bad/char", "_lead", "ta\tb"])
def test_signup_rejects_bad_usernames(connect, username) -> None:
    with pytest.raises(ChatError) as caught:
        signup(connect(), username)
    assert caught.value.code == "invalid"


@pytest.mark.parametrize("phone", ["12345", "phone", "+1234567890123456", "06-33-21-76-0x"])
def test_signup_rejects_bad_phones(connect, phone) -> None:
    with pytest.raises(ChatError) as caught:
        connect().signup("sam", "pw", first_name="Sam", last_name="Lee", phone=phone)
    assert caught.value.code == "invalid"
    assert "phone" in caught.value.message


def test_usernames_are_unique_in_any_letter_case_and_width(connect) -> None:
    client = connect()
    signup(client, "Ali")
    for taken in ("ALI", "ali", "ａｌｉ"):
        with pytest.raises(ChatError) as caught:
            signup(client, taken)
        assert caught.value.code == "username_taken"


def test_wrong_password_and_unknown_user_get_the_same_answer(connect) -> None:
    client = connect()
    signup(client, "ali", password="right")
    errors = []
    for username, password in (("ali", "wrong"), ("nobody", "right")):
        with pytest.raises(ChatError) as caught:
            client.login(username, password)
        errors.append((caught.value.code, caught.value.message))
    assert errors[0] == errors[1]
    assert errors[0][0] == "bad_credentials"


def test_login_is_case_insensitive_on_the_username(connect) -> None:
    client = connect()
    signup(client, "Ali")
    assert client.login("aLI", "pw").username == "Ali"


def test_passwords_are_stored_only_as_argon2id_hashes(server: Server, connect) -> None:
    signup(connect(), "ali", password="secret-password")
    db = sqlite3.connect(server.data_dir / "imchat.db")
    (stored,) = db.execute("SELECT password_hash FROM users").fetchone()
    assert stored.startswith("$argon2id$")
    dump = "\n".join(db.iterdump())
    assert "secret-password" not in dump


def test_requests_before_login_are_refused(connect) -> None:
    client = connect()
    for call in (client.users, client.rooms, client.blocked, lambda: client.send("x", "hi")):
        with pytest.raises(ChatError) as caught:
            call()
        assert caught.value.code == "not_logged_in"


def test_users_lists_everyone_with_presence(user, connect) -> None:
    ali = user("ali")
    signup(connect(), "sam")
    listed = {u.username: u.online for u in ali.users()}
    assert listed == {"ali": True, "sam": False}


def test_users_and_rooms_come_whole_however_many_pages_they_take(
    user, connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("libimchat.directory.LIST_PAGE", 2)  # the server's, in this process
    ali = user("ali")
    for name in ("sam", "Bea", "zed", "Kim"):
        signup(connect(), name)
    for room in ("Lobby", "art", "Zoo", "music", "b"):
        ali.create_room(room)
    assert [u.username for u in ali.users()] == ["ali", "Bea", "Kim", "sam", "zed"]
    assert [r.name for r in ali.rooms()] == ["art", "b", "Lobby", "music", "Zoo"]


def test_presence_events_on_login_and_logout(user, connect) -> None:
    ali = user("ali")
    sam_client = connect()
    signup(sam_client, "sam")
    sam_client.login("sam", "pw")
    event = wait_for(ali, lambda e: e.kind == "presence" and e.username == "sam")
    assert event.online is True
    sam_client.logout()
    event = wait_for(ali, lambda e: e.kind == "presence" and e.username == "sam")
    assert event.online is False
    assert {u.username: u.online for u in ali.users()}["sam"] is False


def test_one_user_on_two_clients_stays_online_until_both_leave(user, connect) -> None:
    ali = user("ali")
    sam1 = user("sam")
    sam2 = connect()
    sam2.login("sam", "pw")
    ali_users = lambda: {u.username: u.online for u in ali.users()}  # noqa: E731
    sam1.logout()
    assert ali_users()["sam"] is True
    sam2.logout()
    assert ali_users()["sam"] is False


def test_a_vanished_client_goes_offline_after_missed_heartbeats(user, server) -> None:
    ali = user("ali")
    # a client that stops without logging out: a bare link, closed abruptly
    ghost = Client(server.url)
    signup(ghost, "ghost")
    ghost.login("ghost", "pw")
    wait_for(ali, lambda e: e.kind == "presence" and e.username == "ghost" and e.online)
    ghost._link.close()  # no logout: the server must notice the silence
    event = wait_for(ali, lambda e: e.kind == "presence" and e.username == "ghost", timeout=5)
    assert event.online is False


def test_rename_is_live_for_everyone_and_frees_the_old_name(user, connect) -> None:
    ali = user("ali")
    sam = user("sam")
    ali.send("sam", "before the rename")
    ali.rename("SIM")
    event = wait_for(sam, lambda e: e.kind == "rename")
    assert (event.old, event.new) == ("ali", "SIM")
    assert ali.user is not None and ali.user.username == "SIM"
    names = {u.username for u in sam.users()}
    assert "SIM" in names and "ali" not in names
    assert [m.sender for m in sam.history("SIM")] == ["SIM"]
    other = connect()
    with pytest.raises(ChatError):
        other.login("ali", "pw")
    assert other.login("sim", "pw").username == "SIM"
    signup(other, "ali")  # the old name is free again


def test_rename_to_a_taken_name_is_refused(user) -> None:
    ali = user("ali")
    user("sam")
    with pytest.raises(ChatError) as caught:
        ali.rename("SAM")
    assert caught.value.code == "username_taken"
    ali.rename("ALI")  # a change of case of one's own name is fine
    assert ali.user is not None and ali.user.username == "ALI"


def test_block_and_unblock(user) -> None:
    ali = user("ali")
    sam = user("sam")
    ali.block("sam")
    assert ali.blocked() == ["sam"]
    with pytest.raises(ChatError) as caught:
        sam.send("ali", "can you hear me?")
    assert caught.value.code == "blocked"
    assert ali.history("sam") == []
    ali.unblock("sam")
    assert ali.blocked() == []
    sam.send("ali", "now?")
    assert wait_for(ali, lambda e: e.kind == "message").message.body == "now?"


def test_block_errors(user) -> None:
    ali = user("ali")
    with pytest.raises(ChatError) as caught:
        ali.block("nobody")
    assert caught.value.code == "no_such_user"
    with pytest.raises(ChatError) as caught:
        ali.block("ali")
    assert caught.value.code == "invalid"


def test_blocks_survive_renames(user) -> None:
    ali = user("ali")
    sam = user("sam")
    ali.block("sam")
    sam.rename("samuel")
    assert ali.blocked() == ["samuel"]
    with pytest.raises(ChatError) as caught:
        sam.send("ali", "it's me")
    assert caught.value.code == "blocked"
    drain(ali)


def test_names_are_found_with_spaces_around_them(user, connect) -> None:
    ali = user("ali")
    user("sam")
    assert connect().login("  ali ", "pw").username == "ali"
    assert ali.send(" sam", "hi").recipient == "sam"


def test_rename_returns_the_account_and_a_no_op_rename_announces_nothing(user) -> None:
    ali = user("ali")
    sam = user("sam")
    assert ali.rename("  ALI2 ").username == "ALI2"
    assert wait_for(sam, lambda e: e.kind == "rename").new == "ALI2"
    assert ali.rename("ALI2").username == "ALI2"
    assert [e for e in drain(sam) if e.kind == "rename"] == []


def test_a_users_clients_share_blocks_and_rooms(user, connect) -> None:
    ali1 = user("ali")
    ali2 = connect()
    ali2.login("ali", "pw")
    sam = user("sam")
    sam.create_room("Room1")
    ali1.block("sam")
    ali2.unblock("sam")  # the last word wins on every client of ali
    sent = sam.send("ali", "hello both")
    for client in (ali1, ali2):
        assert wait_for(client, lambda e: e.kind == "message").message == sent
    ali2.join("Room1")
    posted = sam.send_room("Room1", "room hello")
    for client in (ali1, ali2):
        assert wait_for(client, lambda e: e.kind == "room_message").message == posted
    ali1.block("sam")
    sam.send_room("Room1", "hidden from ali")
    for client in (ali1, ali2):
        assert [e for e in drain(client) if e.kind == "room_message"] == []
