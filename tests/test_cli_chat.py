"""``imchat chat`` end to end: real chat processes in pseudo-terminals (pexpect), a real server.

What a chat process writes is read two ways. The transcript is the text with
escape sequences stripped, in order: checks wait on it with a deadline. The
screen is what a terminal would show: a small VT100 model below follows the
cursor moves and erasures prompt_toolkit uses, to check that a half-typed line
survives a message arriving.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest

from libimchat import Client, Server
from tests.helpers import HEARTBEAT, LIVENESS, signup, wait_for

ROWS, COLUMNS = 30, 100
TIMEOUT = 10.0
_ESCAPE = re.compile(
    r"\x1b(?:\[(?P<params>[0-?]*)[ -/]*(?P<final>[@-~])"  # CSI: cursor, erase, colours, modes
    r"|\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC: window title
    r"|[()][0-9A-Za-z]|[=>78cDEM])"
)
_FORWARD = re.compile(r"\x1b\[(\d*)C")  # prompt_toolkit moves right instead of writing blanks


def _plain(raw: str) -> str:
    spaced = _FORWARD.sub(lambda m: " " * int(m[1] or 1), raw)
    return _ESCAPE.sub("", spaced).replace("\r", "")


class Screen:
    """Just enough of a VT100 to see what prompt_toolkit draws on a terminal."""

    def __init__(self, rows: int, columns: int) -> None:
        self.rows, self.columns = rows, columns
        self.cells = [[" "] * columns for _ in range(rows)]
        self.y = self.x = 0
        self.autowrap = True
        self._pending = ""

    def feed(self, data: str) -> None:
        data, self._pending = self._pending + data, ""
        i = 0
        while i < len(data):
            ch = data[i]
            if ch == "\x1b":
                match = _ESCAPE.match(data, i)
                if match is None and len(data) - i < 32:
                    self._pending = data[i:]  # the rest of the sequence comes with the next read
                    return
                if match is not None:
                    self._escape(match)
                    i = match.end()
                    continue
            elif ch == "\r":
                self.x = 0
            elif ch == "\n":
                self._line_feed()
            elif ch == "\b":
                self.x = max(0, self.x - 1)
            elif ch >= " ":
                if self.x >= self.columns:
                    if not self.autowrap:
                        self.x = self.columns - 1
                    else:
                        self.x = 0
                        self._line_feed()
                self.cells[self.y][self.x] = ch
                self.x += 1
            i += 1

    def _escape(self, match: re.Match[str]) -> None:
        params, final = match["params"], match["final"]
        if final is None:
            return
        if params.startswith("?"):
            if params == "?7":
                self.autowrap = final == "h"
            return
        numbers = [int(n) if n else 0 for n in params.split(";")]
        n = max(numbers[0], 1)
        if final == "A":
            self.y = max(0, self.y - n)
        elif final == "B":
            self.y = min(self.rows - 1, self.y + n)
        elif final == "C":
            self.x = min(self.columns - 1, self.x + n)
        elif final == "D":
            self.x = max(0, self.x - n)
        elif final == "G":
            self.x = n - 1
        elif final in "Hf":
            self.y = max(numbers[0], 1) - 1
            self.x = max(numbers[1] if len(numbers) > 1 else 1, 1) - 1
        elif final == "J":
            if numbers[0] == 2:
                self.cells = [[" "] * self.columns for _ in range(self.rows)]
            else:
                self.cells[self.y][self.x :] = [" "] * (self.columns - self.x)
                for row in range(self.y + 1, self.rows):
                    self.cells[row] = [" "] * self.columns
        elif final == "K":
            start = 0 if numbers[0] == 2 else self.x
            self.cells[self.y][start:] = [" "] * (self.columns - start)

    def _line_feed(self) -> None:
        if self.y == self.rows - 1:
            self.cells = [*self.cells[1:], [" "] * self.columns]
        else:
            self.y += 1

    def lines(self) -> list[str]:
        """The screen's lines, without trailing blanks, down to the last non-blank one."""
        text = ["".join(row).rstrip() for row in self.cells]
        while text and not text[-1]:
            text.pop()
        return text


class Chat:
    """An ``imchat chat`` process in a pseudo-terminal."""

    def __init__(
        self,
        url: str,
        *args: str,
        password: str | None = None,
        password_stdin: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        env = {k: v for k, v in (env or os.environ).items() if k != "IMCHAT_PASSWORD"}
        env.update(TERM="xterm", NO_COLOR="1", PROMPT_TOOLKIT_NO_CPR="1")
        if password is not None:
            env["IMCHAT_PASSWORD"] = password
        command = [sys.executable, "-m", "libimchat", "chat", "--url", url, *args]
        if password_stdin is not None:
            # the password comes through a pipe; the keys still come from the terminal
            env["PIPED"] = password_stdin
            command = ["sh", "-c", 'echo "$PIPED" | exec "$@"', "sh", *command, "--password-stdin"]
        self.child = pexpect.spawn(
            command[0], command[1:], env=env, dimensions=(ROWS, COLUMNS), encoding="utf-8"
        )
        self.raw = ""
        self.transcript = ""
        self.screen = Screen(ROWS, COLUMNS)
        self._seen = 0

    def _read(self, deadline: float) -> None:
        try:
            chunk = self.child.read_nonblocking(4096, timeout=max(deadline - time.monotonic(), 0))
        except pexpect.TIMEOUT:
            return
        self.raw += chunk
        self.screen.feed(chunk)
        self.transcript = _plain(self.raw)

    def expect(self, pattern: str, timeout: float = TIMEOUT) -> re.Match[str]:
        """Wait for ``pattern`` (a regex) in the transcript after the last match."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while (match := regex.search(self.transcript, self._seen)) is None:
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{pattern!r} not seen within {timeout} s; got:\n{self.transcript[-1500:]}"
                )
            self._read(deadline)
        self._seen = match.end()
        return match

    def wait_screen(self, check: Callable[[list[str]], bool], timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not check(self.screen.lines()):
            if time.monotonic() >= deadline:
                screen = "\n".join(self.screen.lines())
                raise AssertionError(f"the screen is not as expected:\n{screen}")
            self._read(deadline)

    def type(self, keys: str) -> None:
        self.child.send(keys)

    def line(self, text: str) -> None:
        self.child.send(text + "\r")

    def quit(self) -> None:
        self.line("/quit")
        self.child.expect(pexpect.EOF, timeout=TIMEOUT)
        self.child.close()
        assert self.child.exitstatus == 0, self.transcript[-1500:]
        assert "Traceback" not in self.transcript

    def kill(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)


@pytest.fixture
def chats() -> Iterator[Callable[..., Chat]]:
    """Start chat processes; any still running at the end of the test is killed."""
    started: list[Chat] = []

    def start(url: str, *args: str, **options: Any) -> Chat:
        chat = Chat(url, *args, **options)
        started.append(chat)
        return chat

    yield start
    for chat in started:
        chat.kill()


def _account(server: Server, username: str) -> None:
    with Client(server.url, timeout=5) as client:
        signup(client, username)


def test_two_users_sign_up_talk_in_private_and_in_a_room_rename_and_block(
    server: Server, chats: Callable[..., Chat]
) -> None:
    _account(server, "SAM")
    ali = chats(server.url)
    ali.expect("username: ")
    ali.line("/signup")
    for question, answer in [
        ("first name", "Ali"),
        ("last name", "Baba"),
        ("phone", "12"),
        ("username", "sam"),
        ("password", "secret"),
        ("password again", "secret"),
    ]:
        ali.expect(f"{question}: ")
        ali.line(answer)
    # the server's own messages, one refusal at a time; the answers are kept
    ali.expect("✗ the username 'sam' is taken")
    for question, keep in [("first name", "Ali"), ("last name", "Baba"), ("phone", "12")]:
        ali.expect(f"{question}: {keep}")
        ali.line("")
    ali.expect("username: sam")
    ali.line("\x15ALI")  # Ctrl-U clears the answer shown
    ali.expect(r"password \(Enter keeps the one you typed\): ")
    ali.line("")
    ali.expect("✗ a phone number has 6 to 15 digits")
    ali.expect("first name: Ali")
    ali.line("")
    ali.expect("last name: Baba")
    ali.line("")
    ali.expect("phone: 12")
    ali.line("\x150612345678")
    ali.expect("username: ALI")
    ali.line("")
    ali.expect(r"password \(Enter keeps the one you typed\): ")
    ali.line("")
    ali.expect("account ALI created")
    ali.expect("logged in as ALI")
    ali.expect("nobody else is online")

    sam = chats(server.url, "--user", "SAM")
    sam.expect("password for SAM: ")
    sam.line("pw")
    sam.expect("online: ALI")
    ali.expect("● SAM is online")

    # direct messages: unread in the prompt and a bell for another conversation
    sam.line("/query ALI")
    sam.expect("no messages with ALI yet")
    sam.line("hello ali")
    sam.expect("<SAM> hello ali")
    ali.expect(r"\[SAM\] <SAM> hello ali")
    ali.expect(r" SAM\(1\)> ")
    assert "\a" in ali.raw
    ali.line("/query SAM")
    ali.expect(r"<SAM> hello ali")  # recent history
    ali.expect(r"\[SAM\]> ")
    ali.line("hi sam")
    sam.expect(r"\d\d:\d\d <ALI> hi sam")
    sam.line("/users")
    sam.expect("● ALI  Ali Baba")
    sam.expect(r"● SAM  First Last \(you\)")

    # a room
    ali.line("/create Room1")
    ali.expect(r"you created #Room1")
    sam.expect("ALI created the room #Room1")
    sam.line("/join room1")
    sam.expect(r"you joined #Room1 \(2 members\)")
    sam.expect(r"\[#Room1\]> ")
    sam.line("hi room")
    ali.expect(r"\d\d:\d\d <SAM> hi room")  # Room1 is ALI's conversation now: no label
    ali.line("welcome")
    sam.expect(r"<ALI> welcome")

    # a rename, seen by both
    sam.line("/nick SAMMY")
    sam.expect("you are now SAMMY")
    ali.expect("SAM is now known as SAMMY")

    # blocking: the sender hears the server's refusal
    ali.line("/block SAMMY")
    ali.expect("you block SAMMY")
    sam.line("/msg ALI are you there")
    sam.expect("✗ not sent to ALI: ALI does not accept your messages")
    ali.line("/blocked")
    ali.expect("you block: SAMMY")
    ali.line("/unblock SAMMY")
    ali.expect("you no longer block SAMMY")
    sam.line("/msg ALI back again")
    ali.expect(r"\[SAMMY\] <SAMMY> back again")

    # a server error is one line with the server's message
    ali.line("/join Nowhere")
    ali.expect("✗ no room is called 'Nowhere'")
    sam.quit()
    ali.expect("○ SAMMY went offline")
    ali.quit()


def test_a_message_arriving_leaves_the_half_typed_line_intact(
    server: Server, chats: Callable[..., Chat], user: Callable[[str], Client]
) -> None:
    _account(server, "ALI")
    bob = user("BOB")
    ali = chats(server.url, "--user", "ALI", password_stdin="pw")
    ali.expect("logged in as ALI")
    ali.line("/query BOB")
    ali.expect(r"\[BOB\]> ")
    ali.type("half typed")
    ali.expect("half typed")

    bob.send("ALI", "interrupting message")
    ali.wait_screen(
        lambda screen: (
            re.fullmatch(r"\d\d:\d\d <BOB> interrupting message", screen[-2]) is not None
            and screen[-1] == "[BOB]> half typed"
        )
    )
    assert ali.screen.x == len("[BOB]> half typed")  # the cursor is where typing stopped
    ali.type(" line\r")
    event = wait_for(bob, lambda e: e.kind == "message" and e.message is not None)
    assert event.message is not None and event.message.body == "half typed line"
    ali.expect(r"<ALI> half typed line")
    ali.quit()


def test_login_retry_help_and_tab_completion(
    server: Server, chats: Callable[..., Chat], user: Callable[[str], Client]
) -> None:
    _account(server, "ALI")
    bob = user("BOB")
    bob.create_room("Lobby")
    ali = chats(server.url, "--user", "ALI", password="wrong")
    ali.expect("✗ wrong username or password")
    ali.expect("username: ")
    ali.line("ALI")
    ali.expect("password for ALI: ")
    ali.line("pw")
    ali.expect("logged in as ALI")
    ali.expect("online: BOB")

    ali.line("/help")
    ali.expect(r"/invite \[ROOM\] NAME +invite NAME to a room")
    ali.type("/jo\t")
    ali.expect("/join ")
    ali.type("lo\t")
    ali.expect("Lobby")
    ali.type("\r")
    ali.expect(r"you joined #Lobby \(2 members\)")
    ali.type("/msg B\t")
    ali.expect("BOB")
    ali.type(" hi via tab\r")
    event = wait_for(bob, lambda e: e.kind == "message" and e.message is not None)
    assert event.message is not None and event.message.body == "hi via tab"
    ali.line("/frobnicate")
    ali.expect("✗ no command /frobnicate; /help lists them")
    ali.quit()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("session_ttl", "back"),
    [
        (3600.0, "connected to the server again"),
        # the restarted server no longer knows the session: the chatter logs in again
        (0.001, "connected to the server again, logged in as ALI"),
    ],
    ids=["session-resumed", "session-forgotten"],
)
def test_losing_the_server_shows_one_line_and_the_chat_goes_on(
    tmp_path: Path, chats: Callable[..., Chat], session_ttl: float, back: str
) -> None:
    port, pub_port = _free_port(), _free_port()

    def serve() -> Server:
        return Server(
            tmp_path,
            port=port,
            pub_port=pub_port,
            heartbeat_interval=HEARTBEAT,
            heartbeat_liveness=LIVENESS,
            password_profile="fast",
            session_ttl=session_ttl,
        ).start()

    server = serve()
    try:
        _account(server, "ALI")
        _account(server, "BOB")
        ali = chats(server.url, "--user", "ALI", password="pw")
        ali.expect("logged in as ALI")
        ali.line("/query BOB")
        ali.expect(r"\[BOB\]> ")
        server.stop()
        ali.expect("lost the connection to the server; reconnecting")
        server = serve()
        ali.expect(re.escape(back) + "\n")
        assert ali.transcript.count("lost the connection") == 1
        ali.line("still here")
        ali.expect("<ALI> still here")
        with Client(server.url, timeout=5) as bob:
            bob.login("BOB", "pw")
            assert [m.body for m in bob.history("ALI")] == ["still here"]
        ali.quit()
    finally:
        server.stop()


DESKTOP_TOOLS = ("Xvfb", "dunst", "dbus-daemon", "dbus-monitor", "notify-send")


@pytest.fixture
def desktop() -> Iterator[dict[str, str]]:
    """A desktop with a notification service: Xvfb, a session bus and dunst on them.

    Yields the environment of a program on that desktop.
    """
    missing = [tool for tool in DESKTOP_TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: .ci/run installs them (never skipped)")
    started: list[subprocess.Popen[str]] = []
    try:
        xvfb = subprocess.Popen(
            ["Xvfb", "-displayfd", "1", "-screen", "0", "640x480x24"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        started.append(xvfb)
        bus = subprocess.Popen(
            ["dbus-daemon", "--session", "--nofork", "--print-address=1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        started.append(bus)
        assert xvfb.stdout is not None and bus.stdout is not None
        env = {
            **os.environ,
            "DISPLAY": ":" + xvfb.stdout.readline().strip(),
            "DBUS_SESSION_BUS_ADDRESS": bus.stdout.readline().strip(),
        }
        yield env
    finally:
        for process in reversed(started):
            process.terminate()
            process.wait(5)


def test_a_message_elsewhere_rings_the_bell_and_notifies_the_desktop(
    server: Server,
    chats: Callable[..., Chat],
    user: Callable[[str], Client],
    desktop: dict[str, str],
) -> None:
    monitor = pexpect.spawn(
        "dbus-monitor",
        [
            "interface='org.freedesktop.Notifications'",
            "type='signal',member='NameOwnerChanged',arg0='org.freedesktop.Notifications'",
        ],
        env=desktop,
        encoding="utf-8",
        timeout=TIMEOUT,
    )
    dunst = subprocess.Popen(
        ["dunst"], env=desktop, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        monitor.expect('string "org.freedesktop.Notifications"')  # dunst serves now
        _account(server, "ALI")
        bob = user("BOB")
        ali = chats(server.url, "--user", "ALI", password="pw", env=desktop)
        ali.expect("logged in as ALI")
        bob.send("ALI", "ping from bob")
        ali.expect(r"\[BOB\] <BOB> ping from bob")
        assert "\a" in ali.raw
        monitor.expect("member=Notify")
        monitor.expect('string "imchat: BOB"')
        monitor.expect('string "BOB: ping from bob"')
        ali.quit()
    finally:
        dunst.terminate()
        dunst.wait(5)
        monitor.terminate(force=True)
