"""Before the chat: log in, or walk through ``/signup`` and then log in.

Passwords are read with getpass, so that nothing of them shows (prompt_toolkit
would draw asterisks). getpass blocks the event loop while it waits, which is
harmless before login: the client's own thread keeps the connection alive and
no event is due yet. What the server refuses is shown with the server's own
message; the sign-up questions then start again with the answers given so far
filled in, so fixing one field costs one edit.
"""

from __future__ import annotations

import getpass

from prompt_toolkit import PromptSession

from libimchat import AsyncClient, ChatError

from .render import error_line, info_line, status_line
from .terminal import show

SIGNUP_FIELDS = (
    ("first_name", "first name"),
    ("last_name", "last name"),
    ("phone", "phone"),
    ("username", "username"),
)
# refusals the user can fix by answering again; any other failure ends the program
FIXABLE = frozenset({"bad_credentials", "missing_fields", "invalid", "username_taken"})

Credentials = tuple[str, str]


async def sign_in(
    client: AsyncClient,
    session: PromptSession[str],
    *,
    username: str | None,
    password: str | None,
) -> Credentials | None:
    """Log in, asking for what is missing, with ``/signup`` offered at the username question.

    Returns:
        The username and password that logged in, or ``None`` if the user gave
        up (``/quit`` or Ctrl-D).

    Raises:
        ChatError: a failure that answering again cannot fix (no server, ...).
    """
    hinted = False
    while True:
        if username is None:
            if not hinted:
                show(info_line("Log in, or type /signup to create an account."))
                hinted = True
            try:
                answer = (await session.prompt_async("username: ")).strip()
            except EOFError:
                return None
            if answer == "/quit":
                return None
            if answer == "/signup":
                created = await _sign_up(client, session)
                if created is None:
                    continue
                username, password = created
            elif not answer:
                continue
            else:
                username = answer
        if password is None:
            try:
                password = getpass.getpass(f"password for {username}: ")
            except EOFError:
                return None
        try:
            await client.login(username, password)
        except ChatError as exc:
            if exc.code not in FIXABLE:
                raise
            show(error_line(exc.message))
            username = password = None
            continue
        return username, password


async def _sign_up(client: AsyncClient, session: PromptSession[str]) -> Credentials | None:
    show(info_line("New account: answer each question (Ctrl-D cancels)."))
    answers = dict.fromkeys((name for name, _ in SIGNUP_FIELDS), "")
    password = ""
    while True:
        try:
            for name, question in SIGNUP_FIELDS:
                typed = await session.prompt_async(f"{question}: ", default=answers[name])
                answers[name] = typed.strip()
            password = _new_password(password)
        except EOFError:
            show(info_line("Sign-up cancelled."))
            return None
        try:
            await client.signup(
                answers["username"],
                password,
                first_name=answers["first_name"],
                last_name=answers["last_name"],
                phone=answers["phone"],
            )
        except ChatError as exc:
            if exc.code not in FIXABLE:
                raise
            show(error_line(exc.message))
            show(info_line("Fix it and press Enter on the other answers to keep them."))
            continue
        show(status_line(f"account {answers['username']} created"))
        return answers["username"], password


def _new_password(previous: str) -> str:
    """A password typed twice alike; Enter alone keeps ``previous`` (on a second round)."""
    while True:
        if previous:
            typed = getpass.getpass("password (Enter keeps the one you typed): ")
            if not typed:
                return previous
        else:
            typed = getpass.getpass("password: ")
        if getpass.getpass("password again: ") == typed:
            return typed
        show(error_line("the two passwords differ"))
