"""Fixed-window rate-limit counters in a small SQLite file, shared by every
process on one machine (all the workers of a gunicorn, the CLI).

The default storage of ``blueprints.rate_limits``. Counted per process, each
gunicorn worker had its own allowance, so two workers let about twice the
limit through; a file on the machine is the one place they all see, without
running Redis (Redis is still the store to use across several servers).

One hit (or one claim of several, ``core.rate_leases``) is one statement, an
UPSERT that opens a window, counts into it, or restarts it when it has
expired, and returns the count::

    INSERT INTO windows (key, count, expires) VALUES (:key, :amount, :expires)
    ON CONFLICT (key) DO UPDATE SET
      count = CASE WHEN expires <= :now THEN :amount ELSE count + :amount END, …
    RETURNING count

SQLite applies it atomically, so hits from any number of threads and
processes sum exactly. A window starts at its first hit and lasts ``expiry``
seconds (as in ``limits``' Redis storage).

The file is independent of the application database (SQLite or PostgreSQL)
and is run for speed, not durability: WAL with ``synchronous=NORMAL`` (no
fsync per hit; a power cut may forget the last hits, which only gives a
client a fresh window, but cannot corrupt the file). Hits queue on
``core.writer_lock`` (a flock beside the file) before SQLite's own lock, whose
busy handler would otherwise make a colliding hit sleep a millisecond or more.

Connections: a small stack of idle ones, opened on first use and shared by
the threads of a process (a thread takes one for a statement and gives it
back); a process forked after first use opens its own. Expired windows are
deleted by a sweep at most once every ``SWEEP_SECONDS`` per process.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from core.writer_lock import WriterLock

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS windows ("
    " key TEXT PRIMARY KEY, count INTEGER NOT NULL, expires REAL NOT NULL"
    ") WITHOUT ROWID"
)
_HIT = (
    "INSERT INTO windows (key, count, expires) VALUES (:key, :amount, :expires)"
    " ON CONFLICT (key) DO UPDATE SET"
    " count = CASE WHEN expires <= :now THEN :amount ELSE count + :amount END,"
    " expires = CASE WHEN expires <= :now THEN excluded.expires ELSE expires END"
    " RETURNING count"
)
_EXPIRY = "SELECT expires FROM windows WHERE key = :key"
_SWEEP = "DELETE FROM windows WHERE expires <= :now"


class FileCounters:
    """Fixed windows in the SQLite file at ``path`` (created when missing).

    Same interface as the ``limits`` storages used by ``blueprints.rate_limits``:
    ``incr`` counts a hit and returns the window's count, ``get_expiry`` says
    when the window ends (seconds since the epoch, from ``clock``).
    """

    SWEEP_SECONDS = 60.0
    MAX_IDLE = 32

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Callable[[], float] = time.time,
        busy_timeout_ms: int = 5000,
    ) -> None:
        self.path = str(path)
        self._clock = clock
        self._timeout = busy_timeout_ms / 1000
        self._queue = WriterLock(self.path + ".lock")
        self._idle: list[sqlite3.Connection] = []
        self._idle_lock = threading.Lock()
        self._pid = 0  # the process that opened the connections in _idle
        self._next_sweep = 0.0

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = self._clock()
        with self._connection() as conn, self._queue.hold():
            if now >= self._next_sweep:
                self._next_sweep = now + self.SWEEP_SECONDS
                conn.execute(_SWEEP, {"now": now})
            # fetchall: the statement is run to its end, so it commits now.
            rows = conn.execute(
                _HIT, {"key": key, "now": now, "expires": now + expiry, "amount": amount}
            ).fetchall()
        return int(rows[0][0])

    def get_expiry(self, key: str) -> float:
        with self._connection() as conn:
            row = conn.execute(_EXPIRY, {"key": key}).fetchone()
        return float(row[0]) if row else self._clock()

    def windows(self) -> int:
        """How many windows the file holds (expired ones not yet swept included)."""
        with self._connection() as conn:
            return int(conn.execute("SELECT count(*) FROM windows").fetchone()[0])

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with self._idle_lock:
            if self._pid != os.getpid():  # first use, or a forked child
                self._idle, self._pid = [], os.getpid()
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._open()
        try:
            yield conn
        except BaseException:
            conn.close()
            raise
        with self._idle_lock:
            if len(self._idle) < self.MAX_IDLE and self._pid == os.getpid():
                self._idle.append(conn)
                return
        conn.close()

    def _open(self) -> sqlite3.Connection:
        path = Path(self.path)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # Keys hold e-mail addresses: readable by this user only. SQLite
            # gives its -wal and -shm files the database file's permissions.
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        conn = sqlite3.connect(
            self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA synchronous=NORMAL")
            with self._queue.hold():  # processes starting together set up one at a time
                if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(_SCHEMA)
        except BaseException:
            conn.close()
            raise
        return conn

    def close(self) -> None:
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        self._queue.close()
