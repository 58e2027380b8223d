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
    assert applied == ["m001_initial", "m002_session_last_used"]
