"""Password hashing with Argon2id (argon2-cffi).

Profiles name the cost: ``"owasp"`` (the default: 19 MiB, t=2, p=1, OWASP's
minimum for Argon2id) and ``"fast"`` (for tests and demos on a small
machine: 8 MiB, t=1; still Argon2id, never plain text). A hash made with other
parameters is upgraded at the next successful login.

The server works every answer out ahead, on threads beside its loop
(password_pool.py), and its :class:`Passwords` only hands them over
(``worked_ahead=True``): a login or signup that comes without one, because
the threads had more than they may take on, is refused with ``rate_limited``
rather than worked out on the loop, where each would stop every conversation
for ~16 ms and a flood of them for as long as it lasts.
"""

from __future__ import annotations

from typing import Any, TypeVar

import argon2

from .errors import ChatError

T = TypeVar("T")

# (time cost, memory cost in KiB, parallelism)
PROFILES: dict[str, tuple[int, int, int]] = {
    "owasp": (2, 19 * 1024, 1),
    "fast": (1, 8 * 1024, 1),
}
# what a login or signup refused for want of a worked-out answer is told to wait, seconds
# (the pool's most work, 64 checks, is ~0.5 s at owasp on 2 cores)
BUSY_RETRY_AFTER = 1.0


class Passwords:
    """Hashes and checks passwords for one cost profile.

    Args:
        profile: the Argon2id cost, a key of :data:`PROFILES`.
        worked_ahead: :meth:`hash` and :meth:`verify` only take answers kept for
            them (:meth:`keep_hash`, :meth:`keep_verdict`) and refuse without
            one; ``False``: they work the answer out themselves.
    """

    def __init__(self, profile: str = "owasp", *, worked_ahead: bool = False) -> None:
        if profile not in PROFILES:
            raise ValueError(f"unknown password profile {profile!r}; one of {sorted(PROFILES)}")
        time_cost, memory_cost, parallelism = PROFILES[profile]
        self._hasher = argon2.PasswordHasher(
            time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism
        )
        # verified against when the user does not exist, so that the answer
        # takes as long as for a wrong password
        self._decoy = self._hasher.hash("decoy password")
        # answers worked out ahead on other threads (see password_pool.py), each
        # taken by the one call it answers
        self._verified: dict[tuple[str | None, str], list[tuple[bool, str | None]]] = {}
        self._hashed: dict[str, list[str]] = {}
        self._worked_ahead = worked_ahead

    def hash(self, password: str) -> str:
        """A new hash of ``password`` (one worked out ahead, if there is one).

        Raises:
            ChatError: ``rate_limited``, with ``worked_ahead`` and none kept.
        """
        ready = _take(self._hashed, password)
        if ready is not None:
            return ready
        self._refuse_if_worked_ahead()
        return self.work_out_hash(password)

    def verify(self, password_hash: str | None, password: str) -> tuple[bool, str | None]:
        """Check a password (or take the answer worked out ahead for it).

        Returns:
            (matches, upgraded hash or None when the stored one is current).

        Raises:
            ChatError: ``rate_limited``, with ``worked_ahead`` and none kept.
        """
        ready = _take(self._verified, (password_hash, password))
        if ready is not None:
            return ready
        self._refuse_if_worked_ahead()
        return self.work_out_verify(password_hash, password)

    def _refuse_if_worked_ahead(self) -> None:
        if self._worked_ahead:
            raise ChatError(
                "rate_limited",
                "the server is busy checking passwords; try again in a moment",
                retry_after=BUSY_RETRY_AFTER,
            )

    # --- the work itself, safe on any thread, and answers kept for one later call

    def work_out_hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def work_out_verify(self, password_hash: str | None, password: str) -> tuple[bool, str | None]:
        """What :meth:`verify` answers, always worked out (~16 ms at ``owasp``)."""
        try:
            self._hasher.verify(password_hash or self._decoy, password)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False, None
        if password_hash is None:
            return False, None
        if self._hasher.check_needs_rehash(password_hash):
            return True, self._hasher.hash(password)
        return True, None

    def keep_hash(self, password: str, password_hash: str) -> None:
        """Let the next :meth:`hash` of ``password`` answer ``password_hash``."""
        self._hashed.setdefault(password, []).append(password_hash)

    def keep_verdict(
        self, password_hash: str | None, password: str, verdict: tuple[bool, str | None]
    ) -> None:
        """Let the next :meth:`verify` of this hash and password answer ``verdict``."""
        self._verified.setdefault((password_hash, password), []).append(verdict)

    def forget_kept(self) -> None:
        """Drop the answers no call took: their request was refused before asking, or the
        stored hash changed meanwhile (then the call worked its answer out itself)."""
        self._verified.clear()
        self._hashed.clear()


def _take(kept: dict[Any, list[T]], key: Any) -> T | None:
    """One of the answers kept under ``key``, removed; ``None`` if there is none."""
    answers = kept.get(key)
    if not answers:
        return None
    answer = answers.pop()
    if not answers:
        del kept[key]
    return answer
