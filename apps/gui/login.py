"""The sign-in view: username, password, "Sign In"; and the way to the sign-up view."""

from __future__ import annotations

import tkinter as tk
from typing import TYPE_CHECKING

import ttkbootstrap as ttk

from libimchat import ChatError, User

from .dialogs import Notice
from .look import font

if TYPE_CHECKING:
    from .app import ChatApp


class LoginView(ttk.Frame):
    """Signs in; Enter in either field submits.

    Args:
        master: the root window.
        app: the application (its bridge signs in, its views follow).
        username: filled in (after a sign-up or a sign-out).
    """

    def __init__(self, master: tk.Misc, app: ChatApp, *, username: str = "") -> None:
        super().__init__(master, padding=(48, 36))
        self.app = app
        self.working = False
        card = ttk.Frame(self)
        card.grid(row=1, column=0, sticky=tk.EW)
        card.columnconfigure(0, weight=1)
        self.columnconfigure(0, weight=1)
        self.rowconfigure(0, weight=1)
        self.rowconfigure(2, weight=2)

        ttk.Label(card, image=ttk.Icon("chat-dots-fill", 44, "primary")).grid(row=0, pady=(0, 6))
        ttk.Label(card, text="imchat", font=font(self, size=10, weight="bold")).grid(row=1)
        ttk.Label(card, text="Sign in to start chatting", bootstyle="secondary").grid(
            row=2, pady=(0, 22)
        )

        ttk.Label(card, text="Username").grid(row=3, sticky=tk.W)
        self.username = ttk.Entry(card)
        self.username.grid(row=4, sticky=tk.EW, pady=(2, 12))
        self.username.insert(0, username)
        ttk.Label(card, text="Password").grid(row=5, sticky=tk.W)
        self.password = ttk.Entry(card, show="•")
        self.password.grid(row=6, sticky=tk.EW, pady=(2, 18))
        self.sign_in = ttk.Button(card, text="Sign In", bootstyle="primary", command=self.submit)
        self.sign_in.grid(row=7, sticky=tk.EW, ipady=4)

        ttk.Separator(card).grid(row=8, sticky=tk.EW, pady=20)
        footer = ttk.Frame(card)
        footer.grid(row=9)
        ttk.Label(footer, text="you don't have an account ?", bootstyle="secondary").pack(
            side=tk.LEFT
        )
        self.sign_up = ttk.Button(
            footer, text="Sign Up", bootstyle="primary-link", command=app.show_signup
        )
        self.sign_up.pack(side=tk.LEFT)

        for entry in (self.username, self.password):
            entry.bind("<Return>", self._on_enter)
            entry.bind("<KP_Enter>", self._on_enter)

    def focus_first(self) -> None:
        """The keyboard goes to the first empty field."""
        (self.password if self.username.get() else self.username).focus_set()

    def submit(self) -> None:
        if self.working:
            return
        username, password = self.username.get().strip(), self.password.get()
        self._set_busy(True)
        self.app.bridge.call(
            lambda client: client.login(username, password),
            on_done=self._signed_in,
            on_error=self._failed,
        )

    def _on_enter(self, _event: tk.Event[tk.Misc]) -> str:
        self.submit()
        return "break"

    def _set_busy(self, busy: bool) -> None:
        self.working = busy
        state = tk.DISABLED if busy else tk.NORMAL
        self.sign_in.configure(state=state, text="Signing in…" if busy else "Sign In")
        self.sign_up.configure(state=state)

    def _signed_in(self, user: User) -> None:
        self.app.show_main(user)

    def _failed(self, error: ChatError) -> None:
        self._set_busy(False)
        self.password.select_range(0, tk.END)
        root, field = self.app.root, self.password if self.username.get() else self.username
        if error.code == "bad_credentials":
            Notice(root, "Sign-in failed", "Wrong username or password.", focus_after=field)
        elif error.code == "missing_fields":
            text = "Enter your username and your password."
            Notice(root, "Sign-in failed", text, focus_after=field)
        else:
            self.app.show_error(error, "Sign-in failed")
