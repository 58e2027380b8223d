"""The store's schema: migrations bring an older database up to date without losing anything."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlite_utils import Database

from libimchat.store import Store, migrations


def test_a_database_of_the_first_schema_is_migrated_and_keeps_its_sessions(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = Database(path)
    migrations.apply(old, stop_before="m002_session_last_used")
    old.execute(
        "INSERT INTO users (username, username_key, first_name, last_name, phone, password_hash,"
        " created_at) VALUES ('ali', 'ali', 'A', 'L', '0600000000', 'x', 1.0)"
    )
    old.execute("INSERT INTO sessions (token_hash, user_id, created_at) VALUES ('h', 1, 5.0)")
    old.conn.commit()
    old.close()

    store = Store(path)
    assert store.use_session("h", 10.0, unused_since=4.0) == 1  # last use = its creation
    store.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert db.execute("SELECT username FROM users").fetchall() == [("ali",)]


def test_a_new_database_has_every_migration_applied_once(tmp_path: Path) -> None:
    Store(tmp_path / "chat.db").close()
    store = Store(tmp_path / "chat.db")
    applied = [m.name for m in migrations.applied(store.db)]
    assert migrations.pending(store.db) == []
    assert applied == ["m001_initial", "m002_session_last_used", "m003_client_ids_first"]


def test_client_ids_stored_before_their_index_changed_still_find_their_resends(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    old = Database(path)
    migrations.apply(old, stop_before="m003_client_ids_first")
    for name in ("ali", "sam"):
        old.execute(
            "INSERT INTO users (username, username_key, first_name, last_name, phone,"
            " password_hash, created_at) VALUES (?, ?, 'A', 'L', '0600000000', 'x', 1.0)",
            [name, name],
        )
    old.execute("INSERT INTO conversations (user_lo, user_hi, created_at) VALUES (1, 2, 1.0)")
    old.execute(
        "INSERT INTO messages (conversation_id, seq, sender_id, recipient_id, inbox_seq, body,"
        " sent_at, client_id) VALUES (1, 1, 1, 2, 1, 'hi', 2.0, 'c-1')"
    )
    old.conn.commit()
    old.close()

    store = Store(path)

    def send_again(sender_id: int, recipient_id: int) -> int | None:
        return store.add_message(
            conversation_id=1,
            seq=2,
            sender_id=sender_id,
            recipient_id=recipient_id,
            inbox_seq=2,
            body="hi",
            sent_at=3.0,
            client_id="c-1",
        )

    with store.batch():
        resent = send_again(1, 2)
        other_sender = send_again(2, 1)
    assert resent is None
    assert other_sender is not None
    original = store.message_by_client_id(1, "c-1")
    assert original is not None and original.seq == 1
    store.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert db.execute("SELECT COUNT(*) FROM messages").fetchone() == (2,)
