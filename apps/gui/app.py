"""The application: one root window, its theme and status bar, and which view it shows.

The root shows one view at a time, the sign-in, sign-up or chat view, and keeps
the things they share: the :class:`~imchat_gui.bridge.Bridge` to the server,
the notifications, the status bar (connected / reconnecting) and the
light/dark theme. Server events come here first: connection changes go to the
status bar, everything else to the chat view.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import tkinter as tk
from typing import Literal

import ttkbootstrap as ttk

from libimchat import ChatError, Client, Event, User

from .bridge import Bridge
from .dialogs import Notice
from .login import LoginView
from .look import style_lists
from .main_window import MainView
from .notify import Notifications, Notifier, desktop_notifier
from .signup import SignupView

log = logging.getLogger(__name__)

LIGHT_THEME = "bootstrap-light"
DARK_THEME = "bootstrap-dark"
APP_TITLE = "imchat"
Connection = Literal["signed_out", "connected", "reconnecting"]
_STATUS = {
    "signed_out": ("circle", "secondary", "Not signed in · server {url}"),
    "connected": ("circle-fill", "success", "Connected to {url}"),
    "reconnecting": (
        "exclamation-circle-fill",
        "warning",
        "Connection lost · reconnecting to {url}…",
    ),
}


class StatusBar(ttk.Frame):
    """The bottom line: the connection on the left, the latest notice on the right."""

    def __init__(self, master: tk.Misc, url: str) -> None:
        super().__init__(master, padding=(10, 4))
        self.url = url
        self.connection: Connection = "signed_out"
        self.connection_label = ttk.Label(self, compound=tk.LEFT)
        self.connection_label.pack(side=tk.LEFT)
        self.notice = ttk.Label(self, bootstyle="secondary")
        self.notice.pack(side=tk.RIGHT)
        self._clear_after: str | None = None
        self.show_connection("signed_out")

    @property
    def text(self) -> str:
        return str(self.connection_label.cget("text"))

    def show_connection(self, state: Connection) -> None:
        self.connection = state
        glyph, color, text = _STATUS[state]
        self.connection_label.configure(
            text=" " + text.format(url=self.url), image=ttk.Icon(glyph, 12, color)
        )

    def say(self, text: str, seconds: float = 6.0) -> None:
        """Show a passing notice (cleared after ``seconds``)."""
        self.notice.configure(text=text)
        if self._clear_after is not None:
            self.after_cancel(self._clear_after)
        self._clear_after = self.after(int(seconds * 1000), self._clear)

    def _clear(self) -> None:
        self._clear_after = None
        self.notice.configure(text="")


class ChatApp:
    """The desktop chat application.

    Args:
        url: the server, ``tcp://host:port#key``.
        server_key: its public key, for a URL without one (see :class:`libimchat.Client`).
        insecure: speak plain text, to a server run with ``--insecure``.
        notifier: shows a desktop notification (default: plyer).
        timeout: seconds each server call may take before it fails.
        dark: start with the dark theme.

    Raises:
        ChatError: ``invalid`` for a malformed URL.
        tkinter.TclError: when there is no display to draw on.
    """

    def __init__(
        self,
        url: str,
        *,
        server_key: str | None = None,
        insecure: bool = False,
        notifier: Notifier = desktop_notifier,
        timeout: float = 10.0,
        dark: bool = False,
    ) -> None:
        client = Client(url, timeout=timeout, server_key=server_key, insecure=insecure)
        self.url = url.partition("#")[0]  # the key is no use to read
        self.closed = False
        try:
            self.root = ttk.App(
                title=APP_TITLE,
                theme=DARK_THEME if dark else LIGHT_THEME,
                light_theme=LIGHT_THEME,
                dark_theme=DARK_THEME,
            )
        except tk.TclError:
            client.close()
            raise
        self.root.protocol("WM_DELETE_WINDOW", self.close)
        style_lists(self.root)
        self.status = StatusBar(self.root, self.url)
        self.status.pack(side=tk.BOTTOM, fill=tk.X)
        ttk.Separator(self.root).pack(side=tk.BOTTOM, fill=tk.X)
        self.bridge = Bridge(self.root, client, on_event=self._on_event, on_error=self.show_error)
        self.notifications = Notifications(notifier)
        self.view: LoginView | SignupView | MainView | None = None
        self.root.style.on_theme_change(self._on_theme_change, call_now=False)
        self.show_login()

    # --- views

    def show_login(self, username: str = "") -> LoginView:
        view = LoginView(self.root, self, username=username)
        self._show(view, "Sign in", size=(440, 520), minsize=(380, 460))
        view.focus_first()
        return view

    def show_signup(self) -> SignupView:
        view = SignupView(self.root, self)
        self._show(view, "Create an account", size=(460, 640), minsize=(400, 600))
        view.focus_first()
        return view

    def show_main(self, user: User) -> MainView:
        view = MainView(self.root, self, user)
        self._show(view, user.username, size=(1000, 660), minsize=(780, 500))
        self.status.show_connection("connected")
        view.start()
        return view

    def set_title(self, subtitle: str) -> None:
        self.root.title(f"{APP_TITLE} — {subtitle}")

    def _show(
        self,
        view: LoginView | SignupView | MainView,
        subtitle: str,
        *,
        size: tuple[int, int],
        minsize: tuple[int, int],
    ) -> None:
        if self.view is not None:
            self.view.destroy()
        self.view = view
        if not isinstance(view, MainView):
            self.status.show_connection("signed_out")
        self.set_title(subtitle)
        self.root.minsize(*minsize)
        self.root.geometry(f"{size[0]}x{size[1]}")
        view.pack(fill=tk.BOTH, expand=True)

    # --- shared services

    def show_error(self, error: ChatError, title: str = "Something went wrong") -> Notice:
        """Tell the user a call failed, in words (the code stays in the log)."""
        log.info("chat error %s: %s", error.code, error.message)
        return Notice(self.root, title, self.explain(error))

    def explain(self, error: ChatError) -> str:
        if error.code == "timeout":
            return (
                f"The server at {self.url} did not answer. Check that it is running:"
                " imchat keeps trying to reconnect."
            )
        if error.code == "closed":
            return "The connection to the server is closed."
        text = error.message
        return text[:1].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")

    def notify(self, title: str, text: str) -> None:
        self.notifications.show(title, text)

    def window_focused(self) -> bool:
        """Whether the application has the keyboard focus of its display."""
        try:
            return bool(self.root.tk.call("focus"))
        except tk.TclError:
            return False

    def toggle_theme(self) -> None:
        self.root.toggle_theme()

    @property
    def dark(self) -> bool:
        return self.root.theme_mode == "dark"

    # --- events and life cycle

    def _on_event(self, event: Event) -> None:
        if event.kind == "connection":
            self._connection(bool(event.online))
        elif isinstance(self.view, MainView):
            self.view.handle(event)

    def _connection(self, online: bool) -> None:
        if not isinstance(self.view, MainView):
            return
        if online:
            self.status.show_connection("connected")
            self.status.say("Back online")
            self.view.refresh()
        elif self.bridge.client.user is None:
            # the server no longer knows our session (it lost its data, or we
            # were away longer than a session lives): sign in again
            self.show_login(self.view.chat.me.username)
            Notice(self.root, "Signed out", "Your session has ended. Please sign in again.")
        else:
            self.status.show_connection("reconnecting")

    def _on_theme_change(self, _style: object) -> None:
        style_lists(self.root)
        self.status.show_connection(self.status.connection)
        if isinstance(self.view, MainView):
            self.view.restyle()

    def run(self) -> None:
        """Run the window until the user closes it."""
        self.root.mainloop()

    def close(self) -> None:
        """Close the window, then sign out and disconnect."""
        if self.closed:
            return
        self.closed = True
        self.notifications.close()
        with contextlib.suppress(tk.TclError):  # destroyed already
            self.root.destroy()
        # Tk images left in reference cycles must die on this thread: collected
        # on another, they call into Tcl from there and wait for a main loop
        # that has ended
        gc.collect()
        self.bridge.close()
