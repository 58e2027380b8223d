"""The people pane (a dot for online or offline, the name, unread messages) and the blocked list.

Rows are keyed by the name's key and updated in place, so a presence change or
a new message neither loses the selection nor the scroll position.
"""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable

import ttkbootstrap as ttk

from libimchat import User, name_key

from .lists import ConversationList
from .look import font

ONLINE_COLOR = "success"
OFFLINE_COLOR = "#9aa0a6"


class PeopleList(ConversationList):
    """Everyone else, online first; a click opens the conversation, a right-click offers more.

    Args:
        master: the sidebar.
        on_open: called with a username when the user picks someone, and whether
            the keyboard should go to the message entry.
        on_block: called with a username for "Block…" from the right-click menu.
        on_unblock: likewise for "Unblock…".
    """

    def __init__(
        self,
        master: tk.Misc,
        *,
        on_open: Callable[[str, bool], None],
        on_block: Callable[[str], None],
        on_unblock: Callable[[str], None],
    ) -> None:
        super().__init__(master)
        self.on_open = on_open
        self.on_block = on_block
        self.on_unblock = on_unblock
        self.context_menu: ttk.Menu | None = None
        self._names: dict[str, str] = {}
        self._blocked: set[str] = set()

        heading = ttk.Frame(self)
        heading.pack(fill=tk.X, pady=(0, 4))
        ttk.Label(heading, text="People", font=font(self, weight="bold")).pack(side=tk.LEFT)
        self.summary = ttk.Label(heading, bootstyle="secondary")
        self.summary.pack(side=tk.RIGHT)

        self._build_list()
        self.restyle()
        self.tree.bind("<Button-3>", self._on_right_click)

    def restyle(self) -> None:
        """Draw with the current theme's colours."""
        self.tree.tag_configure("unread", font=font(self, weight="bold"))
        self.tree.tag_configure("blocked", foreground=OFFLINE_COLOR)
        self._dots = {
            True: ttk.Icon("circle-fill", 10, ONLINE_COLOR),
            False: ttk.Icon("circle-fill", 10, OFFLINE_COLOR),
        }
        for key in self.tree.get_children():
            online = "online" in self.tree.item(key, "tags")
            self.tree.item(key, image=self._dots[online])

    def show(self, people: list[User], unread: dict[str, int], blocked: set[str]) -> None:
        """Draw ``people`` in this order, with unread counts and blocked users by key."""
        self._names = {name_key(u.username): u.username for u in people}
        self._blocked = blocked
        for key in self.tree.get_children():
            if key not in self._names:
                self.tree.delete(key)
        for index, user in enumerate(people):
            key = name_key(user.username)
            count = unread.get(key, 0)
            tags = ["online" if user.online else "offline"]
            if count:
                tags.append("unread")
            text = f" {user.username}"
            if key in blocked:
                tags.append("blocked")
                text += "  (blocked)"
            options = {
                "text": text,
                "image": self._dots[user.online],
                "values": (f"{count}  " if count else "",),
                "tags": tags,
            }
            self._put_row(key, index, options)
        children = self.tree.get_children()
        if children and not self.tree.focus():
            self.tree.focus(children[0])  # where the arrow keys start
        online = sum(u.online for u in people)
        self.summary.configure(text=f"{online} online")

    def select(self, username: str | None) -> None:
        """Highlight ``username`` (or nobody) without opening anything twice."""
        key = name_key(username) if username else None
        current = self.tree.selection()
        if key is None or not self.tree.exists(key):
            if current:
                self.tree.selection_remove(*current)
        elif current != (key,):
            self.tree.selection_set(key)
            self.tree.see(key)

    # --- what a test (or a screen reader) can ask about a row

    def presence(self, username: str) -> str:
        """``"online"`` or ``"offline"``, as the dot shows; ``""`` if not listed."""
        key = name_key(username)
        if not self.tree.exists(key):
            return ""
        tags = self.tree.item(key, "tags")
        return "online" if "online" in tags else "offline"

    def badge(self, username: str) -> int:
        """The unread count shown next to ``username`` (0 when none)."""
        key = name_key(username)
        if not self.tree.exists(key):
            return 0
        shown = str(self.tree.set(key, "unread")).strip()
        return int(shown) if shown else 0

    def listed(self) -> list[str]:
        """The usernames, top to bottom."""
        return [self._names[key] for key in self.tree.get_children()]

    # --- input

    def selected_name(self) -> str | None:
        selection = self.tree.selection()
        return self._names.get(selection[0]) if selection else None

    def _on_right_click(self, event: tk.Event[tk.Misc]) -> None:
        key = self.tree.identify_row(event.y)
        if key not in self._names:
            return
        username = self._names[key]
        menu = ttk.Menu(self, tearoff=False)
        menu.add_command(label=f"Message {username}", command=lambda: self.on_open(username, True))
        menu.add_separator()
        if key in self._blocked:
            menu.add_command(
                label=f"Unblock {username}…", command=lambda: self.on_unblock(username)
            )
        else:
            menu.add_command(label=f"Block {username}…", command=lambda: self.on_block(username))
        self.context_menu = menu
        try:
            menu.tk_popup(event.x_root, event.y_root)
        finally:
            menu.grab_release()


class BlockedList(ttk.Frame):
    """The users I block; a double-click asks whether to unblock one.

    Args:
        master: the sidebar.
        on_unblock: called with a username on a double-click.
    """

    def __init__(self, master: tk.Misc, *, on_unblock: Callable[[str], None]) -> None:
        super().__init__(master)
        self.on_unblock = on_unblock
        ttk.Label(self, text="Blocked", font=font(self, weight="bold")).pack(anchor=tk.W)
        self.listbox = ttk.Listbox(self, height=3, activestyle="none", borderwidth=0)
        self.listbox.pack(fill=tk.BOTH, expand=True, pady=(4, 0))
        self.listbox.bind("<Double-Button-1>", self._on_double_click)
        self.names: list[str] = []

    def show(self, names: list[str]) -> None:
        self.names = sorted(names, key=name_key)
        self.listbox.delete(0, tk.END)
        for name in self.names:
            self.listbox.insert(tk.END, f"  {name}")
        if not self.names:
            self.listbox.insert(tk.END, "  nobody")
            self.listbox.itemconfigure(0, foreground=OFFLINE_COLOR)

    def _on_double_click(self, _event: tk.Event[tk.Misc]) -> None:
        picked = self.listbox.curselection()
        if picked and picked[0] < len(self.names):
            self.on_unblock(self.names[picked[0]])
