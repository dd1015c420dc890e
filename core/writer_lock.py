"""A queue for SQLite writers across threads and processes.

SQLite admits one writer at a time. A writer that finds the lock taken does
not wait in a queue: its busy handler sleeps and retries, first after 1 ms,
then 2, 5, 10 ms… A usage debit holds the lock for about 0.4 ms (most of it
the commit's fsync), so under load writers overslept the lock by several
times its length and the CPU sat idle: ingest throughput doubled when the
fsync was switched off, which left the lock free sooner (docs/PERFORMANCE.md).

So writers first take this lock: a ``threading.RLock`` for the threads of a
process, then ``flock`` on a file beside the database for the processes
(gunicorn workers, the CLI). The kernel wakes the next waiter as soon as the
holder releases, and ``BEGIN IMMEDIATE`` then finds SQLite's lock free. A
process that dies holding it releases it with its file descriptor. Writers
that do not take it (another program) are still handled by SQLite's own
locking and busy timeout; this only decides who goes next among ours.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class WriterLock:
    def __init__(self, path: str) -> None:
        self.path = path
        self._threads = threading.RLock()
        self._depth = 0  # guarded by _threads; nested writes lock the file once
        self._fd: int | None = None
        self._pid = 0

    def _file(self) -> int:
        # A forked child must not share its parent's open file description:
        # flock belongs to that description, so the two would share one lock.
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        return self._fd

    @contextmanager
    def hold(self) -> Iterator[None]:
        with self._threads:
            if self._depth == 0:
                fcntl.flock(self._file(), fcntl.LOCK_EX)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    fcntl.flock(self._file(), fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None


@contextmanager
def no_lock() -> Iterator[None]:
    """PostgreSQL queues its writers itself (row locks)."""
    yield
