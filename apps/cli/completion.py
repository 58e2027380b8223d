"""Tab completion for the chatter: command names, then usernames and room names by argument."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document

from libimchat import name_key

from .slash import BY_NAME, SLASH_COMMANDS, ArgKind


class ChatCompleter(Completer):
    """Completes what the chatter knows: the usernames and room names it has seen.

    Args:
        users: the usernames known now.
        rooms: the room names known now.
    """

    def __init__(
        self, users: Callable[[], Iterable[str]], rooms: Callable[[], Iterable[str]]
    ) -> None:
        self._users = users
        self._rooms = rooms

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterator[Completion]:
        text = document.text_before_cursor
        if not text.startswith("/"):
            word = text.rsplit(" ", 1)[-1]
            yield from _matching(self._candidates("text", word), word)
            return
        name, space, rest = text.partition(" ")
        if not space:
            for command in SLASH_COMMANDS:
                if command.name.startswith(name.lower()):
                    yield Completion(
                        command.name + (" " if command.args else ""),
                        start_position=-len(name),
                        display=command.name,
                        display_meta=command.help,
                    )
            return
        known = BY_NAME.get(name.lower())
        if known is None or not known.args:
            return
        kinds = known.args
        first = kinds[0]
        if " " not in rest:
            yield from _matching(self._candidates(first, rest), rest)
            return
        last = rest.rsplit(" ", 1)[1]
        if len(kinds) > 1:
            yield from _matching(self._candidates(kinds[-1], last), last)
        if first == "room":  # a room name with spaces in it
            yield from _matching(self._candidates("room", rest), rest)

    def _candidates(self, kind: ArgKind, typed: str) -> list[str]:
        rooms = ["#" + room for room in self._rooms()] if typed.startswith("#") else []
        if kind in ("user", "text"):
            return list(self._users())
        if kind == "room":
            return rooms or list(self._rooms())
        if kind == "target":
            return rooms or list(self._users())
        return []


def _matching(candidates: Iterable[str], typed: str) -> Iterator[Completion]:
    prefix = name_key(typed)
    for candidate in sorted(set(candidates), key=name_key):
        if name_key(candidate).startswith(prefix) and candidate != typed:
            yield Completion(candidate, start_position=-len(typed))
