"""The sign-in and sign-up windows, driven like a user would, against a real chat_server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest
from imchat_gui import main
from imchat_gui.app import ChatApp
from imchat_gui.dialogs import Notice
from imchat_gui.login import LoginView
from imchat_gui.main_window import MainView
from imchat_gui.signup import SignupView

from libimchat import Client, Server
from tests.helpers import signup

if TYPE_CHECKING:
    from tests.gui_support import Driver

pytest_plugins = ["tests.gui_support"]


def login_view(app: ChatApp) -> LoginView:
    assert isinstance(app.view, LoginView)
    return app.view


def signup_view(app: ChatApp) -> SignupView:
    login_view(app).sign_up.invoke()
    assert isinstance(app.view, SignupView)
    return app.view


def test_the_login_window_has_its_fields_and_the_way_to_sign_up(app: ChatApp) -> None:
    view = login_view(app)
    assert view.sign_in.cget("text") == "Sign In"
    assert view.sign_up.cget("text") == "Sign Up"
    assert str(view.password.cget("show")) == "•"
    assert app.root.title() == "imchat — Sign in"
    assert app.root.focus_get() in (view.username, None)  # None: Xvfb gave the app no focus


@pytest.mark.parametrize(
    ("username", "password"), [("ali", "wrong"), ("nobody", "pw"), ("ALI", "wrong")]
)
def test_a_wrong_username_or_password_shows_an_error_dialog(
    app: ChatApp, ui: Driver, chat_server: Server, username: str, password: str
) -> None:
    with Client(chat_server.url, timeout=5.0) as client:
        signup(client, "ali")
    view = login_view(app)
    view.username.insert(0, username)
    view.password.insert(0, password)
    view.sign_in.invoke()
    error = ui.dialog(app, "an error")
    assert isinstance(error, Notice)
    assert error.message == "Wrong username or password."
    assert isinstance(app.view, LoginView)
    error.button("OK").invoke()
    ui.no_dialog(app)
    assert view.sign_in.instate(["!disabled"])


def test_empty_fields_at_sign_in_say_what_is_missing(app: ChatApp, ui: Driver) -> None:
    login_view(app).sign_in.invoke()
    assert ui.dialog(app).message == "Enter your username and your password."


def test_enter_signs_in_and_opens_the_main_window(
    app: ChatApp, ui: Driver, chat_server: Server
) -> None:
    with Client(chat_server.url, timeout=5.0) as client:
        signup(client, "ali")
    view = login_view(app)
    view.username.insert(0, "ALI")  # any letter case
    view.password.insert(0, "pw")
    ui.press(view.password, "<Return>")
    ui.pump(app, lambda: isinstance(app.view, MainView), "signed in")
    assert app.root.title() == "imchat — ali"
    assert app.status.connection == "connected"


def fill(view: SignupView, **fields: str) -> None:
    values = {
        "first_name": "Ali",
        "last_name": "Baba",
        "phone": "0633217608",
        "username": "ali",
        "password": "pw",
    }
    values.update(fields)
    for name, text in values.items():
        entry = getattr(view, name)
        entry.delete(0, "end")
        entry.insert(0, text)


@pytest.mark.parametrize("empty", ["first_name", "last_name", "phone", "username", "password"])
def test_an_empty_sign_up_field_says_all_fields_are_required(
    app: ChatApp, ui: Driver, empty: str
) -> None:
    view = signup_view(app)
    fill(view, **{empty: ""})
    view.create.invoke()
    error = ui.dialog(app, "an error")
    assert error.message == "All fields are required"
    error.button("OK").invoke()
    ui.no_dialog(app)
    assert app.root.focus_get() in (getattr(view, empty), None)


def test_a_taken_username_in_any_letter_case_is_refused(
    app: ChatApp, ui: Driver, chat_server: Server
) -> None:
    with Client(chat_server.url, timeout=5.0) as client:
        signup(client, "ali")
    view = signup_view(app)
    fill(view, username="ALI")
    view.create.invoke()
    assert ui.dialog(app, "an error").message == 'The username "ALI" is already taken.'
    assert isinstance(app.view, SignupView)


def test_a_bad_phone_number_says_so(app: ChatApp, ui: Driver) -> None:
    view = signup_view(app)
    fill(view, phone="12ab")
    view.create.invoke()
    message = ui.dialog(app, "an error").message
    assert message.startswith("Invalid phone number")
    assert "phone" in message


def test_a_sign_up_returns_to_login_with_the_username_filled_in(
    app: ChatApp, ui: Driver, chat_server: Server
) -> None:
    view = signup_view(app)
    fill(view, username="newbie")
    ui.press(view.password, "<Return>")  # Enter submits here too
    ui.pump(app, lambda: isinstance(app.view, LoginView), "back at the login")
    login = login_view(app)
    assert login.username.get() == "newbie"
    assert login.password.get() == ""
    with Client(chat_server.url, timeout=5.0) as client:
        assert client.login("newbie", "pw").username == "newbie"


def test_sign_in_from_the_sign_up_window_goes_back(app: ChatApp) -> None:
    view = signup_view(app)
    view.back.invoke()
    assert isinstance(app.view, LoginView)


def test_logout_returns_to_the_login_window(app: ChatApp, ui: Driver, chat_server: Server) -> None:
    main_view = ui.sign_in(app, "ali")
    main_view.logout_button.invoke()
    ui.pump(app, lambda: isinstance(app.view, LoginView), "signed out")
    assert login_view(app).username.get() == "ali"
    assert app.status.connection == "signed_out"


def test_the_command_refuses_a_bad_url_and_says_why(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["gui", "--url", "http://nowhere"]) == 2
    assert "tcp://host:port" in capsys.readouterr().err


def test_the_command_opens_the_login_window_and_a_kill_closes_it(
    display: str, chat_server: Server
) -> None:
    command = [sys.executable, "-m", "libimchat", "gui", "--url", chat_server.url]
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True) as gui:
        try:
            deadline = time.monotonic() + 20
            while "imchat — Sign in" not in window_names():
                assert gui.poll() is None, gui.communicate()[1]
                assert time.monotonic() < deadline, "no login window within 20 s"
                time.sleep(0.05)  # a polling interval
            gui.send_signal(signal.SIGTERM)
            assert gui.wait(10) == 0
        finally:
            gui.kill()  # does nothing if it has exited


def window_names() -> list[str]:
    found = subprocess.run(
        ["xdotool", "search", "--name", "imchat", "getwindowname", "%@"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    return found.stdout.splitlines()


def test_the_command_without_a_display_says_what_it_needs(chat_server: Server) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    done = subprocess.run(
        [sys.executable, "-m", "libimchat", "gui", "--url", chat_server.url],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert "graphical display" in done.stderr
