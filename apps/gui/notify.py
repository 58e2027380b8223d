"""Desktop notifications for messages the user is not looking at.

A notifier is any ``notifier(title, text)`` callable; the window takes one as a
parameter (tests pass a recorder). The default goes through plyer, which on
Linux runs ``notify-send`` and waits for it, and on a desktop without a
notification service raises ``NotImplementedError``: so notifiers run on a
thread of their own, and a failing one is logged and forgotten, never shown.
"""

from __future__ import annotations

import logging
import queue
import threading
import warnings
from collections.abc import Callable

log = logging.getLogger(__name__)

Notifier = Callable[[str, str], None]
APP_NAME = "imchat"


def desktop_notifier(title: str, text: str) -> None:
    """Show a desktop notification through plyer; do nothing where there is no service."""
    try:
        with warnings.catch_warnings():
            # plyer warns once that dbus-python is missing, then uses notify-send
            warnings.simplefilter("ignore")
            from plyer import notification

            notification.notify(title=title, message=text, app_name=APP_NAME, timeout=10)
    except NotImplementedError:
        log.debug("no desktop notification service; going on without one")
    except Exception:
        log.debug("the desktop notification failed", exc_info=True)


class Notifications:
    """Hands notifications to a notifier on a background thread, one after another.

    The thread is a daemon: a notifier stuck on a dead notification service
    must not keep the application from exiting.

    Args:
        notifier: shows one notification; may block, may raise.
    """

    def __init__(self, notifier: Notifier) -> None:
        self._notifier = notifier
        self._queue: queue.SimpleQueue[tuple[str, str] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="imchat-notify", daemon=True)
        self._thread.start()

    def show(self, title: str, text: str) -> None:
        self._queue.put((title, text))

    def close(self) -> None:
        self._queue.put(None)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self._notifier(*item)
            except Exception:
                log.debug("the notifier failed", exc_info=True)
