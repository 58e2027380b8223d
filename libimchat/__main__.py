"""``imchat``: run a libimchat server from the command line.

``imchat serve`` keeps its database in the per-user data dir unless given
``--data-dir``, and prints the URL clients connect to.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from .server import Server, default_data_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imchat", description="libimchat chat server")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run a chat server")
    serve.add_argument("--data-dir", default=None, help=f"default: {default_data_dir()}")
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    serve.add_argument("--port", type=int, default=5555, help="request port (0: any free)")
    serve.add_argument("--pub-port", type=int, default=None, help="default: port + 1")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    server = Server(args.data_dir, host=args.host, port=args.port, pub_port=args.pub_port)
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    server.start()
    print(f"libimchat server at {server.url}  (data in {server.data_dir})", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
