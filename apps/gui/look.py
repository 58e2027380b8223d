"""The shared look: the few fonts and list styles the views add to the theme's."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from tkinter import font as tkfont
from typing import Literal

import ttkbootstrap as ttk


def font(
    widget: tk.Misc,
    *,
    size: int = 0,
    weight: Literal["normal", "bold"] = "normal",
    slant: Literal["roman", "italic"] = "roman",
) -> str:
    """A named font like the theme's default one, larger by ``size`` points; made once."""
    name = f"imchat{size:+d}-{weight}-{slant}"
    if name not in tkfont.names(root=widget):
        actual = tkfont.nametofont("TkDefaultFont", root=widget).actual()
        points = int(actual["size"])  # negative: pixels
        # made in Tcl, not as a tkinter Font, which would delete it when collected
        widget.tk.call(
            "font", "create", name,
            "-family", actual["family"],
            "-size", points + size if points > 0 else points - size,
            "-weight", weight,
            "-slant", slant,
        )  # fmt: skip
    return name


LIST_STYLE = "Chat.Treeview"


def style_lists(widget: tk.Misc) -> None:
    """The sidebar lists: taller rows, selection in the theme's primary colour.

    Called again after every theme switch, which rebuilds the theme's styles.
    """
    style = ttk.Style.get_instance()
    colors = style.colors
    style.configure(LIST_STYLE, rowheight=font_height(widget) + 12, borderwidth=0)
    style.map(
        LIST_STYLE,
        background=[("selected", colors.primary)],
        foreground=[("selected", colors.selectfg)],
    )


def font_height(widget: tk.Misc) -> int:
    return int(tkfont.nametofont("TkDefaultFont", root=widget).metrics("linespace"))


def autohide(scrollbar: ttk.Scrollbar) -> Callable[[str, str], None]:
    """A ``yscrollcommand`` that shows a gridded scrollbar only when there is more to see."""

    def command(first: str, last: str) -> None:
        if float(first) <= 0.0 and float(last) >= 1.0:
            scrollbar.grid_remove()
        else:
            scrollbar.grid()
        scrollbar.set(first, last)

    return command
