"""Desktop notifications through plyer, where the desktop has a notification service.

plyer runs in a short-lived child process with its output discarded. In the
chat process it would write to our terminal: where no service exists it warns
on stderr, and the notify-send it falls back on prints its errors there, right
through the chat screen. The child also keeps a slow notification service
from ever holding up the chat. In the child, plyer's NotImplementedError (no
notification service) or any other failure ends it silently.
"""

from __future__ import annotations

import subprocess
import sys

_NOTIFY = """
import sys, warnings
warnings.simplefilter("ignore")
try:
    from plyer import notification
    notification.notify(title=sys.argv[1], message=sys.argv[2], app_name="imchat", timeout=5)
except BaseException:
    pass
"""
MAX_TEXT = 200


class Notifier:
    """Sends desktop notifications, one at a time: while one is on its way, others are skipped."""

    def __init__(self) -> None:
        self._child: subprocess.Popen[bytes] | None = None

    def notify(self, title: str, text: str) -> None:
        if self._child is not None and self._child.poll() is None:
            return
        if len(text) > MAX_TEXT:
            text = text[: MAX_TEXT - 1] + "…"
        try:
            self._child = subprocess.Popen(
                [sys.executable, "-c", _NOTIFY, title, text],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C in the chat does not reach it
            )
        except OSError:
            self._child = None
