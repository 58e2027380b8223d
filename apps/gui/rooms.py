"""The rooms pane: every room (mine first), unread counts, "Create room" and "Leave".

A click on a room I am not in joins it; the conversation opens with its history.
"""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable

import ttkbootstrap as ttk

from libimchat import Room, name_key

from .lists import ConversationList
from .look import font

OTHER_COLOR = "#9aa0a6"


class RoomList(ConversationList):
    """Rooms, with the buttons that act on them.

    Args:
        master: the sidebar.
        on_open: called with a room's name when the user picks it, and whether
            the keyboard should go to the message entry.
        on_create: called when the user presses "Create room".
        on_leave: called with the selected room's name on "Leave".
    """

    def __init__(
        self,
        master: tk.Misc,
        *,
        on_open: Callable[[str, bool], None],
        on_create: Callable[[], None],
        on_leave: Callable[[str], None],
    ) -> None:
        super().__init__(master)
        self.on_open = on_open
        self.on_leave = on_leave
        self._rooms: dict[str, Room] = {}

        heading = ttk.Frame(self)
        heading.pack(fill=tk.X, pady=(0, 4))
        ttk.Label(heading, text="Rooms", font=font(self, weight="bold")).pack(side=tk.LEFT)
        self.leave = ttk.Button(
            heading,
            text="Leave",
            bootstyle="danger-link",
            state=tk.DISABLED,
            command=self._leave_selected,
        )
        self.leave.pack(side=tk.RIGHT)
        self.create = ttk.Button(
            heading, text="Create room", icon="plus-lg", bootstyle="primary-link", command=on_create
        )
        self.create.pack(side=tk.RIGHT)

        self._build_list()
        self.restyle()

    def restyle(self) -> None:
        self.tree.tag_configure("unread", font=font(self, weight="bold"))
        self.tree.tag_configure("other", foreground=OTHER_COLOR)
        self._icons = {
            True: ttk.Icon("hash", 14),  # the theme's text colour: it shows on the selection
            False: ttk.Icon("hash", 14, OTHER_COLOR),
        }
        for key, room in self._rooms.items():
            if self.tree.exists(key):
                self.tree.item(key, image=self._icons[room.joined])

    def show(self, rooms: list[Room], unread: dict[str, int]) -> None:
        """Draw ``rooms`` in this order with their unread counts (by room key)."""
        self._rooms = {name_key(r.name): r for r in rooms}
        for key in self.tree.get_children():
            if key not in self._rooms:
                self.tree.delete(key)
        for index, room in enumerate(rooms):
            key = name_key(room.name)
            count = unread.get(key, 0)
            tags = ["joined" if room.joined else "other"]
            if count:
                tags.append("unread")
            text = f" {room.name}" if room.joined else f" {room.name}  · join"
            options = {
                "text": text,
                "image": self._icons[room.joined],
                "values": (f"{count}  " if count else "",),
                "tags": tags,
            }
            self._put_row(key, index, options)
        self._update_leave()

    def select(self, room: str | None) -> None:
        key = name_key(room) if room else None
        current = self.tree.selection()
        if key is None or not self.tree.exists(key):
            if current:
                self.tree.selection_remove(*current)
        elif current != (key,):
            self.tree.selection_set(key)
            self.tree.see(key)
        self._update_leave()

    def badge(self, room: str) -> int:
        key = name_key(room)
        if not self.tree.exists(key):
            return 0
        shown = str(self.tree.set(key, "unread")).strip()
        return int(shown) if shown else 0

    def listed(self) -> list[str]:
        return [self._rooms[key].name for key in self.tree.get_children()]

    def _selected(self) -> Room | None:
        selection = self.tree.selection()
        return self._rooms.get(selection[0]) if selection else None

    def _update_leave(self) -> None:
        room = self._selected()
        self.leave.configure(state=tk.NORMAL if room and room.joined else tk.DISABLED)

    def selected_name(self) -> str | None:
        room = self._selected()
        return room.name if room is not None else None

    def _selection_changed(self) -> None:
        self._update_leave()

    def _leave_selected(self) -> None:
        room = self._selected()
        if room is not None and room.joined:
            self.on_leave(room.name)
