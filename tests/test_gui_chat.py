"""The main window against a real server: the GUI user talks with plain libimchat clients.

Each test signs a user in through the login window, then drives the real
widgets (list rows, the message entry, buttons, dialogs, the right-click menu)
and checks what the window shows, and what the other users receive.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from imchat_gui.app import ChatApp
from imchat_gui.dialogs import Prompt, Question
from imchat_gui.login import LoginView
from imchat_gui.main_window import PAGE, MainView
from imchat_gui.state import Conversation

from libimchat import ChatError, Client, Event, Server
from libimchat.keys import PUBLIC_FILE, SECRET_FILE
from tests.helpers import drain, wait_for

if TYPE_CHECKING:
    from tests.gui_support import Driver, Recorder

pytest_plugins = ["tests.gui_support"]

Peer = Callable[[str], Client]


def answer(ui: Driver, app: ChatApp, text: str) -> None:
    """Type ``text`` into the prompt that is open and press its default button."""
    prompt = ui.dialog(app, "a prompt")
    assert isinstance(prompt, Prompt)
    prompt.entry.delete(0, "end")
    prompt.entry.insert(0, text)
    prompt.ok.invoke()


def test_presence_dots_turn_green_and_grey_online_users_first(
    app: ChatApp, ui: Driver, chat_server: Server, peer: Peer
) -> None:
    zed = peer("zed")
    with Client(chat_server.url, timeout=5.0) as bob:
        bob.signup("bob", "pw", first_name="B", last_name="B", phone="0633217608")
        main = ui.sign_in(app, "ali")
        ui.pump(app, lambda: main.people.listed() == ["zed", "bob"], "zed (online) above bob")
        assert main.people.presence("zed") == "online"
        assert main.people.presence("bob") == "offline"

        bob.login("bob", "pw")
        ui.pump(app, lambda: main.people.presence("bob") == "online", "bob's dot green")
        assert main.people.listed() == ["bob", "zed"]  # both online: by name
        assert main.people.summary.cget("text") == "2 online"
    ui.pump(app, lambda: main.people.presence("bob") == "offline", "bob's dot grey")
    assert main.people.listed() == ["zed", "bob"]
    zed.close()
    ui.pump(app, lambda: main.people.presence("zed") == "offline", "zed's dot grey")
    assert main.people.summary.cget("text") == "0 online"


def message_from(sender: str, kind: str = "message") -> Callable[[Event], bool]:
    def match(event: Event) -> bool:
        return event.kind == kind and event.message is not None and event.message.sender == sender

    return match


def test_a_direct_message_goes_both_ways(app: ChatApp, ui: Driver, peer: Peer) -> None:
    bob = peer("bob")
    main = ui.sign_in(app, "ali")
    main.people.tree.selection_set("bob")
    ui.pump(app, lambda: main.chat.current is not None, "opening bob")
    assert main.conversation.title.cget("text").strip() == "bob"

    bob.send("ali", "Hi Ali")
    ui.pump(app, lambda: main.conversation.bodies() == ["Hi Ali"], "bob's message shown")
    assert "bob" in main.conversation.transcript()

    entry = main.conversation.entry
    entry.insert("1.0", "Hello Bob")
    ui.press(entry, "<Shift-Return>")  # a new line, not a send
    entry.insert("end", "second line")
    ui.press(entry, "<Return>")
    event = wait_for(bob, message_from("ali"))
    assert event.message is not None and event.message.body == "Hello Bob\nsecond line"
    ui.pump(app, lambda: len(main.conversation.bodies()) == 2, "my message shown")
    assert main.conversation.bodies()[1] == "Hello Bob\nsecond line"
    assert entry.get("1.0", "end-1c") == ""
    mine, theirs = main.conversation.rendered[1], main.conversation.rendered[0]
    assert main.conversation.own(mine) and not main.conversation.own(theirs)
    assert "You" in main.conversation.transcript()


def test_arrow_keys_open_conversations_and_enter_goes_to_the_entry(
    app: ChatApp, ui: Driver, peer: Peer
) -> None:
    peer("bob")
    peer("cat")
    main = ui.sign_in(app, "ali")
    tree = main.people.tree
    ui.pump(app, lambda: main.people.listed() == ["bob", "cat"], "both listed")
    assert app.root.focus_get() in (tree, None)  # None: Xvfb gave the app no focus yet
    ui.press(tree, "<Down>")
    ui.pump(app, lambda: main.chat.current is not None, "a conversation opened")
    opened = main.chat.current
    assert app.root.focus_get() == tree  # still moving through the list
    ui.press(tree, "<Up>" if opened == Conversation.with_user("cat") else "<Down>")
    ui.pump(app, lambda: main.chat.current != opened, "the other one opened")
    assert app.root.focus_get() == tree
    ui.press(tree, "<Return>")
    assert app.root.focus_get() == main.conversation.entry


def test_the_send_button_sends_and_a_refused_message_comes_back_to_the_entry(
    app: ChatApp, ui: Driver, peer: Peer
) -> None:
    bob = peer("bob")
    main = ui.sign_in(app, "ali")
    main.open_user("bob")
    main.conversation.entry.insert("1.0", "one")
    main.conversation.send_button.invoke()
    event = wait_for(bob, message_from("ali"))
    assert event.message is not None and event.message.body == "one"

    bob.block("ali")
    main.conversation.entry.insert("1.0", "two")
    main.conversation.send_button.invoke()
    error = ui.dialog(app, "the refusal")
    assert error.title() == "Message not sent"
    assert "does not accept your messages" in error.message
    assert main.conversation.entry.get("1.0", "end-1c") == "two"


def test_history_loads_on_open_and_more_on_scrolling_up(
    app: ChatApp, ui: Driver, chat_server: Server, peer: Peer
) -> None:
    bob = peer("bob")
    with Client(chat_server.url, timeout=5.0) as setup:
        setup.signup("ali", "pw", first_name="A", last_name="B", phone="0633217608")
    for n in range(PAGE + 20):
        bob.send("ali", f"message {n}")
    main = ui.sign_in(app, "ali", new=False)
    main.open_user("bob")
    ui.pump(app, lambda: len(main.conversation.bodies()) == PAGE, "the newest page")
    assert main.conversation.bodies()[-1] == f"message {PAGE + 19}"
    assert main.conversation.text.yview()[1] == 1.0  # at the newest

    main.conversation.text.yview_moveto(0.0)  # the user scrolls to the top
    ui.pump(app, lambda: len(main.conversation.bodies()) == PAGE + 20, "the older page")
    assert main.conversation.bodies() == [f"message {n}" for n in range(PAGE + 20)]
    assert not main.conversation.more_before
    assert main.conversation.text.yview()[0] > 0.0  # the view stayed where it was


def test_a_room_is_created_joined_and_talked_in(
    app: ChatApp, ui: Driver, peer: Peer, chat_server: Server
) -> None:
    bob = peer("bob")
    bob.create_room("Lobby")
    bob.send_room("Lobby", "welcome")
    main = ui.sign_in(app, "ali")
    ui.pump(app, lambda: main.rooms.listed() == ["Lobby"], "the room listed")

    main.rooms.tree.selection_set("lobby")  # click-to-join
    ui.pump(app, lambda: main.conversation.bodies() == ["welcome"], "the room's history")
    assert main.chat.rooms["lobby"].joined
    assert main.rooms.leave.instate(["!disabled"])
    bob.send_room("Lobby", "hello ali")
    ui.pump(app, lambda: main.conversation.bodies()[-1:] == ["hello ali"], "bob's post")
    main.conversation.entry.insert("1.0", "hi all")
    ui.press(main.conversation.entry, "<Return>")
    got = wait_for(bob, message_from("ali", "room_message"))
    assert got.message is not None and got.message.body == "hi all"
    ui.settle(app, 0.2)
    assert main.conversation.bodies() == ["welcome", "hello ali", "hi all"]  # once, not twice

    main.rooms.create.invoke()
    answer(ui, app, "Design")
    ui.pump(app, lambda: main.chat.current == Conversation.in_room("Design"), "Design open")
    assert main.rooms.listed()[:2] == ["Design", "Lobby"]
    assert main.conversation.title.cget("text").strip() == "Design"

    main.rooms.tree.selection_set("lobby")
    ui.pump(app, lambda: main.conversation.title.cget("text").strip() == "Lobby", "Lobby open")
    main.rooms.leave.invoke()
    ui.pump(app, lambda: not main.chat.rooms["lobby"].joined, "Lobby left")
    assert not main.conversation.open
    with Client(chat_server.url, timeout=5.0) as look:
        look.signup("eve", "pw", first_name="E", last_name="E", phone="0633217608")
        look.login("eve", "pw")
        assert {r.name: r.members for r in look.rooms()} == {"Design": 1, "Lobby": 1}


def test_unread_badges_and_a_notification_for_a_closed_conversation(
    app: ChatApp, ui: Driver, peer: Peer, notifier: Recorder
) -> None:
    bob, cat = peer("bob"), peer("cat")
    cat.create_room("Cats")
    main = ui.sign_in(app, "ali")
    main.open_user("cat")
    main.open_room("Cats")
    ui.pump(app, lambda: main.chat.rooms.get("cats") and main.chat.rooms["cats"].joined, "joined")
    main.open_user("cat")

    bob.send("ali", "psst")
    bob.send("ali", "are you there?")
    ui.pump(app, lambda: main.people.badge("bob") == 2, "bob's badge at 2")
    assert "unread" in main.people.tree.item("bob", "tags")
    cat.send_room("Cats", "meow")
    ui.pump(app, lambda: main.rooms.badge("Cats") == 1, "the room's badge")
    ui.pump(app, lambda: len(notifier.calls()) == 3, "three notifications")
    assert notifier.calls() == [("bob", "psst"), ("bob", "are you there?"), ("cat in Cats", "meow")]

    main.people.tree.selection_set("bob")
    ui.pump(app, lambda: main.conversation.bodies() == ["psst", "are you there?"], "bob open")
    assert main.people.badge("bob") == 0
    assert "unread" not in main.people.tree.item("bob", "tags")


def test_no_notification_for_the_open_conversation_of_a_focused_window(
    app: ChatApp, ui: Driver, peer: Peer, notifier: Recorder
) -> None:
    bob = peer("bob")
    main = ui.sign_in(app, "ali")
    main.open_user("bob")
    main.conversation.entry.focus_force()  # the window has the keyboard
    app.root.update()
    assert app.window_focused()
    bob.send("ali", "you see this already")
    ui.pump(app, lambda: main.conversation.bodies() == ["you see this already"], "shown")
    ui.settle(app)
    assert notifier.calls() == []
    assert main.people.badge("bob") == 0


def test_a_notification_for_the_open_conversation_when_the_window_is_not_focused(
    app: ChatApp, ui: Driver, peer: Peer, notifier: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    bob = peer("bob")
    main = ui.sign_in(app, "ali")
    main.open_user("bob")
    monkeypatch.setattr(app, "window_focused", lambda: False)  # the user is in another window
    bob.send("ali", "look here")
    ui.pump(app, notifier.calls, "the notification")
    assert notifier.calls() == [("bob", "look here")]
    ui.pump(app, lambda: main.conversation.bodies() == ["look here"], "the message shown")


def test_renames_show_everywhere(app: ChatApp, ui: Driver, peer: Peer) -> None:
    bob = peer("bob")
    main = ui.sign_in(app, "ali")
    main.open_user("bob")
    bob.send("ali", "hi")
    ui.pump(app, lambda: main.conversation.bodies() == ["hi"], "bob's message")

    bob.rename("robert")
    ui.pump(app, lambda: main.people.listed() == ["robert"], "robert listed")
    assert main.conversation.title.cget("text").strip() == "robert"
    assert "robert" in main.conversation.transcript()
    assert "bob" not in main.conversation.transcript()
    assert main.people.tree.selection() == ("robert",)

    main.rename_button.invoke()
    answer(ui, app, "alison")
    ui.pump(app, lambda: app.root.title() == "imchat — alison", "the new title")
    assert main.me_label.cget("text").strip() == "alison"
    event = wait_for(bob, lambda e: e.kind == "rename" and e.old == "ali")
    assert event.new == "alison"
    main.conversation.entry.insert("1.0", "still me")
    main.conversation.submit()
    ui.pump(app, lambda: len(main.conversation.bodies()) == 2, "sent under the new name")
    assert main.conversation.own(main.conversation.rendered[-1])


def test_a_taken_username_is_refused_on_rename(app: ChatApp, ui: Driver, peer: Peer) -> None:
    peer("bob")
    main = ui.sign_in(app, "ali")
    main.rename_button.invoke()
    answer(ui, app, "BOB")
    assert ui.dialog(app, "the refusal").message == 'The username "BOB" is already taken.'
    assert app.root.title() == "imchat — ali"


def test_blocking_from_the_right_click_menu_stops_messages(
    app: ChatApp, ui: Driver, peer: Peer
) -> None:
    bob = peer("bob")
    bob.create_room("Lobby")
    main = ui.sign_in(app, "ali")
    main.open_room("Lobby")
    ui.pump(app, lambda: main.conversation.title.cget("text").strip() == "Lobby", "in Lobby")
    ui.pump(app, lambda: main.people.listed() == ["bob"], "bob listed")

    tree = main.people.tree
    tree.see("bob")
    box = tree.bbox("bob")
    assert box, "bob's row is not visible"
    x, y, _, height = box
    tree.event_generate("<Button-3>", x=x + 10, y=y + height // 2, rootx=100, rooty=100)
    menu = main.people.context_menu
    assert menu is not None
    menu.unpost()
    block = menu.index("Block bob…")
    assert block is not None
    menu.invoke(block)
    prompt = ui.dialog(app, "the block prompt")
    assert isinstance(prompt, Prompt) and prompt.entry.get() == "bob"
    prompt.ok.invoke()
    ui.pump(app, lambda: main.blocked.names == ["bob"], "bob in the blocked list")
    assert "blocked" in tree.item("bob", "tags")

    with pytest.raises(ChatError) as refused:
        bob.send("ali", "let me in")
    assert refused.value.code == "blocked"
    bob.send_room("Lobby", "you cannot hear me")
    ui.settle(app, 0.5)
    assert main.conversation.bodies() == []
    assert main.people.badge("bob") == 0

    main.unblock_button.invoke()
    prompt = ui.dialog(app, "the unblock prompt")
    assert isinstance(prompt, Prompt) and prompt.entry.get() == "bob"  # the only one blocked
    prompt.ok.invoke()
    ui.pump(app, lambda: main.blocked.names == [], "the blocked list empty")
    bob.send_room("Lobby", "back again")
    ui.pump(app, lambda: main.conversation.bodies() == ["back again"], "bob heard again")


def test_the_block_dialog_asks_the_username(app: ChatApp, ui: Driver, peer: Peer) -> None:
    peer("bob")
    main = ui.sign_in(app, "ali")
    main.block_button.invoke()
    answer(ui, app, "nobody")
    assert ui.dialog(app, "the refusal").title() == "Could not block"
    main.block_button.invoke()
    answer(ui, app, "BOB")
    ui.pump(app, lambda: main.blocked.names == ["bob"], "bob blocked")


def test_an_invitation_is_a_prompt_to_join(app: ChatApp, ui: Driver, peer: Peer) -> None:
    bob = peer("bob")
    bob.create_room("Party")
    main = ui.sign_in(app, "ali")
    bob.invite("Party", "ali")
    question = ui.dialog(app, "the invitation")
    assert isinstance(question, Question)
    assert question.message == "bob invites you to the room Party. Join it now?"
    question.yes.invoke()
    ui.pump(app, lambda: main.conversation.title.cget("text").strip() == "Party", "in Party")
    assert main.chat.rooms["party"].joined


def test_inviting_someone_to_the_open_room(app: ChatApp, ui: Driver, peer: Peer) -> None:
    bob = peer("bob")
    main = ui.sign_in(app, "ali")
    main.create_room("Party")
    ui.pump(app, lambda: main.conversation.invite.winfo_ismapped(), "the Invite button")
    main.conversation.invite.invoke()
    answer(ui, app, "bob")
    event = wait_for(bob, lambda e: e.kind == "invite")
    assert (event.room, event.sender) == ("Party", "ali")
    ui.pump(app, lambda: "Invitation to Party sent to bob" in app.status.notice.cget("text"), "")


def test_losing_the_server_shows_reconnecting_and_never_freezes(
    app: ChatApp, ui: Driver, chat_server: Server
) -> None:
    with Client(chat_server.url, timeout=5.0) as bob:
        bob.signup("bob", "pw", first_name="B", last_name="B", phone="0633217608")
    main = ui.sign_in(app, "ali")
    main.open_user("bob")
    chat_server.stop()
    ui.pump(app, lambda: app.status.connection == "reconnecting", "reconnecting shown")
    assert "reconnecting" in app.status.text
    main.conversation.entry.insert("1.0", "anyone?")
    main.conversation.submit()
    started = time.monotonic()
    ui.settle(app, 0.3)  # the send waits on the worker thread; the window goes on
    assert time.monotonic() - started < 1.0
    assert main.conversation.entry.get("1.0", "end-1c") == ""

    again = Server(
        chat_server.data_dir,
        port=chat_server.port,
        pub_port=chat_server.pub_port,
        heartbeat_interval=chat_server.heartbeat_interval,
        heartbeat_liveness=chat_server.heartbeat_liveness,
        password_profile="fast",
    ).start()
    try:
        ui.pump(app, lambda: app.status.connection == "connected", "connected again")
        assert isinstance(app.view, MainView)
        # the message waited in the library and went out once the server was back
        ui.pump(app, lambda: main.conversation.bodies() == ["anyone?"], "the message sent")
    finally:
        app.close()  # while the server is there to hear the logout
        again.stop()


def test_a_session_the_server_forgot_goes_back_to_sign_in(
    app: ChatApp, ui: Driver, chat_server: Server
) -> None:
    ui.sign_in(app, "ali")
    chat_server.stop()
    ui.pump(app, lambda: app.status.connection == "reconnecting", "reconnecting shown")
    elsewhere = chat_server.data_dir.parent / "elsewhere"
    elsewhere.mkdir()
    for name in (PUBLIC_FILE, SECRET_FILE):  # the same server (same keys) that lost its data
        shutil.copy(chat_server.data_dir / name, elsewhere / name)
    fresh = Server(
        elsewhere,
        port=chat_server.port,
        pub_port=chat_server.pub_port,
        heartbeat_interval=chat_server.heartbeat_interval,
        heartbeat_liveness=chat_server.heartbeat_liveness,
        password_profile="fast",
    ).start()
    try:
        ui.pump(app, lambda: isinstance(app.view, LoginView), "back at the login")
        assert ui.dialog(app).message == "Your session has ended. Please sign in again."
    finally:
        app.close()
        fresh.stop()


def test_the_theme_switches_between_light_and_dark(app: ChatApp, ui: Driver, peer: Peer) -> None:
    bob = peer("bob")
    main = ui.sign_in(app, "ali")
    main.open_user("bob")
    bob.send("ali", "hi")
    ui.pump(app, lambda: main.conversation.bodies() == ["hi"], "the message")
    light = main.conversation.text.cget("background")
    main.theme_switch.invoke()
    assert app.dark and main.dark.get()
    dark = main.conversation.text.cget("background")
    assert dark != light
    main.theme_switch.invoke()
    assert not app.dark
    assert main.conversation.text.cget("background") == light
    drain(bob, quiet=0.05)


def test_the_main_window_has_a_minimum_size(app: ChatApp, ui: Driver) -> None:
    ui.sign_in(app, "ali")
    width, height = app.root.minsize()
    assert width >= 700 and height >= 480
    app.root.geometry("300x200")
    ui.settle(app, 0.1)
    assert app.root.winfo_width() >= width
