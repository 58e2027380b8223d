"""Durable state in SQLite (through sqlite-utils): schema, migrations and queries.

The store speaks in integer ids; names, validation and rules live in
directory.py. Users have immutable ids, so a rename is one row update and every
stored message shows the new name. Room and DM sequence numbers are not kept
as counters: they are read back from the messages at start, so they cannot
drift from what was committed.

Writes run inside :meth:`Store.batch` (one transaction, ``synchronous=FULL``),
each request in its own savepoint (:meth:`Store.step`) so that one failing
request leaves the rest of the batch intact.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from .checkpointer import Checkpointer

migrations = Migrations("libimchat")

# A direct message changes ~4 pages: the messages table's last page and a page in
# each of three indexes (by conversation, by client id, by recipient's inbox; with
# time-ordered client ids, ~3.3), and each commit writes every page it changed
# whole into the log. At SQLite's default of 4 KiB that was 12-15 KiB of log per
# message, and writing, syncing and copying back that log cost more than all the
# rest of storing it. With 1 KiB pages it is ~5 KiB (a body over ~1 KB spills
# onto pages of its own, as it would over 4 KB). Only a new database takes this
# size; an existing one keeps the size it was made with.
PAGE_SIZE = 1024


@migrations()
def m001_initial(db: Database) -> None:
    db.executescript(
        """
        CREATE TABLE users (
            id INTEGER PRIMARY KEY,
            username TEXT NOT NULL,
            username_key TEXT NOT NULL UNIQUE,
            first_name TEXT NOT NULL,
            last_name TEXT NOT NULL,
            phone TEXT NOT NULL,
            password_hash TEXT NOT NULL,
            created_at REAL NOT NULL,
            inbox_acked INTEGER NOT NULL DEFAULT 0
        );
        -- a conversation is a room (room set) or the DM thread of two users
        CREATE TABLE conversations (
            id INTEGER PRIMARY KEY,
            room TEXT,
            room_key TEXT UNIQUE,
            created_by INTEGER REFERENCES users(id),
            created_at REAL NOT NULL,
            user_lo INTEGER REFERENCES users(id),
            user_hi INTEGER REFERENCES users(id),
            UNIQUE (user_lo, user_hi)
        );
        CREATE TABLE members (
            conversation_id INTEGER NOT NULL REFERENCES conversations(id),
            user_id INTEGER NOT NULL REFERENCES users(id),
            joined_at REAL NOT NULL,
            PRIMARY KEY (conversation_id, user_id)
        ) WITHOUT ROWID;
        CREATE TABLE blocks (
            blocker_id INTEGER NOT NULL REFERENCES users(id),
            blocked_id INTEGER NOT NULL REFERENCES users(id),
            created_at REAL NOT NULL,
            PRIMARY KEY (blocker_id, blocked_id)
        ) WITHOUT ROWID;
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id),
            seq INTEGER NOT NULL,
            sender_id INTEGER NOT NULL REFERENCES users(id),
            recipient_id INTEGER REFERENCES users(id),
            inbox_seq INTEGER,
            body TEXT NOT NULL,
            sent_at REAL NOT NULL,
            client_id TEXT NOT NULL
        );
        -- history pages and room backfill
        CREATE UNIQUE INDEX messages_by_conversation ON messages (conversation_id, seq);
        -- idempotent sends: a retried client id finds the original
        CREATE UNIQUE INDEX messages_by_client_id ON messages (sender_id, client_id);
        -- a recipient's inbox, for delivery after being offline
        CREATE UNIQUE INDEX messages_by_inbox ON messages (recipient_id, inbox_seq)
            WHERE recipient_id IS NOT NULL;
        CREATE TABLE sessions (
            token_hash TEXT PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id),
            created_at REAL NOT NULL
        ) WITHOUT ROWID;
        """
    )


@migrations()
def m002_session_last_used(db: Database) -> None:
    # resume tokens expire after a time unused (Server(session_ttl=...))
    db.executescript(
        """
        ALTER TABLE sessions ADD COLUMN last_used REAL NOT NULL DEFAULT 0;
        UPDATE sessions SET last_used = created_at;
        """
    )


@migrations()
def m003_client_ids_first(db: Database) -> None:
    # Keyed by sender first, every sender's new client ids went to a page of their
    # own in the index; keyed by client id first, time-ordered ids (client_ids.py)
    # from every sender land together at its end. Unique on the same pair.
    # Rebuilding it takes ~1.5 s a million stored messages, once.
    db.executescript(
        """
        DROP INDEX messages_by_client_id;
        CREATE UNIQUE INDEX messages_by_client_id ON messages (client_id, sender_id);
        """
    )


@dataclass(frozen=True, slots=True)
class UserRow:
    id: int
    username: str
    username_key: str
    first_name: str
    last_name: str
    phone: str
    password_hash: str
    inbox_acked: int


@dataclass(frozen=True, slots=True)
class RoomRow:
    id: int
    room: str
    room_key: str
    created_by: int


@dataclass(frozen=True, slots=True)
class MessageRow:
    id: int
    conversation_id: int
    seq: int
    sender_id: int
    recipient_id: int | None
    inbox_seq: int | None
    body: str
    sent_at: float
    client_id: str


_MESSAGE_COLUMNS = (
    "id, conversation_id, seq, sender_id, recipient_id, inbox_seq, body, sent_at, client_id"
)


class Store:
    """The server's SQLite database.

    Args:
        path: the database file; ``None`` for an in-memory database (tests).
        background_checkpoints: copy the write-ahead log back into the database on
            a thread of its own (:class:`~libimchat.checkpointer.Checkpointer`)
            rather than inside the commits, as the server does. Call
            :meth:`close` to stop the thread.
    """

    def __init__(self, path: Path | str | None, *, background_checkpoints: bool = False) -> None:
        self._checkpointer: Checkpointer | None = None
        if path is None:
            self.db = Database(memory=True)
        else:
            self.db = Database(sqlite3.connect(str(path), check_same_thread=False))
            self.db.execute(f"PRAGMA page_size={PAGE_SIZE}")  # a new database only
            self.db.enable_wal()
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.execute("PRAGMA busy_timeout=5000")
        migrations.apply(self.db)
        if path is not None and background_checkpoints:
            self._checkpointer = Checkpointer(path, self.db.conn)

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
        self.db.close()

    # --- transactions

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction, committed durably on exit (rolled back on error)."""
        with self.db.atomic():
            yield

    @property
    def in_batch(self) -> bool:
        """Whether the batch's transaction is still open: SQLite rolls all of it back
        by itself on some errors (a full disk or an I/O error in a one-row insert)."""
        return self.db.conn.in_transaction

    def checkpoint(self) -> None:
        """With background checkpoints, copy the end of the write-ahead log if it is
        due to restart (see :meth:`Checkpointer.after_commit`); else nothing.

        The server calls it once a batch's replies are sent, so that they do not
        wait for it.
        """
        if self._checkpointer is not None:
            self._checkpointer.after_commit()

    @contextlib.contextmanager
    def step(self) -> Iterator[None]:
        """A savepoint inside :meth:`batch`: an error undoes this step only.

        Steps do not nest, so one fixed savepoint name does (sqlite-utils'
        nested ``atomic()`` makes a random name per call, a measurable cost
        on the hot path).
        """
        conn = self.db.conn
        conn.execute("SAVEPOINT step")
        try:
            yield
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK TO step")
                conn.execute("RELEASE step")
            raise
        else:
            conn.execute("RELEASE step")

    # --- loading state at start

    def users(self) -> list[UserRow]:
        rows = self.db.execute(
            "SELECT id, username, username_key, first_name, last_name, phone, password_hash,"
            " inbox_acked FROM users ORDER BY id"
        ).fetchall()
        return [UserRow(*row) for row in rows]

    def rooms(self) -> list[RoomRow]:
        rows = self.db.execute(
            "SELECT id, room, room_key, created_by FROM conversations"
            " WHERE room IS NOT NULL ORDER BY id"
        ).fetchall()
        return [RoomRow(*row) for row in rows]

    def dialogs(self) -> list[tuple[int, int, int]]:
        """(conversation id, lower user id, higher user id) of every DM thread."""
        return self.db.execute(
            "SELECT id, user_lo, user_hi FROM conversations WHERE room IS NULL"
        ).fetchall()

    def members(self) -> list[tuple[int, int]]:
        return self.db.execute("SELECT conversation_id, user_id FROM members").fetchall()

    def blocks(self) -> list[tuple[int, int]]:
        return self.db.execute("SELECT blocker_id, blocked_id FROM blocks").fetchall()

    def last_seq(self, conversation_id: int) -> int:
        row = self.db.execute(
            "SELECT MAX(seq) FROM messages WHERE conversation_id = ?", [conversation_id]
        ).fetchone()
        return row[0] or 0

    def inbox_head(self, user_id: int) -> int:
        row = self.db.execute(
            "SELECT MAX(inbox_seq) FROM messages WHERE recipient_id = ?", [user_id]
        ).fetchone()
        return row[0] or 0

    # --- accounts

    def add_user(
        self,
        *,
        username: str,
        username_key: str,
        first_name: str,
        last_name: str,
        phone: str,
        password_hash: str,
        created_at: float,
    ) -> int:
        cursor = self.db.execute(
            "INSERT INTO users (username, username_key, first_name, last_name, phone,"
            " password_hash, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [username, username_key, first_name, last_name, phone, password_hash, created_at],
        )
        return int(cursor.lastrowid or 0)

    def rename_user(self, user_id: int, username: str, username_key: str) -> None:
        self.db.execute(
            "UPDATE users SET username = ?, username_key = ? WHERE id = ?",
            [username, username_key, user_id],
        )

    def set_password_hash(self, user_id: int, password_hash: str) -> None:
        self.db.execute("UPDATE users SET password_hash = ? WHERE id = ?", [password_hash, user_id])

    def set_inbox_acked(self, user_id: int, inbox_seq: int) -> None:
        self.db.execute("UPDATE users SET inbox_acked = ? WHERE id = ?", [inbox_seq, user_id])

    def add_session(self, token_hash: str, user_id: int, created_at: float) -> None:
        self.db.execute(
            "INSERT INTO sessions (token_hash, user_id, created_at, last_used) VALUES (?, ?, ?, ?)",
            [token_hash, user_id, created_at, created_at],
        )

    def use_session(self, token_hash: str, now: float, *, unused_since: float) -> int | None:
        """The user of a session token still in use since ``unused_since``; marks it used now."""
        row = self.db.execute(
            "SELECT user_id FROM sessions WHERE token_hash = ? AND last_used >= ?",
            [token_hash, unused_since],
        ).fetchone()
        if row is None:
            return None
        self.db.execute("UPDATE sessions SET last_used = ? WHERE token_hash = ?", [now, token_hash])
        return int(row[0])

    def touch_session(self, token_hash: str, now: float) -> None:
        self.db.execute("UPDATE sessions SET last_used = ? WHERE token_hash = ?", [now, token_hash])

    def drop_sessions_unused_since(self, moment: float) -> int:
        cursor = self.db.execute("DELETE FROM sessions WHERE last_used < ?", [moment])
        return cursor.rowcount

    def drop_session(self, token_hash: str) -> None:
        self.db.execute("DELETE FROM sessions WHERE token_hash = ?", [token_hash])

    # --- conversations, membership, blocks

    def add_room(self, room: str, room_key: str, created_by: int, created_at: float) -> int:
        cursor = self.db.execute(
            "INSERT INTO conversations (room, room_key, created_by, created_at)"
            " VALUES (?, ?, ?, ?)",
            [room, room_key, created_by, created_at],
        )
        return int(cursor.lastrowid or 0)

    def add_dialog(self, user_lo: int, user_hi: int, created_at: float) -> int:
        cursor = self.db.execute(
            "INSERT INTO conversations (user_lo, user_hi, created_at) VALUES (?, ?, ?)",
            [user_lo, user_hi, created_at],
        )
        return int(cursor.lastrowid or 0)

    def add_member(self, conversation_id: int, user_id: int, joined_at: float) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO members (conversation_id, user_id, joined_at) VALUES (?, ?, ?)",
            [conversation_id, user_id, joined_at],
        )

    def remove_member(self, conversation_id: int, user_id: int) -> None:
        self.db.execute(
            "DELETE FROM members WHERE conversation_id = ? AND user_id = ?",
            [conversation_id, user_id],
        )

    def add_block(self, blocker_id: int, blocked_id: int, created_at: float) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO blocks (blocker_id, blocked_id, created_at) VALUES (?, ?, ?)",
            [blocker_id, blocked_id, created_at],
        )

    def remove_block(self, blocker_id: int, blocked_id: int) -> None:
        self.db.execute(
            "DELETE FROM blocks WHERE blocker_id = ? AND blocked_id = ?", [blocker_id, blocked_id]
        )

    # --- messages

    def add_message(
        self,
        *,
        conversation_id: int,
        seq: int,
        sender_id: int,
        recipient_id: int | None,
        inbox_seq: int | None,
        body: str,
        sent_at: float,
        client_id: str,
    ) -> int | None:
        """Store a message; its id, or ``None`` if the sender used ``client_id`` before.

        One statement either way: the unique index finds a resend, no lookup first.
        """
        cursor = self.db.execute(
            f"INSERT INTO messages ({_MESSAGE_COLUMNS}) VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (client_id, sender_id) DO NOTHING",
            [conversation_id, seq, sender_id, recipient_id, inbox_seq, body, sent_at, client_id],
        )
        return int(cursor.lastrowid) if cursor.rowcount == 1 and cursor.lastrowid else None

    def message_by_client_id(self, sender_id: int, client_id: str) -> MessageRow | None:
        row = self.db.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE sender_id = ? AND client_id = ?",
            [sender_id, client_id],
        ).fetchone()
        return MessageRow(*row) if row else None

    def message(self, message_id: int) -> MessageRow | None:
        row = self.db.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id = ?", [message_id]
        ).fetchone()
        return MessageRow(*row) if row else None

    def page(
        self,
        conversation_id: int,
        *,
        limit: int,
        before_seq: int | None = None,
        after_seq: int | None = None,
    ) -> list[MessageRow]:
        """Messages of a conversation, oldest first.

        With ``after_seq``: the first ``limit`` messages after it (backfill).
        Otherwise: the last ``limit`` messages before ``before_seq`` (history).
        """
        if after_seq is not None:
            rows = self.db.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? AND seq > ?"
                " ORDER BY seq LIMIT ?",
                [conversation_id, after_seq, limit],
            ).fetchall()
            return [MessageRow(*row) for row in rows]
        rows = self.db.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? AND seq < ?"
            " ORDER BY seq DESC LIMIT ?",
            [conversation_id, before_seq if before_seq is not None else 2**63 - 1, limit],
        ).fetchall()
        return [MessageRow(*row) for row in reversed(rows)]

    def inbox(self, recipient_id: int, *, after: int, limit: int) -> list[MessageRow]:
        """Direct messages to a user with inbox sequence above ``after``, oldest first."""
        rows = self.db.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE recipient_id = ? AND inbox_seq > ?"
            " ORDER BY inbox_seq LIMIT ?",
            [recipient_id, after, limit],
        ).fetchall()
        return [MessageRow(*row) for row in rows]


def backup(database: Path | str, destination: Path | str) -> None:
    """Copy a database consistently, even while a server writes to it (SQLite's online backup).

    Args:
        database: the live database file.
        destination: the copy; an existing file there is replaced.
    """
    source = sqlite3.connect(f"file:{Path(database)}?mode=ro", uri=True)
    target = sqlite3.connect(str(destination))
    try:
        with target:
            source.backup(target)
    finally:
        target.close()
        source.close()
