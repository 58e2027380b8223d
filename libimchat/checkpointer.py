"""Copying the write-ahead log back into the database, beside the server's loop.

SQLite appends every commit to its write-ahead log, and a checkpoint copies the
log back into the database file, then syncs that file. Left to SQLite, the
checkpoint runs inside the commit that takes the log past a threshold. Under
steady direct messages that was a 4-16 ms stall every ~0.1 s, and every
message in flight waited behind it: it was the tail of the latency.

A :class:`Checkpointer` does the copying on a thread and a connection of its
own (``PRAGMA wal_checkpoint(PASSIVE)`` never blocks the writer). What a
thread cannot do is restart the log: SQLite writes from the log's start again
only when the writer begins a transaction and finds every frame copied, which
under steady writes is never. So when the log is due to restart, the thread
first catches up until little is left, and the writer copies that little
itself right after one of its commits (:meth:`after_commit`, 1.4-5 ms, once a
second at 12,000 messages a second), so that its next write restarts the log.

A reader that holds an old snapshot (a backup, a second process) keeps any
checkpoint from copying past it, and the log grows meanwhile. The thread goes
on copying what it may, and the writer steps in only once the thread has left
it little to copy, so that the backlog is never copied on the writer's time.

SQLite's own checkpoint stays on as a safety net, at :data:`SAFETY_FACTOR`
times the log this one keeps, in case this thread fails.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)

# how often the thread copies what the log gained, seconds
INTERVAL = 0.05
# while the log does not grow, the thread waits twice as long after each pass, up
# to this (an idle server, a laptop's, should not wake 20 times a second); the
# log grows by at most this long's writes before the thread notices them
MAX_IDLE_INTERVAL = 0.5
# the log restarts once it holds this much (64 MiB: ~1 s of direct messages at
# 12,000/s with 1 KiB pages); a larger log made each restart dearer
RESTART_BYTES = 64 << 20
# the writer copies the rest when the thread's last pass left fewer pages than
# this; catching up ends when a pass found fewer than this many new ones
CAUGHT_UP_PAGES = 300
# at peak a pass finds ~2,000 new pages and each next one fewer; past this many
# passes the writer copies what is left, on its time
CATCH_UP_PASSES = 8
# SQLite checkpoints by itself past this many times RESTART_BYTES: only if the
# thread has failed (a reader holding a snapshot stops SQLite's checkpoints too)
SAFETY_FACTOR = 2


class Checkpointer:
    """Checkpoints one database on a background thread; call :meth:`after_commit`.

    Also sets the writer's ``wal_autocheckpoint`` (the safety net) and its
    ``journal_size_limit``.

    Args:
        path: the database file, already in WAL mode.
        writer: the connection that writes to it (on the caller's thread).
        restart_bytes: the size of log at which it restarts.
        interval: seconds between two passes of the thread while the log grows.
        max_idle_interval: the longest wait between two passes while it does not.
    """

    def __init__(
        self,
        path: Path | str,
        writer: sqlite3.Connection,
        *,
        restart_bytes: int = RESTART_BYTES,
        interval: float = INTERVAL,
        max_idle_interval: float = MAX_IDLE_INTERVAL,
    ) -> None:
        page_size = writer.execute("PRAGMA page_size").fetchone()[0]
        self.restart_pages = max(1, restart_bytes // page_size)
        writer.execute(f"PRAGMA wal_autocheckpoint={self.restart_pages * SAFETY_FACTOR}")
        # the log's file keeps its largest size; past twice the restart size (after a
        # reader held it back) it is cut back when it restarts
        writer.execute(f"PRAGMA journal_size_limit={2 * restart_bytes}")
        self._writer = writer
        self._path = str(path)
        self._interval = interval
        self._max_idle_interval = max(interval, max_idle_interval)
        self._passes = 0
        # set by the thread when the log should restart and little is left to copy;
        # cleared by the writer once it has copied the rest
        self._due = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="libimchat-checkpoint", daemon=True)
        self._thread.start()

    @property
    def restart_due(self) -> bool:
        """Whether the next :meth:`after_commit` copies the end of the log (for tests)."""
        return self._due.is_set()

    @property
    def passes(self) -> int:
        """How many times the thread has woken to copy the log (for tests)."""
        return self._passes

    def after_commit(self) -> None:
        """When the log is due to restart, copy what is left, so that the next write restarts it.

        Never raises: a checkpoint that fails (a full disk, a statement of the
        writer still open) leaves the commit before it committed, and the
        thread calls for another try after its next pass (not at every commit,
        which would fill the log with the same error).
        """
        if not self._due.is_set():
            return
        try:
            busy, _, left = _checkpoint(self._writer)
        except sqlite3.Error:
            log.exception("copying the end of the write-ahead log failed")
            self._due.clear()
            return
        if not busy and not left:
            self._due.clear()

    def close(self) -> None:
        """Stop the thread (a pass under way completes first)."""
        self._stopping.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error:
            log.exception("no background checkpoints: SQLite's own remain")
            return
        interval, last_frames = self._interval, -1
        try:
            while not self._stopping.wait(interval):
                self._passes += 1
                try:
                    frames = self._pass_and_tell(conn)
                except Exception:  # SQLite's own checkpoints still bound the log
                    log.exception("a background checkpoint failed")
                    frames = -1
                idle = frames == last_frames
                interval = min(2 * interval, self._max_idle_interval) if idle else self._interval
                last_frames = frames
        finally:
            conn.close()

    def _pass_and_tell(self, conn: sqlite3.Connection) -> int:
        """Copy the log, and catch up and tell the writer when it is due to restart;
        returns the frames the log held at the last pass."""
        _, frames, left = _checkpoint(conn)
        if frames < self.restart_pages:
            return frames
        for _ in range(CATCH_UP_PASSES):  # each pass copies what came during the last
            before = frames
            _, frames, left = _checkpoint(conn)
            if frames - before < CAUGHT_UP_PAGES:
                break
        if left < CAUGHT_UP_PAGES:  # else a reader holds the log back: copy on, here
            self._due.set()
        return frames


def _checkpoint(conn: sqlite3.Connection) -> tuple[bool, int, int]:
    """One pass: copy what the log holds. Returns whether another checkpoint was under
    way (then nothing was copied), the log's frames and those left uncopied."""
    busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return bool(busy), int(frames), int(frames) - int(copied)
