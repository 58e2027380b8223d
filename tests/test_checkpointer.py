"""Checkpoints beside the writer: the log is copied back and restarts, under steady writes."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from libimchat.checkpointer import SAFETY_FACTOR, Checkpointer
from libimchat.store import PAGE_SIZE, Store

RESTART = 256 << 10  # a small log, so that the test writes a few MiB only
BODY = "x" * 200


def _writer(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE messages (id INTEGER PRIMARY KEY, sender INT, body TEXT)")
    conn.execute("CREATE INDEX by_sender ON messages (sender, id)")
    return conn


def test_under_steady_writes_the_log_restarts_near_its_size_and_nothing_is_lost(
    tmp_path: Path,
) -> None:
    path = tmp_path / "chat.db"
    writer = _writer(path)
    checkpointer = Checkpointer(path, writer, restart_bytes=RESTART, interval=0.005)
    wal = Path(f"{path}-wal")
    largest = rows = 0
    try:
        while rows < 40_000:  # ~16 MiB of log: 64 times what it may hold
            writer.execute("BEGIN")
            for i in range(8):
                writer.execute("INSERT INTO messages (sender, body) VALUES (?, ?)", (i * 7, BODY))
            writer.execute("COMMIT")
            rows += 8
            checkpointer.finish()
            largest = max(largest, wal.stat().st_size)
    finally:
        checkpointer.close()
    # SQLite's own checkpoint, the safety net, would let it reach SAFETY_FACTOR times as much
    assert largest < 3 * RESTART < SAFETY_FACTOR * RESTART
    assert writer.execute("SELECT count(*) FROM messages").fetchone() == (rows,)
    assert writer.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    writer.close()


def test_the_store_stops_its_checkpoint_thread_when_closed(tmp_path: Path) -> None:
    store = Store(tmp_path / "chat.db", checkpoint_beside=True)
    assert "libimchat-checkpoint" in {t.name for t in threading.enumerate()}
    store.close()
    assert "libimchat-checkpoint" not in {t.name for t in threading.enumerate()}


def test_a_new_database_has_small_pages_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    Store(tmp_path / "new.db").close()
    old = sqlite3.connect(tmp_path / "old.db")
    old.execute("PRAGMA page_size=4096")
    old.execute("CREATE TABLE before_us (x)")
    old.close()
    Store(tmp_path / "old.db").close()

    def page_size(name: str) -> int:
        conn = sqlite3.connect(tmp_path / name)
        size = int(conn.execute("PRAGMA page_size").fetchone()[0])
        conn.close()
        return size

    assert (page_size("new.db"), page_size("old.db")) == (PAGE_SIZE, 4096)
