"""The small windows that ask or tell one thing: errors, a name to enter, a yes or no.

They do not block: each shows itself over the main window and calls back with
the answer, so the Tk loop (and with it the drain of server events) goes on
while one is open. Every open dialog is a :class:`Dialog`, with its text in
``.message``, so a test (or the screenshot script) finds it among the root's
children and presses its buttons like a user would.
"""

from __future__ import annotations

import contextlib
import tkinter as tk
from collections.abc import Callable
from typing import Literal

import ttkbootstrap as ttk

from .look import font

NoticeKind = Literal["error", "info"]
_ICONS = {
    "error": ("x-circle-fill", "danger"),
    "info": ("info-circle-fill", "info"),
    "question": ("question-circle-fill", "primary"),
}


class Dialog(ttk.Toplevel):
    """A window over ``parent`` with a message, optional input and a row of buttons.

    When it closes, the keyboard focus goes back where it was (or to ``focus_after``).
    """

    def __init__(
        self,
        parent: tk.Misc,
        title: str,
        message: str,
        icon: str,
        focus_after: tk.Misc | None = None,
    ) -> None:
        self._focus_after = focus_after or _focused(parent)
        super().__init__(
            title=title,
            master=parent,
            transient=parent.winfo_toplevel(),
            resizable=(False, False),
            window_type="dialog",
        )
        self.withdraw()
        colors = ttk.Style.get_instance().colors
        border = colors.border
        self.configure(highlightthickness=1, highlightbackground=border, highlightcolor=border)
        self.message = message
        self.body = ttk.Frame(self, padding=(20, 18, 20, 8))
        self.body.pack(fill=tk.BOTH, expand=True)
        glyph, color = _ICONS[icon]
        ttk.Label(self.body, image=ttk.Icon(glyph, 28, color)).grid(
            row=0, column=0, rowspan=3, sticky=tk.N, padx=(0, 14)
        )
        # the title again inside: without a window manager (or with a
        # minimal one) the title bar is not there to say what this is about
        ttk.Label(self.body, text=title, font=font(self, size=1, weight="bold")).grid(
            row=0, column=1, sticky=tk.W, pady=(0, 4)
        )
        ttk.Label(self.body, text=message, wraplength=340, justify=tk.LEFT).grid(
            row=1, column=1, sticky=tk.W
        )
        self.body.columnconfigure(1, weight=1)
        self.buttons = ttk.Frame(self, padding=(20, 8, 20, 16))
        self.buttons.pack(fill=tk.X)
        self.bind("<Escape>", lambda _: self.cancel())
        self.protocol("WM_DELETE_WINDOW", self.cancel)

    def add_button(self, text: str, command: Callable[[], None], *, default: bool) -> ttk.Button:
        button = ttk.Button(
            self.buttons,
            text=text,
            command=command,
            bootstyle="primary" if default else "secondary-outline",
            width=10,
        )
        button.pack(side=tk.RIGHT, padx=(8, 0))
        return button

    def button(self, text: str) -> ttk.Button:
        """The button labelled ``text``."""
        for child in self.buttons.winfo_children():
            if isinstance(child, ttk.Button) and child.cget("text") == text:
                return child
        raise LookupError(f"no button {text!r} in the {self.title()!r} dialog")

    def present(self, focus: tk.Widget) -> None:
        """Show the dialog centred over its parent, with the keyboard in ``focus``."""
        self.update_idletasks()
        parent = self.master.winfo_toplevel()
        x = parent.winfo_rootx() + (parent.winfo_width() - self.winfo_reqwidth()) // 2
        y = parent.winfo_rooty() + (parent.winfo_height() - self.winfo_reqheight()) // 3
        self.geometry(f"+{max(x, 0)}+{max(y, 0)}")
        self.deiconify()
        self.lift()
        focus.focus_set()
        self.after_idle(self._grab)

    def cancel(self) -> None:
        self.destroy()

    def destroy(self) -> None:
        super().destroy()
        target, self._focus_after = self._focus_after, None
        try:
            if target is not None and target.winfo_exists():
                target.focus_set()
        except tk.TclError:
            pass  # the whole application is closing

    def _grab(self) -> None:
        # not viewable yet (or gone): the dialog still works, just not modally
        with contextlib.suppress(tk.TclError):
            self.grab_set()


class Notice(Dialog):
    """An error or a piece of information, with OK."""

    def __init__(
        self,
        parent: tk.Misc,
        title: str,
        message: str,
        kind: NoticeKind = "error",
        *,
        focus_after: tk.Misc | None = None,
    ) -> None:
        super().__init__(parent, title, message, kind, focus_after)
        self.kind = kind
        ok = self.add_button("OK", self.cancel, default=True)
        self.bind("<Return>", lambda _: self.cancel())
        self.present(ok)


class Prompt(Dialog):
    """Asks for one line of text; ``on_answer(text)`` when the user presses OK or Enter."""

    def __init__(
        self,
        parent: tk.Misc,
        title: str,
        message: str,
        on_answer: Callable[[str], None],
        *,
        initial: str = "",
        ok: str = "OK",
    ) -> None:
        super().__init__(parent, title, message, "question")
        self._on_answer = on_answer
        self.entry = ttk.Entry(self.body, width=32)
        self.entry.grid(row=2, column=1, sticky=tk.EW, pady=(10, 0))
        self.entry.insert(0, initial)
        self.entry.select_range(0, tk.END)
        self.ok = self.add_button(ok, self.submit, default=True)
        self.add_button("Cancel", self.cancel, default=False)
        self.entry.bind("<Return>", lambda _: self.submit())
        self.entry.bind("<KP_Enter>", lambda _: self.submit())
        self.present(self.entry)

    def submit(self) -> None:
        text = self.entry.get().strip()
        if not text:
            self.entry.focus_set()
            return
        self.destroy()
        self._on_answer(text)


class Question(Dialog):
    """A yes-or-no question; ``on_answer(True)`` for ``yes``, ``on_answer(False)`` otherwise."""

    def __init__(
        self,
        parent: tk.Misc,
        title: str,
        message: str,
        on_answer: Callable[[bool], None],
        *,
        yes: str = "Yes",
        no: str = "No",
    ) -> None:
        super().__init__(parent, title, message, "question")
        self._on_answer = on_answer
        self.yes = self.add_button(yes, lambda: self._answer(True), default=True)
        self.add_button(no, lambda: self._answer(False), default=False)
        self.bind("<Return>", lambda _: self._answer(True))
        self.present(self.yes)

    def cancel(self) -> None:
        self._answer(False)

    def _answer(self, answer: bool) -> None:
        self.destroy()
        self._on_answer(answer)


def _focused(widget: tk.Misc) -> tk.Misc | None:
    try:
        return widget.focus_get()
    except (KeyError, tk.TclError):
        return None  # focus in a widget tkinter does not know (a combobox popdown)


def open_dialogs(root: tk.Misc) -> list[Dialog]:
    """The dialogs open over ``root``, oldest first."""
    return [w for w in root.winfo_children() if isinstance(w, Dialog) and w.winfo_exists()]
