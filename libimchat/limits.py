"""How much one client may ask of the server: login tries, message rate, pages, rooms.

Rates are token buckets: a key (an account, a connection, a user) may spend
``burst`` tokens at once, and earns them back at ``per_second``. Sans-IO like
the directory: the time comes in as an argument, so tests need no sleeping.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass

from .errors import ChatError


@dataclass(frozen=True, kw_only=True)
class Limits:
    """The server's limits; ``Server(limits=Limits(...))`` to change them.

    Attributes:
        login_failures: failed logins allowed at once, per account and per
            connection, before ``rate_limited``.
        login_retry: seconds after which one more try is allowed.
        message_burst: messages a user may send at once.
        messages_per_second: a user's sustained rate after that.
        page_bytes_burst: bytes of pages (history, inbox, server events, user
            and room lists) a user may fetch at once, as the server sizes a
            page before sending it: 4 bytes a character of text, plus room
            for the rest. What a client asks for and does not read waits in
            the server's memory; this bounds how fast one user can pile it up.
        page_bytes_per_second: a user's sustained rate after that.
        rooms_per_user: the rooms one user may be a member of.
        blocks_per_user: the users one user may block. The whole list goes in
            each SessionStarted: 1,000 names of 32 characters are 128 KB, well
            inside a 1 MiB frame; ~16,000 would not fit, and the user could
            no longer log in.
    """

    login_failures: int = 5
    login_retry: float = 10.0
    message_burst: int = 100
    messages_per_second: float = 20.0
    page_bytes_burst: int = 16 << 20
    page_bytes_per_second: float = 2 << 20
    rooms_per_user: int = 200
    blocks_per_user: int = 1000

    @classmethod
    def unlimited(cls) -> Limits:
        """No rate limits (benchmarks, trusted deployments); the room cap stays sane."""
        return cls(
            login_failures=1 << 30,
            login_retry=1e-9,
            message_burst=1 << 30,
            messages_per_second=math.inf,
            page_bytes_per_second=math.inf,
        )


class RateLimit:
    """Token buckets, one per key, created full on first use."""

    def __init__(self, burst: int, per_second: float, what: str) -> None:
        self.burst = float(burst)
        self.per_second = per_second
        self.what = what
        self._buckets: dict[Hashable, tuple[float, float]] = {}  # key -> (tokens, at)

    def check(self, key: Hashable, now: float) -> None:
        """Raise ``ChatError("rate_limited")`` (with ``retry_after``) if ``key`` has no token."""
        tokens = self._tokens(key, now)
        if tokens < 1:
            raise self._refusal(tokens)

    def allows(self, key: Hashable, now: float) -> bool:
        """Whether ``key`` has a token now."""
        return self._tokens(key, now) >= 1

    def take(self, key: Hashable, now: float) -> None:
        """Spend a token of ``key``; ``ChatError("rate_limited")`` if it has none."""
        tokens = self._tokens(key, now)
        if tokens < 1:
            raise self._refusal(tokens)
        self._buckets[key] = (tokens - 1, now)

    def spend(self, key: Hashable, now: float, tokens: float = 1.0) -> None:
        """Spend tokens even if that leaves ``key`` in debt (what already happened: a
        failure, a page sent), down to ``-burst``."""
        self._buckets[key] = (max(self._tokens(key, now) - tokens, -self.burst), now)

    def reset(self, key: Hashable) -> None:
        self._buckets.pop(key, None)

    def forget_full(self, now: float) -> None:
        """Drop the buckets that have refilled, so that memory follows the active keys only."""
        full = [key for key in self._buckets if self._tokens(key, now) >= self.burst]
        for key in full:
            del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)

    def _refusal(self, tokens: float) -> ChatError:
        wait = (1 - tokens) / self.per_second
        return ChatError(
            "rate_limited", f"too many {self.what}; try again in {wait:.1f} s", retry_after=wait
        )

    def _tokens(self, key: Hashable, now: float) -> float:
        bucket = self._buckets.get(key)
        if bucket is None or self.per_second == math.inf:  # unlimited: (now - at) * inf is nan
            return self.burst
        tokens, at = bucket
        return min(self.burst, tokens + (now - at) * self.per_second)
