"""Checkpoints beside the writer: the log is copied back and restarts, under steady writes."""

from __future__ import annotations

import logging
import sqlite3
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from libimchat.checkpointer import MAX_IDLE_INTERVAL, Checkpointer
from libimchat.store import PAGE_SIZE, Store

RESTART = 1 << 20  # a small log (1,024 pages), so that the tests write tens of MiB only
BODY = "x" * 200


def _writer(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE messages (id INTEGER PRIMARY KEY, sender INT, body TEXT)")
    conn.execute("CREATE INDEX by_sender ON messages (sender, id)")
    return conn


def _checkpointer(
    path: Path,
    writer: sqlite3.Connection,
    interval: float = 0.005,
    max_idle_interval: float = MAX_IDLE_INTERVAL,
) -> Checkpointer:
    checkpointer = Checkpointer(
        path, writer, restart_bytes=RESTART, interval=interval, max_idle_interval=max_idle_interval
    )
    writer.execute("PRAGMA wal_autocheckpoint=0")  # no safety net: only ours restarts the log
    return checkpointer


def _commit(writer: sqlite3.Connection, rows: int = 8) -> None:
    writer.execute("BEGIN")
    for i in range(rows):
        writer.execute("INSERT INTO messages (sender, body) VALUES (?, ?)", (i * 7, BODY))
    writer.execute("COMMIT")


def _restarts(wal: Path) -> int:
    """The log's checkpoint sequence number: SQLite adds one each time it restarts the log."""
    with wal.open("rb") as f:
        return int(struct.unpack(">I", f.read(16)[12:16])[0])


def _count(writer: sqlite3.Connection) -> int:
    return int(writer.execute("SELECT count(*) FROM messages").fetchone()[0])


def _wait_for(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.002)


def test_under_steady_writes_the_log_restarts_near_its_size_and_nothing_is_lost(
    tmp_path: Path,
) -> None:
    path = tmp_path / "chat.db"
    writer = _writer(path)
    checkpointer = _checkpointer(path, writer)
    wal = Path(f"{path}-wal")
    first, largest, rows = _restarts(wal), 0, 0
    try:
        while rows < 40_000:  # ~80 MiB of log: 80 times what it may hold
            _commit(writer)
            rows += 8
            checkpointer.after_commit()
            largest = max(largest, wal.stat().st_size)
    finally:
        checkpointer.close()
    # without the checkpointer the log would hold all ~80 MiB
    assert _restarts(wal) - first >= 10
    assert largest < 8 * RESTART
    assert _count(writer) == rows
    assert writer.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    writer.close()


def test_a_reader_holding_the_log_back_leaves_the_backlog_to_the_thread(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    writer = _writer(path)
    checkpointer = _checkpointer(path, writer)
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        _commit(writer)
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM messages").fetchone() == (8,)  # a snapshot
        while Path(f"{path}-wal").stat().st_size < 4 * RESTART:
            _commit(writer)
            checkpointer.after_commit()
            # the thread cannot copy past the snapshot, so it never calls on the writer
            assert not checkpointer.restart_due
        reader.execute("COMMIT")
        _wait_for(lambda: checkpointer.restart_due)  # the thread copied the backlog
        before = _restarts(Path(f"{path}-wal"))
        checkpointer.after_commit()
        _commit(writer)
        assert _restarts(Path(f"{path}-wal")) == before + 1
    finally:
        checkpointer.close()
        reader.close()
        writer.close()


def test_a_checkpoint_that_fails_after_a_commit_leaves_the_commit_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "chat.db"
    writer = _writer(path)
    # passes 0.2 s apart: the thread does not call again between the two calls below
    checkpointer = _checkpointer(path, writer, interval=0.2)
    try:
        deadline = time.monotonic() + 20.0
        while not checkpointer.restart_due:  # without after_commit, it stays due once due
            assert time.monotonic() < deadline, "the restart never came due"
            _commit(writer)
        rows = _count(writer)
        pending = writer.execute("SELECT id FROM messages")  # a statement left open
        pending.fetchone()
        _commit(writer, rows=1)
        with caplog.at_level(logging.ERROR, logger="libimchat.checkpointer"):
            checkpointer.after_commit()  # cannot checkpoint with a statement open: logs it
            checkpointer.after_commit()  # the next commit: no second try, no second error
        assert caplog.text.count("copying the end of the write-ahead log failed") == 1
        assert _count(writer) == rows + 1
        pending.close()
        _wait_for(lambda: checkpointer.restart_due)  # the thread calls for another try
        checkpointer.after_commit()
        assert not checkpointer.restart_due
    finally:
        checkpointer.close()
        writer.close()


def test_the_store_stops_its_checkpoint_thread_when_closed(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    store = Store(tmp_path / "chat.db", background_checkpoints=True)
    started = [t for t in set(threading.enumerate()) - before if t.name == "libimchat-checkpoint"]
    assert len(started) == 1
    store.close()
    assert not started[0].is_alive()


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


def test_the_thread_wakes_seldom_while_the_log_is_idle_and_often_again_once_it_grows(
    tmp_path: Path,
) -> None:
    writer = _writer(tmp_path / "chat.db")
    checkpointer = _checkpointer(tmp_path / "chat.db", writer, interval=0.01, max_idle_interval=0.2)
    try:
        _commit(writer)
        time.sleep(0.5)  # backing off: 0.01, 0.02, 0.04 ... 0.2 s
        idle_from = checkpointer.passes
        time.sleep(1.0)
        idle = checkpointer.passes - idle_from
        assert 2 <= idle <= 12  # ~5 at 0.2 s; ~100 at the growing log's 0.01 s

        busy_from = checkpointer.passes
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            _commit(writer, rows=2)
            time.sleep(0.002)
        assert checkpointer.passes - busy_from >= 20  # back to ~0.01 s within 0.2 s
    finally:
        checkpointer.close()
        writer.close()
