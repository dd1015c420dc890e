"""Rate limits: per integration key on the API, per IP and per email at login.

Fixed windows counted in ``RATELIMIT_STORAGE_URI``:

* ``sqlite:///<path>`` (the default, ``instance/ratelimits.sqlite``): a small
  SQLite file that every process on the machine counts in
  (``core.rate_counters``), so a limit holds across all the workers of one
  server, whatever the application database is;
* ``redis://…``: Redis, through the ``limits`` library, so several servers
  share one allowance;
* ``memory://``: counters in each process. Each worker then has its own
  allowance (two workers let twice the limit through): for a single-process
  server or tests only.

When the counters cannot be reached (Redis down, the file unusable) a
limited request is refused with ``CountersUnavailable`` (a 503): neither let
through unchecked nor a 500.

Flask-Limiter itself was dropped: its per-request machinery ran on every
request, limited or not, and cost more than a whole usage debit
(``docs/PERFORMANCE.md``). Here a limited request costs at most one counter
increment per limit (one statement or round trip), and other requests cost
nothing. Limits of 200 or more per window are claimed from the counters in
chunks of 1 % (``core.rate_leases``): never more than the limit gets
through, and a client may be refused up to 1 % early per other worker.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, wraps
from typing import Any

from flask import Flask, current_app, request
from limits import RateLimitItem, parse
from limits.errors import StorageError
from limits.storage import Storage, storage_from_string
from werkzeug.exceptions import TooManyRequests

from core.accounts import normalise_email
from core.config import default_ratelimit_storage_uri
from core.errors import Unavailable
from core.rate_counters import FileCounters
from core.rate_leases import Leases


class CountersUnavailable(Unavailable):
    """Raised when the rate-limit counters cannot be reached or updated."""

    code = "unavailable"


# What the storages raise when they cannot count (limits wraps Redis' errors).
_STORAGE_FAILURES = (StorageError, sqlite3.Error)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    retry_after: int  # seconds; 0 when allowed


class _ProcessCounters:
    """Fixed-window counters in this process (``memory://``), for tests and
    single-process servers: each worker of a multi-process server counts apart.

    Same interface as the ``limits`` storages we use (``incr``,
    ``get_expiry``). Not ``limits``' own MemoryStorage: that one re-arms a
    timer thread every 10 ms while counters exist, a steady cost in every
    worker. Here an expired window is simply replaced when next touched, and
    the table is swept when it grows.
    """

    _SWEEP_AT = 10_000

    def __init__(self) -> None:
        self._windows: dict[str, tuple[float, int]] = {}  # key -> (expires at, count)
        self._lock = threading.Lock()

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        with self._lock:
            expires, count = self._windows.get(key, (0.0, 0))
            if expires <= now:
                if len(self._windows) >= self._SWEEP_AT:
                    self._windows = {k: w for k, w in self._windows.items() if w[0] > now}
                expires, count = now + expiry, 0
            self._windows[key] = (expires, count + amount)
            return count + amount

    def get_expiry(self, key: str) -> float:
        return self._windows.get(key, (time.time(), 0))[0]


@lru_cache(maxsize=32)
def _item(limit: str) -> RateLimitItem:
    return parse(limit)  # "20/minute", "6000 per minute", ...


SQLITE_SCHEME = "sqlite:///"


def open_storage(uri: str) -> Storage | _ProcessCounters | FileCounters:
    """The counters ``uri`` names: ``memory://``, ``sqlite:///<path>``, or any
    storage of the ``limits`` library (``redis://…``)."""
    if uri == "memory://":
        return _ProcessCounters()
    if uri.startswith(SQLITE_SCHEME):
        return FileCounters(uri[len(SQLITE_SCHEME) :])
    return storage_from_string(uri, wrap_exceptions=True)


class RateLimits:
    """One per app: counters in one storage, under one key prefix."""

    def __init__(self, storage_uri: str, prefix: str = "") -> None:
        self.storage = open_storage(storage_uri)
        self.leases = Leases(self.storage)  # large limits are claimed in chunks
        self.prefix = prefix or "creditline"

    @classmethod
    def for_app(cls, app: Flask) -> RateLimits:
        return cls(app.config["RATELIMIT_STORAGE_URI"], app.config.get("RATELIMIT_KEY_PREFIX", ""))

    def hit(self, limit: str, *identifiers: str) -> Verdict:
        """Count one request against ``limit`` for ``identifiers``; may it proceed?"""
        item = _item(limit)
        bucket = item.key_for(self.prefix, *identifiers)
        try:
            grant = self.leases.hit(bucket, item.amount, item.get_expiry())
        except _STORAGE_FAILURES as exc:
            raise CountersUnavailable(f"Rate-limit counters unavailable: {exc}") from exc
        if grant.allowed:
            return Verdict(True, item.amount, grant.remaining, 0)
        return Verdict(False, item.amount, 0, max(1, int(grant.expires - time.time()) + 1))


def rate_limits() -> RateLimits:
    return current_app.extensions["creditline.rate_limits"]


def login_limited(view: Callable[..., Any]) -> Callable[..., Any]:
    """Refuse sign-in attempts (POSTs) over the per-IP or per-email limit with 429."""

    @wraps(view)
    def limited(*args: Any, **kwargs: Any) -> Any:
        if request.method == "POST":
            config = current_app.config
            email = normalise_email(request.form.get("email", ""))
            verdicts = [
                rate_limits().hit(
                    config["LOGIN_RATE_LIMIT_IP"], "login-ip", request.remote_addr or ""
                ),
                rate_limits().hit(config["LOGIN_RATE_LIMIT_EMAIL"], "login-email", email),
            ]
            refused = [v for v in verdicts if not v.allowed]
            if refused:
                raise TooManyRequests(
                    "Too many sign-in attempts. Please wait and try again.",
                    retry_after=max(v.retry_after for v in refused),
                )
        return view(*args, **kwargs)

    return limited


def init_app(app: Flask) -> None:
    if not app.config["RATELIMIT_STORAGE_URI"]:
        app.config["RATELIMIT_STORAGE_URI"] = default_ratelimit_storage_uri(app.instance_path)
    app.extensions["creditline.rate_limits"] = RateLimits.for_app(app)
