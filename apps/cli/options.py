"""The options every client command shares (server URL, username, password) and how it fails."""

from __future__ import annotations

import argparse
import getpass
import os
import sys

DEFAULT_URL = "tcp://127.0.0.1:5555"  # where `imchat serve` listens by default
PASSWORD_ENV = "IMCHAT_PASSWORD"


class UsageError(Exception):
    """The command was called wrongly (exit status 2)."""


def add_connection_options(parser: argparse.ArgumentParser, *, user_required: bool) -> None:
    """Add the server options (URL, key, --insecure), --user, --password-stdin and --timeout."""
    parser.add_argument(
        "--url",
        default=DEFAULT_URL,
        help=f"the server, tcp://host:port#key as `imchat serve` prints it (default: {DEFAULT_URL},"
        " with the key of the server on this machine)",
    )
    parser.add_argument("--server-key", help="the server's public key, if the URL has none")
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="speak plain text, to a server run with --insecure",
    )
    parser.add_argument("--user", required=user_required, help="your username")
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help=f"read the password from the first line of standard input (else ${PASSWORD_ENV})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        help="seconds to wait for each answer of the server (default: 10)",
    )


def given_password(args: argparse.Namespace) -> str | None:
    """The password given up front: the first line of stdin, or ``$IMCHAT_PASSWORD``.

    Raises:
        UsageError: ``--password-stdin`` with nothing on standard input.
    """
    if args.password_stdin:
        line = sys.stdin.readline()
        if not line:
            raise UsageError("--password-stdin: standard input is empty")
        return line.rstrip("\r\n")
    return os.environ.get(PASSWORD_ENV) or None  # set but empty: not given


def password(args: argparse.Namespace, username: str) -> str:
    """The password given up front, else asked on the terminal without echo.

    Raises:
        UsageError: no password given and no terminal to ask on.
    """
    given = given_password(args)
    if given is not None:
        return given
    if not sys.stdin.isatty():
        raise UsageError(f"no password: set {PASSWORD_ENV} or pass --password-stdin")
    return getpass.getpass(f"password for {username}: ")


def fail(message: str, status: int) -> int:
    """Print ``imchat: <message>`` on stderr; returns the exit status."""
    print(f"imchat: {message}", file=sys.stderr)
    return status
