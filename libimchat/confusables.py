"""When two names look alike: the skeleton of a name, after Unicode UTS #39.

UTS #39 (Unicode Security Mechanisms, section 4 "Confusable Detection")
defines ``skeleton(X) = NFD(map(NFD(X)))``, where ``map`` replaces each
character by its *prototype* from confusables.txt (Cyrillic "а" by Latin "a",
"m" by "rn", "0" by "O"...); two strings whose skeletons are equal are
confusable. A skeleton is a comparison key only, never shown to anyone.

Names here are case-insensitive, so the skeleton is taken of the name key
(:func:`~libimchat.validation.name_key`), and because a prototype may itself
be changed by the key ("0" becomes "O", whose key is "o"), key and map are
applied again until nothing changes. That makes ``skeleton`` idempotent, and
"B0B", "bob" and "bоb" (a Cyrillic "о") one skeleton.

The map is read once, on first use, from confusables.txt beside this module:
the entries of Unicode's file that can apply to a name key (see its header).
"""

from __future__ import annotations

import functools
import unicodedata
from importlib import resources

from .validation import name_key

# more rounds than any character needs (three at most with the shipped data)
_ROUNDS = 8


@functools.cache
def _prototypes() -> dict[int, str]:
    """The prototype of each source character, as a ``str.translate`` table."""
    text = resources.files(__package__).joinpath("confusables.txt").read_text(encoding="utf-8")
    table: dict[int, str] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            source, prototype = line.split(";")
            table[int(source, 16)] = "".join(chr(int(cp, 16)) for cp in prototype.split())
    return table


def skeleton(name: str) -> str:
    """The form in which two names that look alike are equal (UTS #39 skeleton of the key).

    Args:
        name: a username or room name, as typed.

    Returns:
        A string for comparison only: names with equal skeletons are confusable.
    """
    prototypes = _prototypes()
    current = name
    for _ in range(_ROUNDS):
        mapped = unicodedata.normalize("NFD", name_key(current))
        mapped = unicodedata.normalize("NFD", mapped.translate(prototypes))
        if mapped == current:
            break
        current = mapped
    return current
