"""Fixtures and helpers for the GUI tests: a virtual display, the app on a real server, pumping.

The GUI tests draw real Tk windows on an Xvfb started here (once per session)
and fail, not skip, when Xvfb is missing: CI installs it (.ci/run). They drive
the widgets as a user would and run the Tk loop with ``update()`` until what
they wait for shows, with a deadline.

Test modules load this file with ``pytest_plugins = ["tests.gui_support"]`` and
import nothing else from it at run time (an import would come before pytest
could rewrite its asserts).
"""

from __future__ import annotations

import gc
import os
import threading
import time
import tkinter as tk
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from imchat_gui.app import ChatApp
from imchat_gui.dialogs import Dialog, open_dialogs
from imchat_gui.display import VirtualDisplay
from imchat_gui.login import LoginView
from imchat_gui.main_window import MainView

from libimchat import Client, Server
from tests.helpers import signup

DEADLINE = 10.0
HEARTBEAT = 0.5  # seconds; the server is thought gone after LIVENESS silent beats
LIVENESS = 3


class Recorder:
    """A notifier that remembers what it was asked to show (it runs on another thread)."""

    def __init__(self) -> None:
        self.shown: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def __call__(self, title: str, text: str) -> None:
        with self._lock:
            self.shown.append((title, text))

    def calls(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self.shown)


@pytest.fixture(scope="session")
def display() -> Iterator[str]:
    """An Xvfb display for the whole session, in ``DISPLAY``."""
    try:
        virtual = VirtualDisplay().start()
    except RuntimeError as exc:
        pytest.fail(f"the GUI tests need Xvfb: {exc}")
    previous = os.environ.get("DISPLAY")
    os.environ["DISPLAY"] = virtual.name
    yield virtual.name
    if previous is None:
        del os.environ["DISPLAY"]
    else:
        os.environ["DISPLAY"] = previous
    virtual.stop()


@pytest.fixture
def chat_server(tmp_path: Path) -> Iterator[Server]:
    """A server on loopback whose heartbeats tolerate a busy test process.

    With the suite's quick heartbeats (0.6 s), a stall of the test process makes
    a client reconnect and send its pending request again; a sign-up sent twice
    then fails with username_taken.
    """
    server = Server(
        tmp_path / "data",
        port=0,
        heartbeat_interval=HEARTBEAT,
        heartbeat_liveness=LIVENESS,
        password_profile="fast",
    ).start()
    yield server
    server.stop()


@pytest.fixture
def notifier() -> Recorder:
    return Recorder()


@pytest.fixture
def make_app(
    display: str, chat_server: Server, notifier: Recorder
) -> Iterator[Callable[[], ChatApp]]:
    """Start the app on the test's server (one at a time: Tk has one root); closed at the end."""
    apps: list[ChatApp] = []

    def make() -> ChatApp:
        app = ChatApp(chat_server.url, notifier=notifier, timeout=5.0)
        apps.append(app)
        app.root.update()
        return app

    yield make
    for app in apps:
        app.close()
    apps.clear()
    gc.collect()  # free what is left of Tk here, on Tk's thread (see tests/conftest.py)


@pytest.fixture
def app(make_app: Callable[[], ChatApp]) -> ChatApp:
    return make_app()


@pytest.fixture
def peer(chat_server: Server) -> Iterator[Callable[[str], Client]]:
    """Logged-in plain clients: the people the GUI user talks to."""
    clients: list[Client] = []

    def make(username: str) -> Client:
        client = Client(chat_server.url, timeout=5.0)
        clients.append(client)
        signup(client, username)
        client.login(username, "pw")
        return client

    yield make
    for client in clients:
        client.close()


class Driver:
    """Drives the app like a user: presses keys, waits for what shows, finds dialogs."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def pump(self, app: ChatApp, until: Callable[[], object], what: str) -> None:
        """Run the Tk loop until ``until()`` is true; fail the test after ``DEADLINE`` seconds."""
        deadline = time.monotonic() + DEADLINE
        while True:
            app.root.update()
            if until():
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"not {what} within {DEADLINE} s")
            time.sleep(0.005)  # a polling interval, not a guess at how long anything takes

    def settle(self, app: ChatApp, seconds: float = 0.3) -> None:
        """Keep the loop running for a while: to see that something does NOT happen."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.root.update()
            time.sleep(0.005)

    def press(self, widget: tk.Misc, sequence: str) -> None:
        """A key press in ``widget``: Tk sends keys to the focused window, so focus it first."""
        widget.focus_force()
        widget.update()
        widget.event_generate(sequence)
        widget.update()

    def dialog(self, app: ChatApp, what: str = "a dialog") -> Dialog:
        """The newest open dialog, once there is one."""
        self.pump(app, lambda: open_dialogs(app.root), what)
        return open_dialogs(app.root)[-1]

    def no_dialog(self, app: ChatApp) -> None:
        self.pump(app, lambda: not open_dialogs(app.root), "closing the dialog")

    def sign_in(self, app: ChatApp, username: str, *, new: bool = True) -> MainView:
        """Sign ``username`` in through the login view (signed up first by a plain client)."""
        if new:
            with Client(self.server.url, timeout=5.0) as client:
                signup(client, username)
        view = app.view
        assert isinstance(view, LoginView)
        view.username.delete(0, "end")
        view.username.insert(0, username)
        view.password.insert(0, "pw")
        view.sign_in.invoke()
        self.pump(app, lambda: isinstance(app.view, MainView), "signed in")
        main = app.view
        assert isinstance(main, MainView)
        self.pump(app, lambda: main.loaded, "listing the people and rooms")
        return main


@pytest.fixture
def ui(chat_server: Server) -> Driver:
    return Driver(chat_server)
