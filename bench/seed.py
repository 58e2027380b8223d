"""Databases for the scenarios, written straight into SQLite before the server starts.

Signing up and logging in 9,000 users through the wire would spend minutes in
Argon2 before anything is measured, so users, resume tokens, rooms and (for
the history scenario) millions of messages are inserted here through
:class:`libimchat.store.Store` and ``executemany``. The server then loads them
as it loads any database, and load clients log in with ``Resume`` and their
token. Fills run with ``synchronous=OFF``: the file is a bench artefact.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from libimchat.directory import _token_hash  # resume tokens are stored as this hash
from libimchat.passwords import Passwords
from libimchat.server import DATABASE
from libimchat.store import Store
from libimchat.validation import name_key

PASSWORD = "bench password"
BODY_PAD = "lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor"
DIALOGS = 100  # the history database spreads its messages over this many conversations


def username(index: int) -> str:
    return f"u{index:05d}"


def token(index: int) -> str:
    return f"bench-token-{index:05d}-{'t' * 20}"


def seed_users(
    data_dir: Path, count: int, *, profile: str = "fast", room: str | None = None
) -> None:
    """Users ``u00000``... with password :data:`PASSWORD` and a resume token each.

    Args:
        data_dir: the server's data dir (created).
        count: how many users.
        profile: the Argon2 profile of their (shared) password hash.
        room: a room to create with every user as a member.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    password_hash = Passwords(profile).hash(PASSWORD)
    store = Store(data_dir / DATABASE)
    now = time.time()
    try:
        store.db.execute("PRAGMA synchronous=OFF")
        with store.batch():
            ids = []
            for index in range(count):
                name = username(index)
                user_id = store.add_user(
                    username=name,
                    username_key=name_key(name),
                    first_name="Bench",
                    last_name=name,
                    phone="+10000000000",
                    password_hash=password_hash,
                    created_at=now,
                )
                store.add_session(_token_hash(token(index)), user_id, now)
                ids.append(user_id)
            if room is not None and ids:
                room_id = store.add_room(room, name_key(room), ids[0], now)
                for user_id in ids:
                    store.add_member(room_id, user_id, now)
    finally:
        store.close()


def add_history(data_dir: Path, total: int, batch: int = 20_000) -> list[int]:
    """Grow the history database to ``total`` messages over :data:`DIALOGS` conversations.

    The users are ``u00000``... (2 per dialog; seed them first with
    :func:`seed_users`), dialog 0 (u00000 with u00001) is the one measured.
    Call again with a larger total to grow the same file.

    Returns:
        Ids of up to 2,000 random messages of dialog 0 (``before`` for page requests).
    """
    store = Store(data_dir / DATABASE)
    try:
        db = store.db
        db.execute("PRAGMA synchronous=OFF")
        dialogs = {(lo, hi): cid for cid, lo, hi in store.dialogs()}
        users = [row.id for row in store.users()]
        per_dialog = total // DIALOGS
        now = time.time() - 86400.0
        for d in range(DIALOGS):
            lo, hi = users[2 * d], users[2 * d + 1]
            with store.batch():
                if (lo, hi) not in dialogs:
                    dialogs[lo, hi] = store.add_dialog(lo, hi, now)
            conversation = dialogs[lo, hi]
            start = store.last_seq(conversation) + 1
            for first in range(start, per_dialog + 1, batch):
                rows = []
                for seq in range(first, min(first + batch, per_dialog + 1)):
                    sender, recipient = (lo, hi) if seq % 2 else (hi, lo)
                    inbox_seq = (seq + 1) // 2 if seq % 2 else seq // 2
                    body = f"message {seq} of dialog {d}: {BODY_PAD}"
                    rows.append(
                        (
                            conversation,
                            seq,
                            sender,
                            recipient,
                            inbox_seq,
                            body,
                            now + seq * 1e-3,
                            f"{d:04d}{seq:010d}",  # ascending, as clients' ids are
                        )
                    )
                with store.batch():
                    db.conn.executemany(
                        "INSERT INTO messages (conversation_id, seq, sender_id, recipient_id,"
                        " inbox_seq, body, sent_at, client_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        rows,
                    )
        target = dialogs[users[0], users[1]]
        seqs = random.Random(total).sample(range(51, per_dialog + 1), min(2000, per_dialog - 50))
        found = db.execute(
            "SELECT id FROM messages WHERE conversation_id = ? AND seq IN (SELECT value FROM"
            " json_each(?))",
            [target, "[" + ",".join(map(str, seqs)) + "]"],
        ).fetchall()
        return [row[0] for row in found]
    finally:
        store.close()


def count_messages(data_dir: Path) -> int:
    store = Store(data_dir / DATABASE)
    try:
        return int(store.db.execute("SELECT MAX(id) FROM messages").fetchone()[0] or 0)
    finally:
        store.close()
