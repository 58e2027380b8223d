"""The thread bridge: libimchat calls off the Tk thread, their results and events back on it.

Tk is not thread-safe, and every :class:`libimchat.Client` call blocks until the
server answers (up to the client's timeout, when the server is gone). So the
window never calls the client itself: it hands each call to the bridge, whose
worker thread makes it. Results, errors and the events the server pushes all
come back through one queue that the Tk thread drains with ``after``; nothing
else crosses between the threads.

Calls run one at a time, in the order they were made, so messages go out in the
order they were typed and a reply never overtakes an earlier one.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import queue
import threading
import time
import tkinter as tk
from collections.abc import Callable
from typing import TypeVar

from libimchat import ChatError, Client, Event

log = logging.getLogger(__name__)
T = TypeVar("T")
ErrorHandler = Callable[[ChatError], object]

POLL_MS = 20
_DRAIN_BUDGET = 0.05  # seconds of handlers per drain, so that a burst cannot freeze the window


class Bridge:
    """Runs a client's calls on a worker thread and delivers everything on the Tk thread.

    Args:
        widget: any widget of the application (its ``after`` schedules the drains).
        client: the connection to the server; the bridge owns it and closes it.
        on_event: called on the Tk thread with every event the server pushes.
        on_error: called on the Tk thread with a failed call's error, unless the
            call has its own error handler.
    """

    def __init__(
        self,
        widget: tk.Misc,
        client: Client,
        *,
        on_event: Callable[[Event], None],
        on_error: ErrorHandler,
    ) -> None:
        self.client = client
        self.on_event = on_event
        self.on_error = on_error
        self._widget = widget
        self._inbox: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
        self._calls: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._closed = False
        # both threads start now: the Tk thread never waits for a thread to start later
        self._worker = threading.Thread(target=self._work, name="imchat-gui-calls", daemon=True)
        self._events = threading.Thread(target=self._pump_events, name="imchat-gui-events")
        self._events.daemon = True
        self._worker.start()
        self._events.start()
        self._after = widget.after(POLL_MS, self._drain)

    def call(
        self,
        work: Callable[[Client], T],
        on_done: Callable[[T], object] | None = None,
        on_error: ErrorHandler | None = None,
    ) -> None:
        """Run ``work(client)`` on the worker; then ``on_done(result)`` or ``on_error(error)``.

        Both callbacks run on the Tk thread. An unexpected exception reaches
        ``on_error`` as ``ChatError("internal")`` (and is logged).
        """
        if self._closed:
            return

        def run() -> None:
            failed = on_error or self.on_error
            try:
                result = work(self.client)
            except ChatError as exc:
                self._post(functools.partial(failed, exc))
            except Exception as exc:
                log.exception("a call to the chat server failed")
                self._post(functools.partial(failed, ChatError("internal", f"unexpected: {exc}")))
            else:
                if on_done is not None:
                    self._post(functools.partial(on_done, result))

        self._calls.put(run)

    def close(self) -> None:
        """Stop delivering, then log out and disconnect (this may take a second)."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(tk.TclError):  # the window is gone already
            self._widget.after_cancel(self._after)
        self._calls.put(None)
        self.client.close()  # a call still waiting for the server fails with "closed"
        self._worker.join(timeout=2)
        self._events.join(timeout=2)

    def _post(self, job: Callable[[], object]) -> None:
        if not self._closed:
            self._inbox.put(job)

    def _work(self) -> None:
        while (job := self._calls.get()) is not None:
            if not self._closed:
                job()

    def _pump_events(self) -> None:
        while (event := self.client.next_event()) is not None:
            self._post(functools.partial(self._deliver, event))

    def _deliver(self, event: Event) -> None:
        self.on_event(event)

    def _drain(self) -> None:
        deadline = time.monotonic() + _DRAIN_BUDGET
        while not self._closed and time.monotonic() < deadline:
            try:
                job = self._inbox.get_nowait()
            except queue.Empty:
                break
            try:
                job()
            except Exception:
                log.exception("a chat window handler failed")
        if not self._closed:
            self._after = self._widget.after(POLL_MS, self._drain)
