"""Password hashing with argon2id (argon2-cffi).

The default profile is argon2-cffi's RFC 9106 "low memory" recommendation
(argon2id, t=3, m=64 MiB, p=4). The ``fast`` profile exists only so the test
suite can create hundreds of users quickly; it is still argon2id and every
stored hash names its own parameters, so verification never depends on the
profile that is active now.
"""

from __future__ import annotations

import dataclasses

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.profiles import RFC_9106_LOW_MEMORY

_PROFILES = {
    "default": RFC_9106_LOW_MEMORY,
    "fast": dataclasses.replace(RFC_9106_LOW_MEMORY, time_cost=1, memory_cost=1024, parallelism=1),
}

# Verified against when the email is unknown, so a login attempt takes the same
# time whether or not the account exists.
_DUMMY_HASH = PasswordHasher.from_parameters(_PROFILES["fast"]).hash("not a password")


class Passwords:
    def __init__(self, profile: str = "default") -> None:
        if profile not in _PROFILES:
            raise ValueError(f"unknown password hash profile {profile!r}")
        self._hasher = PasswordHasher.from_parameters(_PROFILES[profile])

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(stored_hash or _DUMMY_HASH, password) and bool(stored_hash)
        except (VerificationError, InvalidHashError):
            return False
