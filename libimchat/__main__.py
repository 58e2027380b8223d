"""``imchat``: the command line of libimchat.

``imchat serve`` runs a server, ``imchat key`` prints its public key (making
its keypair if needed) and ``imchat backup DEST`` copies its database, even
while it runs (this module). The front ends add their own
commands, installed with the extras: ``imchat chat``, ``send``, ``history``,
``users`` and ``rooms`` (``libimchat[cli]``, package ``imchat_cli``) and
``imchat gui`` (``libimchat[gui]``, package ``imchat_gui``). Each front end has
a ``main(argv) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
from pathlib import Path

from . import store
from .address import server_url
from .capacity import raise_open_files_limit
from .directory import HEARTBEATS_PER_SECOND
from .keys import server_keypair
from .limits import Limits
from .server import DATABASE, Server, default_data_dir

FRONT_ENDS = {
    "chat": ("imchat_cli", "cli"),
    "send": ("imchat_cli", "cli"),
    "history": ("imchat_cli", "cli"),
    "users": ("imchat_cli", "cli"),
    "rooms": ("imchat_cli", "cli"),
    "gui": ("imchat_gui", "gui"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in FRONT_ENDS:
        return _front_end(argv)
    parser = argparse.ArgumentParser(
        prog="imchat",
        description="libimchat chat server and clients",
        epilog="client commands: " + ", ".join(FRONT_ENDS),
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run a chat server")
    serve.add_argument("--data-dir", default=None, help=f"default: {default_data_dir()}")
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    serve.add_argument("--port", type=int, default=5555, help="request port (0: any free)")
    serve.add_argument("--pub-port", type=int, default=None, help="default: port + 1")
    serve.add_argument(
        "--insecure",
        action="store_true",
        help="no encryption: anyone on the network reads every message and password",
    )
    serve.add_argument(
        "--message-rate",
        type=float,
        default=Limits.messages_per_second,
        help="messages per second one user may keep sending (default: %(default)g)",
    )
    serve.add_argument(
        "--message-burst",
        type=int,
        default=Limits.message_burst,
        help="messages one user may send at once (default: %(default)d)",
    )
    serve.add_argument(
        "--heartbeats-per-second",
        type=_positive,
        default=HEARTBEATS_PER_SECOND,
        help="heartbeats the server answers a second; with more clients, each is asked"
        " for fewer (default: %(default)g)",
    )
    key = commands.add_parser("key", help="print the server's public key (made if missing)")
    key.add_argument("--data-dir", default=None, help=f"default: {default_data_dir()}")
    backup = commands.add_parser(
        "backup", help="copy a server's database consistently, even while it runs"
    )
    backup.add_argument("destination", help="the file to write")
    backup.add_argument("--data-dir", default=None, help=f"default: {default_data_dir()}")
    args = parser.parse_args(argv)
    if args.command == "backup":
        return _backup(args.data_dir, args.destination)
    if args.command == "key":
        data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
        data_dir.mkdir(parents=True, exist_ok=True)
        print(server_keypair(data_dir)[0].decode())
        return 0

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    raise_open_files_limit()  # before the server reads it
    try:
        server = Server(
            args.data_dir,
            host=args.host,
            port=args.port,
            pub_port=args.pub_port,
            insecure=args.insecure,
            heartbeats_per_second=args.heartbeats_per_second,
            limits=Limits(messages_per_second=args.message_rate, message_burst=args.message_burst),
        )
    except ValueError as exc:  # a setting it cannot run with (an open-files limit too low)
        print(f"imchat: {exc}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    server.start()
    print(f"libimchat server at {server.url}  (data in {server.data_dir})", flush=True)
    if server.public_key is None:
        print(
            "WARNING: --insecure: messages and passwords cross the network in plain text;"
            " clients need --insecure too",
            flush=True,
        )
    else:
        print(f"public key: {server.public_key.decode()}", flush=True)
        elsewhere = server_url("HOST", server.port, server.public_key)
        print(f"clients elsewhere: imchat chat --url '{elsewhere}'", flush=True)
    if server.capacity.sessions is not None:
        print(
            f"capacity: {server.capacity.sessions:,} sessions"
            f" (open-files limit {server.capacity.limit:,})",
            flush=True,
        )
    server.serve_forever()
    return 0


def _backup(data_dir: str | None, destination: str) -> int:
    database = Path(data_dir) if data_dir else default_data_dir()
    database = database / DATABASE
    if not database.exists():
        print(f"imchat: no database at {database}", file=sys.stderr)
        return 1
    store.backup(database, destination)
    print(f"copied {database} to {destination}")
    return 0


def _front_end(argv: list[str]) -> int:
    package, extra = FRONT_ENDS[argv[0]]
    try:
        module = importlib.import_module(package)
    except ImportError as exc:
        print(
            f"imchat {argv[0]} needs the {extra} front end: pip install 'libimchat[{extra}]'"
            f" ({exc})",
            file=sys.stderr,
        )
        return 2
    return int(module.main(argv))


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


if __name__ == "__main__":
    sys.exit(main())
