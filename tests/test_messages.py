"""Direct messages: durable acks, live delivery, offline delivery, idempotent resends."""

from __future__ import annotations

import sqlite3
import uuid

import pytest

from libimchat import ChatError, Server
from libimchat.validation import MAX_BODY
from tests.helpers import drain, wait_for


def test_a_message_is_stored_before_send_returns(user, server: Server) -> None:
    ali = user("ali")
    user("sam")
    message = ali.send("sam", "Hi")
    assert (message.sender, message.recipient, message.room, message.body) == (
        "ali",
        "sam",
        None,
        "Hi",
    )
    db = sqlite3.connect(server.data_dir / "imchat.db")
    assert db.execute("SELECT body FROM messages WHERE id = ?", [message.id]).fetchone() == ("Hi",)


def test_delivered_live_to_every_client_of_the_recipient(user, connect) -> None:
    ali = user("ali")
    sam1 = user("sam")
    sam2 = connect()
    sam2.login("sam", "pw")
    sent = ali.send("sam", "to both of you")
    for client in (sam1, sam2):
        event = wait_for(client, lambda e: e.kind == "message")
        assert event.message == sent


def test_the_senders_other_clients_see_the_message_too(user, connect) -> None:
    ali1 = user("ali")
    ali2 = connect()
    ali2.login("ali", "pw")
    user("sam")
    sent = ali1.send("sam", "from my phone")
    assert wait_for(ali2, lambda e: e.kind == "message").message == sent
    assert [e for e in drain(ali1) if e.kind == "message"] == []


def test_offline_messages_arrive_at_next_login_in_order(user, connect) -> None:
    ali = user("ali")
    sam = user("sam")
    sam.logout()
    sent = [ali.send("sam", f"message {i}") for i in range(5)]
    later = connect()
    later.login("sam", "pw")
    received = [wait_for(later, lambda e: e.kind == "message").message for _ in sent]
    assert received == sent
    assert [e for e in drain(later) if e.kind == "message"] == []


def test_messages_seen_once_are_not_delivered_again_at_next_login(user, connect) -> None:
    ali = user("ali")
    sam = user("sam")
    ali.send("sam", "first")
    wait_for(sam, lambda e: e.kind == "message")
    sam.close()  # the close acknowledges what this client has seen
    ali.send("sam", "second")
    later = connect()
    later.login("sam", "pw")
    events = [e for e in drain(later, quiet=0.6) if e.kind == "message"]
    assert [e.message.body for e in events] == ["second"]


def test_history_is_oldest_first_and_pages_backwards(user) -> None:
    ali = user("ali")
    sam = user("sam")
    sent = [ali.send("sam", f"m{i}") if i % 2 else sam.send("ali", f"m{i}") for i in range(7)]
    assert [m.body for m in ali.history("sam")] == [m.body for m in sent]
    last3 = sam.history("ali", limit=3)
    assert last3 == sent[-3:]
    previous = sam.history("ali", limit=3, before=last3[0].id)
    assert previous == sent[-6:-3]
    assert sam.history("ali", limit=3, before=sent[0].id) == []


def test_a_page_of_long_messages_is_cut_to_fit_in_a_frame(user) -> None:
    ali, sam = user("ali"), user("sam")
    sent = [ali.send("sam", f"{i:03d} ".ljust(MAX_BODY, "é")).id for i in range(60)]
    page = sam.history("ali", limit=60)  # 60 x 8,000 characters: over a page's byte budget
    assert 1 <= len(page) < 60
    assert [m.id for m in page] == sent[-len(page) :]  # the newest, next to the reader
    older = sam.history("ali", limit=60, before=page[0].id)
    assert [m.id for m in older] == sent[-len(page) - len(older) : -len(page)]


def test_history_errors(user) -> None:
    ali = user("ali")
    sam = user("sam")
    with pytest.raises(ChatError) as caught:
        ali.history("nobody")
    assert caught.value.code == "no_such_user"
    with pytest.raises(ChatError) as caught:
        ali.history("sam", limit=0)
    assert caught.value.code == "invalid"
    other = user("other").send("ali", "elsewhere")
    with pytest.raises(ChatError) as caught:
        sam.history("ali", before=other.id)  # not a message of this conversation
    assert caught.value.code == "invalid"


def test_a_resend_with_the_same_client_id_is_not_duplicated(user, server: Server) -> None:
    ali = user("ali")
    sam = user("sam")
    first = ali.send("sam", "once", client_id="c-1")
    again = ali.send("sam", "once", client_id="c-1")
    assert again == first
    assert len(sam.history("ali")) == 1
    assert [e.message for e in drain(sam) if e.kind == "message"] == [first]


def test_a_message_sent_without_a_client_id_gets_a_time_ordered_one(user) -> None:
    ali = user("ali")
    user("sam")
    first, second = ali.send("sam", "one"), ali.send("sam", "two")
    assert uuid.UUID(hex=first.client_id).version == 7
    assert first.client_id != second.client_id


@pytest.mark.parametrize(
    ("to", "body", "code"),
    [
        ("nobody", "hi", "no_such_user"),
        ("sam", "", "invalid"),
        ("sam", "   \n", "invalid"),
        ("sam", "x" * (MAX_BODY + 1), "invalid"),
    ],
)
def test_send_errors(user, to, body, code) -> None:
    ali = user("ali")
    user("sam")
    with pytest.raises(ChatError) as caught:
        ali.send(to, body)
    assert caught.value.code == code


def test_a_message_to_oneself_is_kept(user) -> None:
    ali = user("ali")
    note = ali.send("ali", "note to self")
    assert ali.history("ali") == [note]


def test_a_client_id_reused_for_another_message_is_refused(user) -> None:
    ali = user("ali")
    user("sam")
    user("bob")
    ali.send("sam", "first", client_id="same")
    for to, body in (("sam", "different text"), ("bob", "first")):
        with pytest.raises(ChatError) as caught:
            ali.send(to, body, client_id="same")
        assert caught.value.code == "invalid"


def test_what_messagepack_cannot_carry_is_refused_and_the_client_goes_on(user) -> None:
    ali = user("ali")
    user("sam")
    # a lone surrogate: text decoded with surrogateescape (a file name, say)
    with pytest.raises(ChatError) as refused:
        ali.send("sam", "caf\udce9")
    assert refused.value.code == "invalid"
    with pytest.raises(ChatError) as refused:
        ali.history("sam", limit=2**64)
    assert refused.value.code == "invalid"
    assert ali.send("sam", "café").body == "café"
