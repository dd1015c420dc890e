"""Password hashing with argon2id (argon2-cffi).

The default profile is argon2-cffi's RFC 9106 "low memory" recommendation
(argon2id, t=3, m=64 MiB, p=4). The ``fast`` profile exists only so the test
suite can create hundreds of users quickly; it is still argon2id and every
stored hash names its own parameters, so verification never depends on the
profile that is active now.

Unknown emails cost the same as known ones: ``verify(None, ...)`` checks the
password against a dummy hash made with the *active* profile, so a sign-in
attempt takes as long (and as much memory) whether or not the account exists.
The dummy is computed once per process and profile, on first use.

Hashing is the most expensive thing the site does (64 MiB and four lanes per
hash), so a flood of sign-ins or registrations must not take every core and
thread from the API, which never hashes passwords (its keys are SHA-256).
Each ``Passwords`` (one per app, so one per worker process) lets at most
``concurrency`` hashes or verifications run at once; the rest queue. A caller
that has queued for ``wait_seconds`` gets ``PasswordHashingBusy`` instead of
holding its thread any longer. Callers hash outside write transactions: a
hash inside one would hold the database's writer lock for its whole duration.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from argon2 import Parameters, PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.profiles import RFC_9106_LOW_MEMORY

from core.errors import PasswordHashingBusy

PROFILES: dict[str, Parameters] = {
    "default": RFC_9106_LOW_MEMORY,
    "fast": dataclasses.replace(RFC_9106_LOW_MEMORY, time_cost=1, memory_cost=1024, parallelism=1),
}

_dummy_hashes: dict[str, str] = {}
_dummy_lock = threading.Lock()


def _dummy_hash(profile: str, hasher: PasswordHasher) -> str:
    """A hash of no one's password made with ``profile``, once per process."""
    with _dummy_lock:
        if profile not in _dummy_hashes:
            _dummy_hashes[profile] = hasher.hash("not a password")
        return _dummy_hashes[profile]


class Passwords:
    def __init__(
        self, profile: str = "default", concurrency: int = 1, wait_seconds: float = 10
    ) -> None:
        if profile not in PROFILES:
            raise ValueError(f"unknown password hash profile {profile!r}")
        if concurrency < 1:
            raise ValueError("password hash concurrency must be at least 1")
        self.profile = profile
        self._hasher = PasswordHasher.from_parameters(PROFILES[profile])
        self._slots = threading.BoundedSemaphore(concurrency)
        self._wait_seconds = wait_seconds

    @contextmanager
    def _slot(self) -> Iterator[None]:
        if not self._slots.acquire(timeout=self._wait_seconds):
            raise PasswordHashingBusy(
                "Too many sign-ins are being checked right now. Please try again in a moment."
            )
        try:
            yield
        finally:
            self._slots.release()

    def hash(self, password: str) -> str:
        with self._slot():
            return self._hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        """Does ``password`` match ``stored_hash``? ``None`` (no such account)
        costs the same as a real check and is always False."""
        with self._slot():
            target = stored_hash or _dummy_hash(self.profile, self._hasher)
            try:
                matched = self._hasher.verify(target, password)
            except (VerificationError, InvalidHashError):
                return False
        return matched and bool(stored_hash)
