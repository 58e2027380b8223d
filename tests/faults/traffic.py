"""Chat traffic that remembers everything, and the checks that nothing was lost or doubled.

Each :class:`Chatter` is a real logged-in :class:`~libimchat.Client` whose
thread sends direct messages to the others and posts to a shared room, as
fast as the server acknowledges, while recording every acknowledged message
and every message it receives. Faults are injected meanwhile; afterwards
:func:`check_store` reads the server's SQLite file and :func:`check_delivery`
compares what each chatter received with what was stored.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from libimchat import ChatError, Client, Event, Message
from tests.faults.servers import wait_until
from tests.helpers import signup

ROOM = "Faults"


@dataclass
class Chatter:
    """One user: what it sent (acknowledged, in order) and what it received (in order)."""

    name: str
    client: Client
    acked: list[Message] = field(default_factory=list)
    direct: list[Message] = field(default_factory=list)  # DMs received
    room: list[Message] = field(default_factory=list)  # room messages received
    copies: list[Message] = field(default_factory=list)  # DMs it sent, echoed back to it
    resends: int = 0  # sends the test repeated after a timeout (same client id)

    def receive(self, event: Event) -> None:
        assert event.message is not None
        if event.kind == "room_message":
            self.room.append(event.message)
        elif event.message.recipient == self.name:
            self.direct.append(event.message)
        else:
            self.copies.append(event.message)


class Traffic:
    """Users that all join one room, then each send ``per_user`` messages from a thread.

    Args:
        url: the server (or a proxy in front of it).
        users: how many users.
        per_user: how many messages each sends, about half DMs and half room posts.
        seed: for who talks to whom.
    """

    def __init__(self, url: str, *, users: int, per_user: int, seed: int) -> None:
        self.per_user = per_user
        self.chatters: list[Chatter] = []
        self._rng = random.Random(seed)
        self._threads: list[threading.Thread] = []
        self._errors: list[BaseException] = []
        for index in range(users):
            # generous: a send waits out a kill or an outage and the client's backoff
            client = Client(url, timeout=30.0)
            name = signup(client, f"chatter{index}")
            client.login(name, "pw")
            chatter = Chatter(name, client)
            client.on("message", chatter.receive)
            client.on("room_message", chatter.receive)
            self.chatters.append(chatter)
        self.chatters[0].client.create_room(ROOM)
        for chatter in self.chatters[1:]:
            chatter.client.join(ROOM)

    @property
    def acked(self) -> int:
        return sum(len(c.acked) for c in self.chatters)

    @property
    def total(self) -> int:
        return self.per_user * len(self.chatters)

    def start(self) -> None:
        for chatter in self.chatters:
            others = [c.name for c in self.chatters if c is not chatter]
            # None: a room post
            plan = [
                None if self._rng.random() < 0.5 else self._rng.choice(others)
                for _ in range(self.per_user)
            ]
            thread = threading.Thread(target=self._send, args=(chatter, plan), daemon=True)
            thread.start()
            self._threads.append(thread)

    def finish(self, timeout: float) -> None:
        """Wait until every send is acknowledged; re-raise what a sender failed with."""
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0))
        assert not self._errors, f"a sender failed: {self._errors[0]!r}"
        assert self.acked == self.total, f"only {self.acked} of {self.total} sends acknowledged"

    def run_with_faults(self, moments: list[int], fault: Callable[[int], None]) -> None:
        """Send everything while ``fault(i)`` strikes once ``moments[i]`` sends are acknowledged.

        The faults run on a thread of their own; whatever they raise fails the test.
        """
        failures: list[BaseException] = []

        def strike() -> None:
            try:
                for index, moment in enumerate(moments):
                    wait_until(lambda m=moment: self.acked >= m, 30, f"{moment} acknowledged")
                    fault(index)
            except BaseException as exc:
                failures.append(exc)

        striker = threading.Thread(target=strike, daemon=True)
        self.start()
        striker.start()
        self.finish(timeout=45)
        striker.join(10)
        assert not failures, failures

    def close(self) -> None:
        for chatter in self.chatters:
            chatter.client.close()

    def __enter__(self) -> Traffic:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _send(self, chatter: Chatter, plan: list[str | None]) -> None:
        try:
            for index, to in enumerate(plan):
                client_id = f"{chatter.name}-{index}"
                body = f"{client_id} to {to or ROOM}"
                chatter.acked.append(self._send_one(chatter, to, body, client_id))
        except BaseException as exc:
            self._errors.append(exc)

    def _send_one(self, chatter: Chatter, to: str | None, body: str, client_id: str) -> Message:
        """Send until acknowledged: a send that timed out is sent again with its client id."""
        while True:
            try:
                if to is None:
                    return chatter.client.send_room(ROOM, body, client_id=client_id)
                return chatter.client.send(to, body, client_id=client_id)
            except ChatError as exc:
                if exc.code != "timeout":
                    raise
                chatter.resends += 1


@dataclass(frozen=True)
class Figures:
    acknowledged: int
    lost: int
    duplicated: int


def print_figures(
    capsys: pytest.CaptureFixture[str],
    fault: str,
    figures: Figures,
    traffic: Traffic,
    seed: int,
    **extra: object,
) -> None:
    """One ``FIGURES:`` line for docs/RELIABILITY.md, shown even when pytest captures output."""
    details = "".join(f" {name}={value}" for name, value in extra.items())
    with capsys.disabled():
        print(
            f"\nFIGURES: {fault} acknowledged={figures.acknowledged} lost={figures.lost}"
            f" duplicated={figures.duplicated}{details}"
            f" resends={sum(c.resends for c in traffic.chatters)} seed={seed}"
        )


def check_store(database: Path, traffic: Traffic) -> Figures:
    """Every acknowledged message is stored exactly once, under the id it was acknowledged with.

    Also: room and inbox sequence numbers have no gaps, and SQLite finds the file sound.
    Call it once the server has stopped.
    """
    db = sqlite3.connect(database)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        rows = db.execute(
            "SELECT m.id, u.username, m.client_id, m.body FROM messages m"
            " JOIN users u ON u.id = m.sender_id"
        ).fetchall()
        room_seqs = [s for (s,) in db.execute("SELECT seq FROM messages WHERE inbox_seq IS NULL")]
        inbox_seqs: dict[int, list[int]] = {}
        for recipient, seq in db.execute(
            "SELECT recipient_id, inbox_seq FROM messages WHERE inbox_seq IS NOT NULL"
        ):
            inbox_seqs.setdefault(recipient, []).append(seq)
    finally:
        db.close()
    acked = {(c.name, m.client_id): m for c in traffic.chatters for m in c.acked}
    stored = Counter((sender, body) for _, sender, _, body in rows)
    stored_ids = {(sender, client_id): id_ for id_, sender, client_id, _ in rows}
    figures = Figures(
        acknowledged=len(acked),
        lost=sum(key not in stored_ids for key in acked),
        duplicated=sum(n - 1 for n in stored.values()),
    )
    assert figures.lost == figures.duplicated == 0, figures
    assert {key: stored_ids[key] for key in acked} == {key: m.id for key, m in acked.items()}
    assert len(rows) == len(acked), "the store holds messages nobody sent"
    assert sorted(room_seqs) == list(range(1, len(room_seqs) + 1))
    for seqs in inbox_seqs.values():
        assert sorted(seqs) == list(range(1, len(seqs) + 1))
    return figures


def expected_direct(traffic: Traffic, chatter: Chatter) -> list[int]:
    """The ids of the DMs to ``chatter``, in the order of its inbox."""
    dms = [m for c in traffic.chatters for m in c.acked if m.recipient == chatter.name]
    return [m.id for m in sorted(dms, key=lambda m: m.seq)]


def expected_room(traffic: Traffic) -> list[int]:
    """The ids of the room's messages, in room order."""
    posts = [m for c in traffic.chatters for m in c.acked if m.room == ROOM]
    return [m.id for m in sorted(posts, key=lambda m: m.seq)]


def wait_delivered(traffic: Traffic, timeout: float) -> None:
    """Wait until every chatter has received as many messages as were sent to it."""
    deadline = time.monotonic() + timeout
    room = len(expected_room(traffic))
    for chatter in traffic.chatters:
        direct = len(expected_direct(traffic, chatter))
        while len(chatter.direct) < direct or len(chatter.room) < room:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{chatter.name} received {len(chatter.direct)}/{direct} DMs and"
                    f" {len(chatter.room)}/{room} room messages within {timeout} s"
                )
            time.sleep(0.05)  # the callbacks append; nothing to wait on


def check_delivery(traffic: Traffic) -> None:
    """Each chatter received each message to it exactly once, in order."""
    room = expected_room(traffic)
    for chatter in traffic.chatters:
        _compare(
            f"{chatter.name}'s DMs",
            [m.id for m in chatter.direct],
            expected_direct(traffic, chatter),
        )
        _compare(f"{chatter.name}'s room messages", [m.id for m in chatter.room], room)
        assert chatter.copies == [], chatter.name  # one client per user: no echoes
    # each user's sends were acknowledged in the order they were made
    for chatter in traffic.chatters:
        ids = [m.id for m in chatter.acked]
        assert ids == sorted(ids), chatter.name


def _compare(what: str, got: list[int], want: list[int]) -> None:
    """``got == want``, or a failure that says how they differ (the lists are long)."""
    if got == want:
        return
    counts = Counter(got)
    pairs = zip(got, want, strict=False)
    first = next((i for i, (a, b) in enumerate(pairs) if a != b), min(len(got), len(want)))
    raise AssertionError(
        f"{what}: {len(got)} received, {len(want)} expected;"
        f" missing {len(set(want) - set(got))}, unexpected {len(set(got) - set(want))},"
        f" duplicated {sum(n - 1 for n in counts.values())}; first difference at {first}:"
        f" {got[first : first + 5]} instead of {want[first : first + 5]}"
    )
