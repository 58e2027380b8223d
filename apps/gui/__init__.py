"""The desktop app of libimchat (``imchat gui``), on Tk with a ttkbootstrap theme.

One window shows the sign-in, sign-up or chat view. Every library call runs off
the Tk thread (see :mod:`imchat_gui.bridge`), so a slow or vanished server never
freezes the window. Install it with ``pip install 'libimchat[gui]'``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import tkinter as tk

from libimchat import ChatError

DEFAULT_URL = "tcp://127.0.0.1:5555"


def main(argv: list[str]) -> int:
    """Run the desktop app until its window closes.

    Args:
        argv: the command line after ``imchat``; ``argv[0]`` is ``"gui"``.

    Returns:
        The exit status: 0 after the window is closed (or Ctrl-C), 1 without a
        display, 2 for a bad URL.
    """
    parser = argparse.ArgumentParser(prog="imchat gui", description="the libimchat desktop app")
    parser.add_argument("--url", default=DEFAULT_URL, help=f"the server (default: {DEFAULT_URL})")
    parser.add_argument("--server-key", help="the server's public key, if the URL has none")
    parser.add_argument(
        "--insecure", action="store_true", help="plain text, to a server run with --insecure"
    )
    parser.add_argument("--dark", action="store_true", help="start with the dark theme")
    parser.add_argument("--verbose", action="store_true", help="log what happens")
    args = parser.parse_args(argv[1:])
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    from .app import ChatApp  # Tk and ttkbootstrap load only when the window is wanted

    try:
        app = ChatApp(args.url, server_key=args.server_key, insecure=args.insecure, dark=args.dark)
    except ChatError as exc:
        print(f"imchat gui: {exc.message}", file=sys.stderr)
        return 2
    except tk.TclError as exc:
        print(f"imchat gui needs a graphical display ({exc})", file=sys.stderr)
        return 1
    # Ctrl-C or a kill closes the window properly (signing out); Python sees the
    # signal between two Tk events, which the bridge's polling guarantees
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: app.root.after_idle(app.close))
    try:
        app.run()
    finally:
        app.close()
    return 0
