"""Screenshots of the app's windows, for the README: ``python -m imchat_gui.screenshots OUTDIR``.

It starts a throwaway server, fills it with a few people and messages through
plain clients, then drives the real windows the way a user would (typing into
entries, pressing buttons) and saves each window as a PNG. Without a display
(``DISPLAY`` unset) it draws on an Xvfb of its own.

Writes ``login.png``, ``signup-error.png``, ``main.png``, ``room.png`` and
``room-dark.png``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from PIL import ImageGrab

from libimchat import Client, Server

from .app import ChatApp
from .dialogs import Notice, open_dialogs
from .display import VirtualDisplay
from .login import LoginView
from .main_window import MainView
from .signup import SignupView

DEADLINE = 10.0
PASSWORD = "correct horse"


def pump_until(app: ChatApp, condition: Callable[[], bool], what: str) -> None:
    """Run the Tk loop until ``condition()`` holds; fail after ``DEADLINE`` seconds."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"not {what} within {DEADLINE:g} s")
        app.root.update()
        time.sleep(0.01)  # a polling interval, not a guess at how long anything takes
    app.root.update()


def capture(app: ChatApp, path: Path) -> None:
    """Save the application's window (and the dialogs over it) as a PNG."""
    root = app.root
    root.update_idletasks()
    root.update()
    x, y = root.winfo_rootx(), root.winfo_rooty()
    box = (x, y, x + root.winfo_width(), y + root.winfo_height())
    ImageGrab.grab(bbox=box, xdisplay=os.environ["DISPLAY"]).save(path)
    print(f"wrote {path}")


def _person(url: str, username: str, first: str, *, online: bool = True) -> Client:
    client = Client(url, timeout=5)
    client.signup(username, PASSWORD, first_name=first, last_name="Doe", phone="0612345678")
    if online:
        client.login(username, PASSWORD)
    return client


@contextmanager
def _display() -> Iterator[None]:
    if os.environ.get("DISPLAY"):
        yield
        return
    with VirtualDisplay() as display:
        os.environ["DISPLAY"] = display.name
        try:
            yield
        finally:
            del os.environ["DISPLAY"]


def render(outdir: Path) -> None:
    """Draw every window into ``outdir``."""
    outdir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        stack.enter_context(_display())
        data = stack.enter_context(tempfile.TemporaryDirectory(prefix="imchat-shots-"))
        server = Server(data, port=0, password_profile="fast").start()
        stack.callback(server.stop)
        url = server.url
        bob = _person(url, "bob", "Bob")
        carol = _person(url, "carol", "Carol")
        for client in (bob, carol, _person(url, "alice", "Alice", online=False)):
            stack.callback(client.close)
        for name in ("dave", "erin"):
            _person(url, name, name.title(), online=False).close()
        bob.create_room("design")
        carol.join("design")
        bob.send_room("design", "Morning! The new icons are in the shared folder.")
        carol.send_room("design", "Love the chat bubble one.")
        bob.send_room("design", "Can we ship them with 0.2?")
        bob.create_room("release-0.2")

        app = ChatApp(url, notifier=lambda title, text: None)
        stack.callback(app.close)
        login = app.view
        assert isinstance(login, LoginView)
        login.username.insert(0, "alice")
        login.password.insert(0, PASSWORD)
        capture(app, outdir / "login.png")

        login.sign_up.invoke()
        signup = app.view
        assert isinstance(signup, SignupView)
        for entry, text in (
            (signup.first_name, "Alice"),
            (signup.last_name, "Martin"),
            (signup.phone, "06 12 ab"),
            (signup.username, "alice.m"),
            (signup.password, PASSWORD),
        ):
            entry.insert(0, text)
        signup.create.invoke()
        pump_until(app, lambda: bool(open_dialogs(app.root)), "showing the sign-up error")
        capture(app, outdir / "signup-error.png")
        for dialog in open_dialogs(app.root):
            if isinstance(dialog, Notice):
                dialog.button("OK").invoke()

        signup.back.invoke()
        login = app.view
        assert isinstance(login, LoginView)
        login.username.insert(0, "alice")
        login.password.insert(0, PASSWORD)
        login.sign_in.invoke()
        pump_until(app, lambda: isinstance(app.view, MainView), "signed in")
        main = app.view
        assert isinstance(main, MainView)
        pump_until(app, lambda: main.loaded, "listing the people")

        bob.send("alice", "Hi Alice, got a minute?")
        pump_until(app, lambda: main.people.badge("bob") == 1, "showing bob's message")
        main.people.tree.selection_set("bob")
        pump_until(app, lambda: main.conversation.bodies() != [], "opening the conversation")
        main.conversation.entry.insert("1.0", "Sure, what's up?")
        main.conversation.submit()
        pump_until(app, lambda: len(main.conversation.bodies()) == 2, "sending")
        bob.send("alice", "The CI is green again.")
        bob.send("alice", "Want to pair on the protocol docs this afternoon?\nI have notes.")
        carol.send("alice", "Lunch at noon?")
        pump_until(app, lambda: main.people.badge("carol") == 1, "showing carol's message")
        pump_until(app, lambda: len(main.conversation.bodies()) == 4, "showing bob's messages")
        main.conversation.entry.insert("1.0", "Sounds good, 3 pm?")
        capture(app, outdir / "main.png")

        main.rooms.tree.selection_set("design")
        pump_until(app, lambda: len(main.conversation.bodies()) == 3, "joining design")
        main.conversation.entry.delete("1.0", "end")
        main.conversation.entry.insert("1.0", "Yes! I'll put them in the release notes.")
        main.conversation.submit()
        pump_until(app, lambda: len(main.conversation.bodies()) == 4, "posting to design")
        carol.send_room("design", "Thanks Alice")
        pump_until(app, lambda: len(main.conversation.bodies()) == 5, "showing carol's post")
        capture(app, outdir / "room.png")

        main.theme_switch.invoke()
        pump_until(app, lambda: app.dark, "switching to the dark theme")
        capture(app, outdir / "room-dark.png")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m imchat_gui.screenshots OUTDIR", file=sys.stderr)
        return 2
    render(Path(args[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
