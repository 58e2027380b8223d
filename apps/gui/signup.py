"""The sign-up view: first and last name, phone, username, password, "Create Account"."""

from __future__ import annotations

import tkinter as tk
from typing import TYPE_CHECKING

import ttkbootstrap as ttk

from libimchat import ChatError

from .dialogs import Notice
from .look import font

if TYPE_CHECKING:
    from .app import ChatApp

TITLE = "Sign-up failed"


class SignupView(ttk.Frame):
    """Creates an account; on success, back to the sign-in view with the username filled in.

    Args:
        master: the root window.
        app: the application.
    """

    def __init__(self, master: tk.Misc, app: ChatApp) -> None:
        super().__init__(master, padding=(48, 28))
        self.app = app
        self.working = False
        self.columnconfigure(0, weight=1)
        self.rowconfigure(0, weight=1)
        self.rowconfigure(2, weight=2)
        card = ttk.Frame(self)
        card.grid(row=1, column=0, sticky=tk.EW)
        card.columnconfigure((0, 1), weight=1, uniform="names")

        ttk.Label(card, image=ttk.Icon("person-plus-fill", 40, "primary")).grid(
            row=0, columnspan=2, pady=(0, 6)
        )
        ttk.Label(card, text="Create your account", font=font(self, size=6, weight="bold")).grid(
            row=1, columnspan=2
        )
        ttk.Label(card, text="All fields are required", bootstyle="secondary").grid(
            row=2, columnspan=2, pady=(0, 18)
        )

        self.first_name = self._field(card, "First name", row=3, column=0, padx=(0, 6))
        self.last_name = self._field(card, "Last name", row=3, column=1, padx=(6, 0))
        self.phone = self._field(card, "Phone", row=5)
        self.username = self._field(card, "Username", row=7)
        self.password = self._field(card, "Password", row=9, show="•")
        self.create = ttk.Button(
            card, text="Create Account", bootstyle="primary", command=self.submit
        )
        self.create.grid(row=11, columnspan=2, sticky=tk.EW, ipady=4, pady=(6, 0))

        ttk.Separator(card).grid(row=12, columnspan=2, sticky=tk.EW, pady=18)
        footer = ttk.Frame(card)
        footer.grid(row=13, columnspan=2)
        ttk.Label(footer, text="Already have an account?", bootstyle="secondary").pack(side=tk.LEFT)
        self.back = ttk.Button(
            footer, text="Sign In", bootstyle="primary-link", command=lambda: app.show_login()
        )
        self.back.pack(side=tk.LEFT)

    def _field(
        self,
        card: ttk.Frame,
        label: str,
        *,
        row: int,
        column: int | None = None,
        padx: tuple[int, int] = (0, 0),
        show: str = "",
    ) -> ttk.Entry:
        span = 1 if column is not None else 2
        ttk.Label(card, text=label).grid(row=row, column=column or 0, sticky=tk.W, padx=padx)
        entry = ttk.Entry(card, show=show)
        entry.grid(
            row=row + 1, column=column or 0, columnspan=span, sticky=tk.EW, padx=padx, pady=(2, 10)
        )
        entry.bind("<Return>", self._on_enter)
        entry.bind("<KP_Enter>", self._on_enter)
        return entry

    def focus_first(self) -> None:
        self.first_name.focus_set()

    def submit(self) -> None:
        if self.working:
            return
        first, last = self.first_name.get().strip(), self.last_name.get().strip()
        phone, username = self.phone.get().strip(), self.username.get().strip()
        password = self.password.get()
        self._set_busy(True)
        self.app.bridge.call(
            lambda client: client.signup(
                username, password, first_name=first, last_name=last, phone=phone
            ),
            on_done=lambda _: self._created(username),
            on_error=lambda error: self._failed(error, username),
        )

    def _on_enter(self, _event: tk.Event[tk.Misc]) -> str:
        self.submit()
        return "break"

    def _set_busy(self, busy: bool) -> None:
        self.working = busy
        state = tk.DISABLED if busy else tk.NORMAL
        self.create.configure(state=state, text="Creating…" if busy else "Create Account")
        self.back.configure(state=state)

    def _created(self, username: str) -> None:
        self.app.show_login(username)
        self.app.status.say(f"Account {username} created: sign in")

    def _failed(self, error: ChatError, username: str) -> None:
        self._set_busy(False)
        root = self.app.root
        if error.code == "missing_fields":
            Notice(root, TITLE, "All fields are required", focus_after=self._first_empty())
        elif error.code == "username_taken":
            taken = f'The username "{username}" is already taken.'
            Notice(root, TITLE, taken, focus_after=self.username)
        elif error.code == "invalid" and "phone" in error.message:
            bad_phone = f"Invalid phone number: {error.message}."
            Notice(root, TITLE, bad_phone, focus_after=self.phone)
        else:
            self.app.show_error(error, TITLE)

    def _first_empty(self) -> ttk.Entry:
        fields = (self.first_name, self.last_name, self.phone, self.username, self.password)
        return next((entry for entry in fields if not entry.get().strip()), self.first_name)
