"""Copying the write-ahead log back into the database, beside the server's loop.

SQLite appends every commit to its write-ahead log, and a checkpoint copies the
log back into the database file, then fsyncs that file. Left to SQLite, the
checkpoint runs inside the commit that takes the log past a threshold. Under
steady direct messages that was a 4-16 ms stall every ~0.1 s, and every
message in flight waited behind it: it was the tail of the latency.

A :class:`Checkpointer` does the copying on a thread and a connection of its
own (``PRAGMA wal_checkpoint(PASSIVE)`` never blocks the writer). What a
thread cannot do is restart the log: SQLite writes from the log's start again
only when the writer begins a transaction and finds every frame copied, which
under steady writes is never. So when the log is due to restart, the thread
first catches up until little is left, and the writer's next commit copies
that little itself (:meth:`finish`, 2-4 ms, once a second at 12,000 messages
a second) so that its next write restarts the log.

SQLite's own checkpoint stays on as a safety net, at :data:`SAFETY_FACTOR`
times the log this one keeps, in case this thread falls behind or fails.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)

# how often the thread copies what the log gained, seconds
INTERVAL = 0.05
# the log restarts once it holds this much (64 MiB: ~1 s of direct messages at
# 12,000/s with 1 KiB pages); larger logs made each restart dearer
RESTART_BYTES = 64 << 20
# catching up ends when one pass had fewer pages than this left to copy
CAUGHT_UP_PAGES = 300
CATCH_UP_PASSES = 8
SAFETY_FACTOR = 4


class Checkpointer:
    """Checkpoints one database on a background thread; call :meth:`finish` after commits.

    Args:
        path: the database file, already in WAL mode.
        writer: the connection that writes to it (on the caller's thread).
        restart_bytes: the size of log at which it restarts.
        interval: seconds between two copies.
    """

    def __init__(
        self,
        path: Path | str,
        writer: sqlite3.Connection,
        *,
        restart_bytes: int = RESTART_BYTES,
        interval: float = INTERVAL,
    ) -> None:
        page_size = writer.execute("PRAGMA page_size").fetchone()[0]
        self.restart_pages = max(1, restart_bytes // page_size)
        self._interval = interval
        writer.execute(f"PRAGMA wal_autocheckpoint={self.restart_pages * SAFETY_FACTOR}")
        self._writer = writer
        self._path = str(path)
        self._due = threading.Event()  # set: the writer's next commit finishes the copy
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="libimchat-checkpoint", daemon=True)
        self._thread.start()

    def finish(self) -> None:
        """After a commit: when the log is due to restart, copy what is left.

        The writer's next write then starts the log from the beginning.
        """
        if not self._due.is_set():
            return
        busy, frames, copied = self._writer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if not busy and frames == copied:
            self._due.clear()

    def close(self) -> None:
        """Stop the thread (a checkpoint under way completes first)."""
        self._stopping.set()
        self._thread.join()

    def _run(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA synchronous=FULL")  # sync the database before the log moves on
            while not self._stopping.wait(self._interval):
                if self._due.is_set():
                    continue
                try:
                    frames = self._copy(conn)
                    if frames >= self.restart_pages:
                        self._catch_up(conn, frames)
                        self._due.set()
                except sqlite3.Error:  # SQLite's own checkpoints still bound the log
                    log.exception("a background checkpoint failed")
        finally:
            conn.close()

    def _catch_up(self, conn: sqlite3.Connection, frames: int) -> None:
        for _ in range(CATCH_UP_PASSES):  # each pass copies what came during the last
            before, frames = frames, self._copy(conn)
            if frames - before < CAUGHT_UP_PAGES:
                return

    @staticmethod
    def _copy(conn: sqlite3.Connection) -> int:
        """Copy what the log holds; returns how many frames it holds."""
        _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(frames)
