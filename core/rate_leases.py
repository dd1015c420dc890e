"""Claims on a shared rate-limit counter, so a busy key costs one count per
claim instead of one per request.

Why
---
A limit holds across processes because every hit is counted in one shared
store (``core.rate_counters``' file, or Redis). Counting costs a statement (a
lock, a write) or a round trip per request, and under load that was a
noticeable part of a gateway call. For a large limit (the API's 6,000 a
minute, the gateway's 600) a process instead *claims* several hits at once
from the shared counter and hands them out to its own requests from memory.

Rule (the limit is never exceeded)
----------------------------------
* A limit of ``amount`` hits per window is claimed in chunks of
  ``claim_size(amount)``: 1 % of it, at most ``MAX_CLAIM``; below
  ``MIN_AMOUNT`` every hit is counted on its own (chunk 1), as before.
* A claim adds the whole chunk to the shared count and grants only what was
  still free under ``amount``: ``min(chunk, amount − (count − chunk))``. So
  the hits granted in one window, over all processes, never exceed
  ``amount``.
* Granted hits belong to the window they were claimed in: each claim reads
  the window's end, and a process drops what it did not use once it is past.
* The cost of sharing: hits another process claimed and has not used yet are
  not available to this one. A client can be refused up to one chunk early
  per other process (1 % of the limit each), never let through late.

``remaining`` (for ``X-RateLimit-Remaining``) is the free count seen at this
process's last claim plus its unused hits: exact with one process, an
estimate with several.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

MIN_AMOUNT = 200  # smaller limits are counted hit by hit
MAX_CLAIM = 100
_SWEEP_AT = 10_000  # leases kept per process before expired ones are dropped


class Counters(Protocol):
    """The shared store: ``limits``' storages, ``FileCounters``, process counters."""

    def incr(self, key: str, expiry: int, amount: int = 1) -> int: ...

    def get_expiry(self, key: str) -> float: ...


def claim_size(amount: int) -> int:
    """How many hits of a limit of ``amount`` per window one claim takes."""
    if amount < MIN_AMOUNT:
        return 1
    return min(MAX_CLAIM, amount // 100)


@dataclass(frozen=True)
class Grant:
    """One hit's verdict: allowed or not, what is left, when the window ends."""

    allowed: bool
    remaining: int
    expires: float  # seconds since the epoch (the store's clock)


@dataclass
class _Lease:
    unused: int
    free_after_claim: int  # the shared count's headroom seen at the claim
    expires: float


class Leases:
    """This process's unused claimed hits, per counter key (thread-safe)."""

    def __init__(self, counters: Counters, clock: Callable[[], float] | None = None) -> None:
        self.counters = counters
        self._clock = clock or (lambda: time.time())
        self._leases: dict[str, _Lease] = {}
        self._lock = threading.Lock()
        self.claims = 0  # calls to the shared store (tests, benchmarks)

    def hit(self, key: str, amount: int, expiry: int) -> Grant:
        """Take one hit of ``amount`` per ``expiry`` seconds under ``key``."""
        now = self._clock()
        with self._lock:
            lease = self._leases.get(key)
            if lease is not None and lease.expires > now and lease.unused > 0:
                lease.unused -= 1
                return Grant(True, lease.free_after_claim + lease.unused, lease.expires)
        return self._claim(key, amount, expiry, now)

    def _claim(self, key: str, amount: int, expiry: int, now: float) -> Grant:
        chunk = claim_size(amount)
        self.claims += 1
        count = self.counters.incr(key, expiry, amount=chunk)
        granted = max(0, min(chunk, amount - (count - chunk)))
        free = max(0, amount - count)
        if chunk == 1:  # counted hit by hit: the window's end only matters when refused
            expires = now + expiry if granted else self.counters.get_expiry(key)
            return Grant(granted == 1, free, expires)
        expires = self.counters.get_expiry(key)
        if granted == 0:
            return Grant(False, 0, expires)
        with self._lock:
            lease = self._leases.get(key)
            if lease is None or lease.expires <= now:  # none yet, or its window ended
                if len(self._leases) >= _SWEEP_AT:
                    self._leases = {k: v for k, v in self._leases.items() if v.expires > now}
                lease = self._leases[key] = _Lease(0, free, expires)
            lease.unused += granted - 1  # one of them is this hit
            lease.free_after_claim = free
            return Grant(True, free + lease.unused, expires)
