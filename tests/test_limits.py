"""Limits: login tries per account and per connection, a user's message and page rates,
rooms per user.

The buckets are tested sans-IO with a made-up clock; the live tests use a
server with small limits and check the error a client sees.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from libimchat import ChatError, Client, Server
from libimchat.limits import Limits, RateLimit
from tests.helpers import signup, start_server

# --- the buckets, sans-IO


def test_a_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = RateLimit(burst=3, per_second=2.0, what="tries")
    for _ in range(3):
        bucket.take("ali", now=100.0)
    with pytest.raises(ChatError) as caught:
        bucket.take("ali", now=100.0)
    assert caught.value.code == "rate_limited"
    assert caught.value.retry_after == pytest.approx(0.5)
    bucket.take("ali", now=100.5)  # one token back after 1 / rate seconds
    bucket.take("sam", now=100.5)  # keys are independent


def test_spending_goes_into_debt_and_refills_to_the_burst_only() -> None:
    bucket = RateLimit(burst=2, per_second=1.0, what="tries")
    for _ in range(5):
        bucket.spend("ali", now=0.0)
    with pytest.raises(ChatError) as caught:
        bucket.check("ali", now=0.0)
    assert caught.value.retry_after == pytest.approx(3.0)  # debt floors at -burst
    bucket.check("ali", now=3.0)
    bucket.forget_full(now=3.0)
    assert len(bucket) == 1  # not full yet
    bucket.forget_full(now=10.0)
    assert len(bucket) == 0


# --- live


@pytest.fixture
def strict(tmp_path: Path) -> Server:
    server = start_server(
        tmp_path,
        limits=Limits(
            login_failures=3, login_retry=0.5, message_burst=5, messages_per_second=2.0,
            rooms_per_user=2, blocks_per_user=2,
        ),
    )  # fmt: skip
    yield server
    server.stop()


def test_guessing_a_password_is_rate_limited_per_account(strict: Server) -> None:
    with Client(strict.url, timeout=5) as owner:
        signup(owner, "ali", password="right")
    guessers = [Client(strict.url, timeout=5) for _ in range(4)]  # a new connection each try
    try:
        for guesser in guessers[:3]:
            with pytest.raises(ChatError) as wrong:
                guesser.login("ali", "guess")
            assert wrong.value.code == "bad_credentials"
        with pytest.raises(ChatError) as limited:
            guessers[3].login("ali", "right")  # even the right one waits
        assert limited.value.code == "rate_limited"
        assert 0 < (limited.value.retry_after or 0) <= 0.5
        time.sleep(limited.value.retry_after or 0)
        assert guessers[3].login("ali", "right").username == "ali"
    finally:
        for guesser in guessers:
            guesser.close()


def test_guessing_many_accounts_is_rate_limited_per_connection(strict: Server) -> None:
    with Client(strict.url, timeout=5) as sprayer:
        for name in ("ann", "bob", "cat", "dan"):
            signup(sprayer, name)
        for name in ("ann", "bob", "cat"):
            with pytest.raises(ChatError) as wrong:
                sprayer.login(name, "guess")
            assert wrong.value.code == "bad_credentials"
        with pytest.raises(ChatError) as limited:
            sprayer.login("dan", "guess")
        assert limited.value.code == "rate_limited"
    with Client(strict.url, timeout=5) as dan:  # dan's own connection is not held up
        assert dan.login("dan", "pw").username == "dan"


def test_a_flood_of_messages_is_rate_limited_per_user(strict: Server) -> None:
    with Client(strict.url, timeout=5) as ali, Client(strict.url, timeout=5) as sam:
        signup(ali, "ali")
        signup(sam, "sam")
        ali.login("ali", "pw")
        sent = 0
        with pytest.raises(ChatError) as limited:
            for i in range(50):
                ali.send("sam", f"spam {i}")
                sent += 1
        assert limited.value.code == "rate_limited"
        assert 5 <= sent < 10  # the burst, plus what the rate gave back meanwhile
        assert limited.value.retry_after is not None and 0 < limited.value.retry_after <= 0.5
        sam.login("sam", "pw")
        assert len(sam.history("ali", limit=50)) == sent  # refused messages were not stored
        time.sleep(limited.value.retry_after)
        assert ali.send("sam", "after the wait").body == "after the wait"


def test_rooms_per_user_are_capped(strict: Server) -> None:
    with Client(strict.url, timeout=5) as ali, Client(strict.url, timeout=5) as sam:
        signup(ali, "ali")
        ali.login("ali", "pw")
        signup(sam, "sam")
        sam.login("sam", "pw")
        ali.create_room("one")
        ali.create_room("two")
        with pytest.raises(ChatError) as created:
            ali.create_room("three")
        assert created.value.code == "too_many_rooms"
        sam.create_room("three")
        with pytest.raises(ChatError) as joined:
            ali.join("three")
        assert joined.value.code == "too_many_rooms"
        ali.leave("one")
        assert ali.join("three").name == "three"
        assert sorted(r.name for r in ali.rooms() if r.joined) == ["three", "two"]


def test_blocks_per_user_are_capped(strict: Server) -> None:
    # the whole list goes in every SessionStarted: past ~16,000 names it would not fit
    # in a frame, and the user could no longer log in
    with Client(strict.url, timeout=5) as ali:
        for name in ("ali", "bob", "cat", "dan"):
            signup(ali, name)
        ali.login("ali", "pw")
        ali.block("bob")
        ali.block("cat")
        ali.block("cat")  # blocked already: not one more
        with pytest.raises(ChatError) as refused:
            ali.block("dan")
        assert refused.value.code == "too_many_blocks"
        ali.unblock("bob")
        ali.block("dan")
        assert ali.blocked() == ["cat", "dan"]


def test_a_history_page_is_capped(strict: Server) -> None:
    with Client(strict.url, timeout=5) as ali:
        signup(ali, "ali")
        ali.login("ali", "pw")
        with pytest.raises(ChatError) as caught:
            ali.history("ali", limit=10_000)
        assert caught.value.code == "invalid" and "500" in caught.value.message


def test_pages_are_rate_limited_per_user_by_their_size(tmp_path: Path) -> None:
    # 4 bytes a character plus 256 an item: a page of ten 1,000-character messages
    # is sized 42,560 bytes, more than the whole burst; the first one still goes
    limits = Limits(page_bytes_burst=40_000, page_bytes_per_second=100_000.0)
    with (
        start_server(tmp_path, limits=limits) as server,
        Client(server.url, timeout=5) as ali,
        Client(server.url, timeout=5) as sam,
    ):
        signup(ali, "ali")
        signup(sam, "sam")
        ali.login("ali", "pw")
        sam.login("sam", "pw")
        for i in range(10):
            ali.send("sam", f"{i}" * 1000)
        assert len(sam.history("ali")) == 10
        with pytest.raises(ChatError) as limited:
            sam.history("ali")
        assert limited.value.code == "rate_limited"
        assert 0 < (limited.value.retry_after or 0) <= 0.5  # (1 + 2,560) / 100,000 s, and less
        assert len(ali.history("sam")) == 10  # ali's budget is her own
        time.sleep(limited.value.retry_after or 0)
        assert len(sam.history("ali")) == 10


# a page of 5 users "userN" sized (14 characters x 4 + 256) x 5 = 1,560 bytes: two pages
# spend the burst, and the third waits ~60 ms for the rate to give it back
SMALL_PAGES = Limits(page_bytes_burst=2_000, page_bytes_per_second=20_000.0)


def test_the_whole_user_list_comes_though_the_server_limits_its_pages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("libimchat.directory.LIST_PAGE", 5)  # the server's, in this process
    with start_server(tmp_path, limits=SMALL_PAGES) as server:
        with Client(server.url, timeout=5) as signups:
            names = sorted(signup(signups, f"user{i}") for i in range(12))
        with Client(server.url, timeout=5) as ali:
            ali.login("user0", "pw")
            assert [user.username for user in ali.users()] == names  # before: rate_limited
