"""The conversation pane: a header, the transcript, and the entry to write in.

The transcript is a read-only Text: each message has a line with the sender and
the time (left out when the same person goes on within a few minutes) and its
text; my own messages sit on the right in a tinted block. Scrolling to the top
asks for the page before the oldest message shown. Enter sends, Shift+Enter
starts a new line.
"""

from __future__ import annotations

import time
import tkinter as tk
from collections.abc import Callable

import ttkbootstrap as ttk

from libimchat import Message, name_key

from .look import font

GROUP_SECONDS = 5 * 60
_SIDE = 120  # pixels between a message block and the far side of the pane
_PAD = 10  # pixels between a block's edge and its text


def _day(stamp: float) -> str:
    day = time.localtime(stamp)
    today = time.localtime()
    if day[:3] == today[:3]:
        return "Today"
    if day[:3] == time.localtime(time.time() - 86400)[:3]:
        return "Yesterday"
    return time.strftime("%A %d %B %Y", day)


class ConversationPane(ttk.Frame):
    """Shows one conversation and takes what the user writes.

    Args:
        master: the main view.
        on_send: called with the text when the user sends (Enter or "Send").
        on_need_older: called when the user scrolls to the top and more may exist.
        on_invite: called on "Invite…" (shown for rooms only).
    """

    def __init__(
        self,
        master: tk.Misc,
        *,
        on_send: Callable[[str], None],
        on_need_older: Callable[[], None],
        on_invite: Callable[[], None],
    ) -> None:
        super().__init__(master)
        self.on_send = on_send
        self.on_need_older = on_need_older
        self.me = ""
        self.open = False
        self.more_before = False  # the server may have older messages
        self.rendered: list[int] = []
        self._last: Message | None = None

        header = ttk.Frame(self, padding=(16, 10))
        header.pack(fill=tk.X)
        self.title = ttk.Label(header, font=font(self, size=4, weight="bold"), compound=tk.LEFT)
        self.title.pack(side=tk.LEFT)
        self.subtitle = ttk.Label(header, bootstyle="secondary")
        self.subtitle.pack(side=tk.LEFT, padx=(12, 0))
        self.invite = ttk.Button(
            header, text="Invite…", icon="person-plus", bootstyle="primary-outline",
            command=on_invite,
        )  # fmt: skip
        ttk.Separator(self).pack(fill=tk.X)

        composer = ttk.Frame(self, padding=(12, 10))
        composer.pack(side=tk.BOTTOM, fill=tk.X)
        self.send_button = ttk.Button(
            composer, text="Send", icon="send-fill", bootstyle="primary", command=self.submit
        )
        self.send_button.pack(side=tk.RIGHT, fill=tk.Y, padx=(10, 0))
        self.entry = ttk.Text(composer, height=3, wrap=tk.WORD, undo=True, padx=8, pady=6)
        self.entry.pack(side=tk.LEFT, fill=tk.X, expand=True)
        self.entry.bind("<Return>", self._on_return)
        self.entry.bind("<KP_Enter>", self._on_return)
        self.entry.bind("<Shift-Return>", self._on_shift_return)
        ttk.Separator(self).pack(side=tk.BOTTOM, fill=tk.X)

        body = ttk.Frame(self)
        body.pack(fill=tk.BOTH, expand=True)
        # coloured by restyle(), not by the theme, which would reset its padding
        self.text = ttk.Text(
            body, wrap=tk.WORD, padx=14, pady=10, borderwidth=0, highlightthickness=0,
            cursor="arrow", autostyle=False,
        )  # fmt: skip
        self.scrollbar = ttk.Scrollbar(
            body, orient=tk.VERTICAL, command=self.text.yview, bootstyle="round"
        )
        self.text.configure(yscrollcommand=self._on_scroll)
        self.scrollbar.pack(side=tk.RIGHT, fill=tk.Y)
        self.text.pack(side=tk.LEFT, fill=tk.BOTH, expand=True)
        for wheel in ("<Button-4>", "<MouseWheel>"):
            self.text.bind(wheel, lambda _: self.after_idle(self._check_top), add=True)
        self._checking = False
        self.restyle()
        self.close()

    # --- look

    def restyle(self) -> None:
        """Colour the transcript with the current theme."""
        colors = ttk.Style.get_instance().colors
        dark = ttk.Style.get_instance().theme_mode == "dark"
        page, ink = colors.inputbg, colors.inputfg
        mine_bg = _mix(colors.primary, page, 0.30 if dark else 0.14)
        theirs_bg = _mix(ink, page, 0.10 if dark else 0.06)
        muted = _mix(ink, page, 0.55)
        text = self.text
        text.configure(
            background=page,
            foreground=ink,
            selectbackground=colors.selectbg,
            selectforeground=colors.selectfg,
            inactiveselectbackground=colors.selectbg,
        )
        text.tag_configure("meta", font=font(self, size=-1), foreground=muted, spacing1=8)
        text.tag_configure("sender", font=font(self, size=-1, weight="bold"), foreground=ink)
        text.tag_configure("mine-sender", foreground=colors.primary)
        text.tag_configure("mine-meta", justify=tk.RIGHT)
        # a block: the tinted background runs to the margin on the far side; the
        # margin on the near side takes the same tint, which pads the text
        text.tag_configure(
            "theirs", background=theirs_bg, lmargin1=_PAD, lmargin2=_PAD, rmargin=_SIDE,
            lmargincolor=theirs_bg, rmargincolor=page,
        )  # fmt: skip
        text.tag_configure(
            "mine", background=mine_bg, lmargin1=_SIDE, lmargin2=_SIDE, rmargin=_PAD,
            lmargincolor=page, rmargincolor=mine_bg, justify=tk.RIGHT,
        )  # fmt: skip
        text.tag_configure("top", spacing1=_PAD - 2)
        text.tag_configure("bottom", spacing3=_PAD - 2)
        text.tag_configure("gap", font=font(self, size=-6))
        text.tag_configure("day", justify=tk.CENTER, foreground=muted, spacing1=12, spacing3=2)
        text.tag_configure(
            "hint", justify=tk.CENTER, foreground=muted, spacing1=40, font=font(self, size=1)
        )
        # a tagged range draws over the selection unless the selection is raised
        text.tag_raise("sel")

    # --- what is shown

    def show(self, title: str, subtitle: str, *, room: bool, me: str) -> None:
        """Open a conversation: header, an empty transcript saying it is loading."""
        self.open = True
        self.me = me
        self.more_before = False
        self.set_header(title, subtitle, room=room)
        self._reset()
        self._hint("Loading…")
        self.set_writable(True)

    def set_header(self, title: str, subtitle: str, *, room: bool) -> None:
        self.title.configure(
            text=f" {title}", image=ttk.Icon("hash" if room else "person-circle", 20, "primary")
        )
        self.subtitle.configure(text=subtitle)
        if room:
            self.invite.pack(side=tk.RIGHT)
        else:
            self.invite.pack_forget()

    def set_writable(self, writable: bool) -> None:
        state = tk.NORMAL if writable and self.open else tk.DISABLED
        self.entry.configure(state=state)
        self.send_button.configure(state=state)

    def close(self) -> None:
        """Show no conversation: a hint, and nowhere to write."""
        self.open = False
        self.title.configure(text="", image="")
        self.subtitle.configure(text="")
        self.invite.pack_forget()
        self._reset()
        self._hint("Pick someone or a room on the left to start chatting.")
        self.set_writable(False)

    def render(
        self, messages: list[Message], *, more_before: bool, keep_view: bool = False
    ) -> None:
        """Show ``messages`` (oldest first) in place of what is shown.

        Args:
            more_before: the server may hold older ones (scrolling up asks for them).
            keep_view: keep the message at the top of the view there (after a
                page of older messages came); otherwise scroll to the newest.
        """
        anchor = self._top_message() if keep_view else None
        self.more_before = more_before
        self._reset()
        if not messages:
            self._hint("No messages yet. Say hello!")
        for message in messages:
            self._insert(message)
        if anchor is not None and anchor in self.rendered:
            self.text.yview(f"msg-{anchor}")
        else:
            self._to_bottom()

    def append(self, message: Message) -> None:
        """Add a new message at the bottom (ignored if shown already)."""
        if message.id in self.rendered:
            return
        if self.rendered and message.id < self.rendered[-1]:
            return  # an old one arriving late: only a full render places it
        at_bottom = self.text.yview()[1] >= 0.999
        self._insert(message)
        if at_bottom or name_key(message.sender) == name_key(self.me):
            self._to_bottom()

    def transcript(self) -> str:
        """The transcript's text, as shown."""
        return self.text.get("1.0", "end-1c")

    def bodies(self) -> list[str]:
        """The text of each message shown, top to bottom."""
        bodies = []
        for message_id in self.rendered:
            ranges = self.text.tag_ranges(f"body-{message_id}")
            bodies.append(self.text.get(ranges[0], ranges[1]).rstrip("\n"))
        return bodies

    def own(self, message_id: int) -> bool:
        """Whether the message is drawn as mine."""
        first = self.text.tag_ranges(f"body-{message_id}")[0]
        return "mine" in self.text.tag_names(first)

    # --- writing

    def submit(self) -> None:
        text = self.entry.get("1.0", "end-1c").strip()
        if not text or str(self.entry.cget("state")) == tk.DISABLED:
            return
        self.entry.delete("1.0", tk.END)
        self.on_send(text)

    def restore(self, text: str) -> None:
        """Put back text that could not be sent (unless the user typed something new)."""
        if not self.entry.get("1.0", "end-1c").strip():
            self.entry.insert("1.0", text)

    def _on_return(self, _event: tk.Event[tk.Misc]) -> str:
        self.submit()
        return "break"

    def _on_shift_return(self, _event: tk.Event[tk.Misc]) -> str:
        self.entry.insert(tk.INSERT, "\n")
        self.entry.see(tk.INSERT)
        return "break"

    # --- drawing

    def _reset(self) -> None:
        self.text.configure(state=tk.NORMAL)
        self.text.delete("1.0", tk.END)
        for mark in self.text.mark_names():
            if mark.startswith("msg-"):
                self.text.mark_unset(mark)
        for tag in self.text.tag_names():
            if tag.startswith("body-"):
                self.text.tag_delete(tag)
        self.text.configure(state=tk.DISABLED)
        self.rendered = []
        self._last = None

    def _hint(self, text: str) -> None:
        self.text.configure(state=tk.NORMAL)
        self.text.insert(tk.END, text, ("hint",))
        self.text.configure(state=tk.DISABLED)

    def _insert(self, message: Message) -> None:
        text = self.text
        text.configure(state=tk.NORMAL)
        if not self.rendered:
            text.delete("1.0", tk.END)  # the hint
        mine = name_key(message.sender) == name_key(self.me)
        side = "mine" if mine else "theirs"
        last = self._last
        text.mark_set(f"msg-{message.id}", "end-1c")
        text.mark_gravity(f"msg-{message.id}", tk.LEFT)
        if last is None or _day(last.sent_at) != _day(message.sent_at):
            text.insert(tk.END, f"{_day(message.sent_at)}\n", ("day",))
            last = None
        if (
            last is None
            or last.sender != message.sender
            or (message.sent_at - last.sent_at > GROUP_SECONDS)
        ):
            meta_tags = ("meta", "mine-meta") if mine else ("meta",)
            sender_tags = ("sender", "mine-sender") if mine else ("sender",)
            text.insert(tk.END, "You" if mine else message.sender, (*meta_tags, *sender_tags))
            stamp = time.strftime("%H:%M", time.localtime(message.sent_at))
            text.insert(tk.END, f"  {stamp}\n", meta_tags)
        start = text.index("end-1c")
        text.insert(tk.END, f"{message.body}\n", ("body", side, f"body-{message.id}"))
        # padding above the first line and below the last, inside the block
        text.tag_add("top", start, f"{start} lineend +1c")
        text.tag_add("bottom", "end-1c -1 lines linestart", "end-1c")
        text.insert(tk.END, "\n", ("gap",))
        text.configure(state=tk.DISABLED)
        self.rendered.append(message.id)
        self._last = message

    def _to_bottom(self) -> None:
        # line heights are measured lazily: measure them all first, or "the end"
        # is where Tk estimates it to be
        self.text.tk.call(str(self.text), "sync")
        self.text.yview_moveto(1.0)

    def _top_message(self) -> int | None:
        top = self.text.index("@0,0")
        for message_id in self.rendered:
            if self.text.compare(f"msg-{message_id}", ">=", top):
                return message_id
        return None

    # --- scrolling up for more

    def _on_scroll(self, first: str, last: str) -> None:
        self.scrollbar.set(first, last)
        if float(first) <= 0.0 and not self._checking:
            self._checking = True
            self.after_idle(self._check_top)

    def _check_top(self) -> None:
        self._checking = False
        if not self.open or not self.more_before or not self.rendered:
            return
        if self.text.yview()[0] <= 0.0:
            self.on_need_older()


def _mix(color: str, background: str, amount: float) -> str:
    """``color`` laid over ``background`` at ``amount`` opacity, as #rrggbb."""
    fg = [int(color[i : i + 2], 16) for i in (1, 3, 5)]
    bg = [int(background[i : i + 2], 16) for i in (1, 3, 5)]
    mixed = [round(f * amount + b * (1 - amount)) for f, b in zip(fg, bg, strict=True)]
    return "#" + "".join(f"{c:02x}" for c in mixed)
