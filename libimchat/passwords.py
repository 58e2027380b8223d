"""Password hashing with Argon2id (argon2-cffi).

Profiles name the cost: ``"owasp"`` (the default: 19 MiB, t=2, p=1, OWASP's
minimum for Argon2id) and ``"fast"`` (for tests and demos on a small
machine: 8 MiB, t=1; still Argon2id, never plain text). A hash made with other
parameters is upgraded at the next successful login.
"""

from __future__ import annotations

import argon2

# (time cost, memory cost in KiB, parallelism)
PROFILES: dict[str, tuple[int, int, int]] = {
    "owasp": (2, 19 * 1024, 1),
    "fast": (1, 8 * 1024, 1),
}


class Passwords:
    """Hashes and checks passwords for one cost profile."""

    def __init__(self, profile: str = "owasp") -> None:
        if profile not in PROFILES:
            raise ValueError(f"unknown password profile {profile!r}; one of {sorted(PROFILES)}")
        time_cost, memory_cost, parallelism = PROFILES[profile]
        self._hasher = argon2.PasswordHasher(
            time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism
        )
        # verified against when the user does not exist, so that the answer
        # takes as long as for a wrong password
        self._decoy = self._hasher.hash("decoy password")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> tuple[bool, str | None]:
        """Check a password.

        Returns:
            (matches, upgraded hash or None when the stored one is current).
        """
        try:
            self._hasher.verify(password_hash or self._decoy, password)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False, None
        if password_hash is None:
            return False, None
        if self._hasher.check_needs_rehash(password_hash):
            return True, self._hasher.hash(password)
        return True, None
