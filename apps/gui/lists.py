"""What the people and rooms panes share: a list of conversations, opened by click or keyboard."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from typing import Any

import ttkbootstrap as ttk

from .look import LIST_STYLE, autohide


class ConversationList(ttk.Frame):
    """A tree of conversations with an unread column.

    A click or Enter opens the selected conversation and sends the keyboard to
    the message entry; moving through the list with the keys opens each one
    but leaves the keyboard here. Subclasses say which conversation the
    selected row is (:meth:`selected_name`).
    """

    on_open: Callable[[str, bool], None]
    tree: ttk.Treeview

    def _build_list(self) -> None:
        body = ttk.Frame(self)
        body.pack(fill=tk.BOTH, expand=True)
        self.tree = ttk.Treeview(
            body, columns=("unread",), show="tree", selectmode="browse", style=LIST_STYLE
        )
        self.tree.column("#0", width=150, stretch=True)
        self.tree.column("unread", width=40, anchor=tk.E, stretch=False)
        scrollbar = ttk.Scrollbar(
            body, orient=tk.VERTICAL, command=self.tree.yview, bootstyle="round"
        )
        self.tree.configure(yscrollcommand=autohide(scrollbar))
        self.tree.grid(row=0, column=0, sticky=tk.NSEW)
        scrollbar.grid(row=0, column=1, sticky=tk.NS)
        body.columnconfigure(0, weight=1)
        body.rowconfigure(0, weight=1)
        self.tree.bind("<<TreeviewSelect>>", self._on_select)
        self._by_keyboard = False
        for key in ("<Up>", "<Down>", "<Home>", "<End>", "<Prior>", "<Next>"):
            self.tree.bind(key, self._on_move_key, add=True)
        self.tree.bind("<Return>", self._on_return)

    def _put_row(self, key: str, index: int, options: dict[str, Any]) -> None:
        """Show a row at ``index``: updated in place, so selection and scrolling stay."""
        if self.tree.exists(key):
            self.tree.item(key, **options)
            self.tree.move(key, "", index)
        else:
            self.tree.insert("", index, iid=key, **options)

    def selected_name(self) -> str | None:
        """The name of the selected conversation, if any."""
        raise NotImplementedError

    def _selection_changed(self) -> None:
        """Called on every change of selection, before the conversation opens."""

    def _on_move_key(self, _event: tk.Event[tk.Misc]) -> None:
        self._by_keyboard = True

    def _on_select(self, _event: tk.Event[tk.Misc]) -> None:
        by_keyboard, self._by_keyboard = self._by_keyboard, False
        self._selection_changed()
        name = self.selected_name()
        if name is not None:
            self.on_open(name, not by_keyboard)

    def _on_return(self, _event: tk.Event[tk.Misc]) -> None:
        name = self.selected_name()
        if name is not None:
            self.on_open(name, True)
