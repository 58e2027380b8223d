"""imchat's terminal front end: ``imchat chat``, and ``send``, ``history``, ``users``, ``rooms``.

``imchat chat`` (chatter.py) is the interactive chat; the others (commands.py)
are for scripts and shell users. ``imchat`` (``libimchat.__main__``) calls
:func:`main` with the command's name first.
"""

from __future__ import annotations

import importlib.util

from . import commands
from .options import fail


def main(argv: list[str]) -> int:
    """Run ``imchat <command> ...``; ``argv[0]`` is the command. Returns the exit status."""
    command = argv[0] if argv else ""
    try:
        if command == "chat":
            if importlib.util.find_spec("prompt_toolkit") is None:
                return fail("imchat chat needs prompt_toolkit: pip install 'libimchat[cli]'", 2)
            from . import chatter  # imports prompt_toolkit

            return chatter.main(argv)
        if command in commands.COMMANDS:
            return commands.main(argv)
    except KeyboardInterrupt:
        return 130
    return fail(f"no command {command!r} here; try: chat, {', '.join(commands.COMMANDS)}", 2)
