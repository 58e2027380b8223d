"""Desktop notifications: a real one reaching the session bus, and none where there is no service.

The end-to-end test runs a private D-Bus session bus, dunst (a notification
service) on the Xvfb display and dbus-monitor, then lets the app's default
notifier do its work: plyer -> notify-send -> the bus -> dunst. What the
monitor prints is what a desktop would show.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import plyer
import pytest
from imchat_gui.app import ChatApp
from imchat_gui.notify import Notifications, Notifier, desktop_notifier

from libimchat import Client

if TYPE_CHECKING:
    from tests.gui_support import Driver

pytest_plugins = ["tests.gui_support"]

DEADLINE = 10.0
NOTIFICATIONS = "org.freedesktop.Notifications"


class Bus:
    """A private session bus with a notification service, watched by dbus-monitor."""

    def __init__(self, display: str) -> None:
        for tool in ("dbus-daemon", "dbus-monitor", "dbus-send", "dunst", "notify-send"):
            if shutil.which(tool) is None:
                pytest.fail(f"{tool} is missing (.ci/run installs dbus, dunst, libnotify-bin)")
        self.processes: list[subprocess.Popen[str]] = []
        self.lines: list[str] = []
        self._lock = threading.Lock()
        daemon = self._start(["dbus-daemon", "--session", "--nofork", "--print-address=1"])
        assert daemon.stdout is not None
        self.address = daemon.stdout.readline().strip()
        assert self.address, "dbus-daemon printed no address"
        self.env = {**os.environ, "DISPLAY": display, "DBUS_SESSION_BUS_ADDRESS": self.address}
        self._start(["dunst"], stdout=subprocess.DEVNULL)
        self._until(self._service_up, "dunst on the bus")
        monitor = self._start(
            ["dbus-monitor", "--address", self.address, f"interface='{NOTIFICATIONS}'"]
        )
        threading.Thread(target=self._read, args=(monitor,), daemon=True).start()
        self._until(lambda: bool(self.output()), "dbus-monitor listening")

    def _start(self, command: list[str], stdout: int = subprocess.PIPE) -> subprocess.Popen[str]:
        env = getattr(self, "env", None)
        process = subprocess.Popen(
            command, stdout=stdout, stderr=subprocess.DEVNULL, text=True, env=env
        )
        self.processes.append(process)
        return process

    def _service_up(self) -> bool:
        send = ["dbus-send", "--session", "--print-reply", "--dest=org.freedesktop.DBus"]
        owner = ["org.freedesktop.DBus.NameHasOwner", f"string:{NOTIFICATIONS}"]
        asked = subprocess.run(
            [*send, "/org/freedesktop/DBus", *owner],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=DEADLINE,
        )
        return "boolean true" in asked.stdout

    def _read(self, monitor: subprocess.Popen[str]) -> None:
        assert monitor.stdout is not None
        for line in monitor.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def _until(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + DEADLINE
        while not condition():
            if time.monotonic() > deadline:
                self.close()
                pytest.fail(f"not {what} within {DEADLINE} s")
            time.sleep(0.05)  # a polling interval, not a guess at how long anything takes

    def close(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
        for process in self.processes:
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes = []


@pytest.fixture
def bus(display: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bus]:
    bus = Bus(display)
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", bus.address)
    yield bus
    bus.close()


@pytest.fixture
def notifier() -> Notifier:
    """These tests use the app's real, default notifier."""
    return desktop_notifier


def test_a_message_in_a_closed_conversation_is_a_real_desktop_notification(
    bus: Bus, app: ChatApp, ui: Driver, peer: Callable[[str], Client]
) -> None:
    bob = peer("bob")
    ui.sign_in(app, "ali")
    bob.send("ali", "hello from bob")

    def notified() -> bool:
        seen = bus.output()
        return "member=Notify" in seen and 'string "hello from bob"' in seen

    ui.pump(app, notified, "the Notify call on the session bus")
    seen = bus.output()
    assert 'string "bob"' in seen  # the title: who wrote
    assert 'string "imchat"' in seen  # the application's name


def test_the_default_notifier_goes_on_without_a_notification_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Nowhere:
        def notify(self, **_: object) -> None:
            raise NotImplementedError("No usable implementation found!")

    monkeypatch.setattr(plyer, "notification", Nowhere())
    desktop_notifier("title", "text")  # no exception


def test_the_default_notifier_survives_a_failing_service(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        def notify(self, **_: object) -> None:
            raise OSError("notify-send crashed")

    monkeypatch.setattr(plyer, "notification", Broken())
    desktop_notifier("title", "text")  # no exception


def test_a_stuck_notifier_does_not_hold_the_window(
    display: str, ui: Driver, peer: Callable[[str], Client]
) -> None:
    release = threading.Event()
    shown: list[str] = []

    def stuck(title: str, text: str) -> None:
        shown.append(text)
        release.wait(DEADLINE)

    bob = peer("bob")
    app = ChatApp(ui.server.url, notifier=stuck, timeout=5.0)
    try:
        main = ui.sign_in(app, "ali")
        bob.send("ali", "one")
        bob.send("ali", "two")
        ui.pump(
            app,
            lambda: main.people.badge("bob") == 2 and bool(shown),
            "both messages counted, the first notified",
        )
        assert shown == ["one"]  # the second waits its turn, off the Tk thread
    finally:
        release.set()
        app.close()


def test_notifications_keep_their_order_and_a_raising_notifier_is_forgotten() -> None:
    seen: list[str] = []
    done = threading.Event()

    def flaky(title: str, text: str) -> None:
        seen.append(text)
        if text == "last":
            done.set()
        if text == "boom":
            raise RuntimeError("the service fell over")

    notifications = Notifications(flaky)
    for text in ("first", "boom", "last"):
        notifications.show("t", text)
    assert done.wait(DEADLINE)
    notifications.close()
    assert seen == ["first", "boom", "last"]
