"""Keys this process has authenticated, found again without a query.

A request's bearer key costs one indexed SELECT to check. On the hot paths
(``/api/v1/usage``, ``/v1`` calls) a key that authenticated once is found
again by the SHA-256 of the secret presented, in this process's memory.

Invariant: such a key is trusted only by a caller that checks it again in
the write transaction that acts on it, so a key revoked (or expired, or its
user disabled) in any process is refused from its next request on, exactly
as without the cache:

* the usage API reads ``integration_keys.revoked_at`` in the statement that
  reads the config version (``core.usage_debits``);
* a gateway hold updates the key's row only if it is neither revoked nor
  expired, and the wallet's only if its user is enabled (``core.holds``).

The caller then forgets the key. Every other endpoint checks keys in the
database each time.
"""

from __future__ import annotations

import hashlib
from typing import Generic, TypeVar

T = TypeVar("T")


class RecentKeys(Generic[T]):
    """What each remembered secret authenticated as (an ``AuthenticatedKey``,
    a ``KeyHolder``), with its key's id.

    Bounded: when full it starts again empty. Safe across threads (single
    dict operations).
    """

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._keys: dict[str, tuple[int, T]] = {}

    def get(self, presented: str) -> T | None:
        found = self._keys.get(_digest(presented))
        return None if found is None else found[1]

    def remember(self, presented: str, key_id: int, value: T) -> None:
        if len(self._keys) >= self._size:
            self._keys = {}
        self._keys[_digest(presented)] = (key_id, value)

    def forget(self, key_id: int) -> None:
        """Drop a key found no longer valid (every secret that maps to it)."""
        for hashed, (found_id, _) in list(self._keys.items()):
            if found_id == key_id:
                self._keys.pop(hashed, None)

    def __len__(self) -> int:
        return len(self._keys)


def _digest(presented: str) -> str:
    return hashlib.sha256(presented.encode()).hexdigest()
