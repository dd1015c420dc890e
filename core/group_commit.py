"""Group commit: many small write transactions of one process committed as one.

Why
---
On SQLite one writer runs at a time, and each write transaction pays for the
cross-process writer lock (``core.writer_lock``) and for its commit's fsync.
A gateway call makes two tiny ones (take the hold, settle it), and measured
under load those two fixed costs, not the statements, set the throughput:
the threads of a worker queued for the lock one transaction at a time.

How
---
``GroupCommit.run(work)`` runs ``work(cursor)`` in a write transaction and
returns its result, like ``with db.raw_write() as cur: return work(cur)``.
Threads that arrive while a transaction of this process is being written do
not each open their own: they queue, and when it ends the first of them (the
*leader*) opens one transaction for everyone queued, runs each piece of work
inside its own ``SAVEPOINT``, commits once, and hands every caller its result
or its exception. Nobody waits for a timer: a thread that finds nobody
writing leads at once, so a lone call costs what it did before.

Guarantees (each caller sees exactly what its own transaction would give)
------------------------------------------------------------------------
1. A caller's ``run`` returns only after the transaction holding its work has
   committed; it raises if that transaction did not commit.
2. Work that raises is rolled back to its savepoint alone; the others in the
   batch are unaffected, and the caller gets the exception.
3. A failure of the transaction itself (the commit, or a savepoint that could
   not be rolled back) fails every caller in the batch: none of their work
   was committed.
4. Work runs in arrival order, one piece at a time, under the writer lock,
   so each sees the effects of the ones before it: the same serial order as
   separate transactions.

PostgreSQL does not need this: its writers run concurrently, lock only the
rows they touch, and its WAL writer already flushes concurrent commits
together. Batching there would only make unrelated wallets wait on each
other (and risk lock-order deadlocks between batches), so on PostgreSQL
``run`` is one transaction per call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from core import commit_hooks
from core.db import Database
from core.rawdb import RawCursor

T = TypeVar("T")

# Batches stay small enough that no caller waits long behind the others.
MAX_BATCH = 64


class _Work(Generic[T]):
    """One caller's piece of work and, once its batch has ended, its outcome.

    ``wake`` is a lock its caller blocks on while queued; it is released once,
    by the thread that ends the caller's batch or that hands it the lead.
    """

    __slots__ = ("done", "durable", "error", "result", "wake", "work")

    def __init__(self, work: Callable[[RawCursor], T], durable: bool) -> None:
        self.work = work
        self.durable = durable
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None
        self.wake = threading.Lock()
        self.wake.acquire()


class GroupCommit:
    """Batches the write transactions of one process's threads (see module)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._batching = db.is_sqlite
        self._lock = threading.Lock()
        self._queue: list[_Work[Any]] = []
        self._writing = False  # a batch is being written (its leader runs it)
        self.transactions = 0  # how many this process opened (tests, benchmarks)

    @property
    def queued(self) -> int:
        """How many callers wait for the next batch (tests)."""
        with self._lock:
            return len(self._queue)

    def run(self, work: Callable[[RawCursor], T], *, durable: bool = True) -> T:
        """``work(cursor)`` in a committed write transaction; its result or error.

        ``durable=False``: the work may be committed without waiting for the
        disk (``Database.raw_write``); a batch is, only if none of its work
        must be durable."""
        if not self._batching:
            self.transactions += 1  # approximate under threads; only for reports
            with self.db.raw_write(durable=durable) as cur:
                return work(cur)
        mine: _Work[T] = _Work(work, durable)
        with self._lock:
            leads = not self._writing
            if leads:
                self._writing = True
            else:
                self._queue.append(mine)
        if not leads:
            # Woken once: either this caller's batch has ended, or it is the
            # oldest caller still queued and leads the next batch.
            mine.wake.acquire()
        if not mine.done:
            self._lead(mine)
        result = _outcome(mine)
        self.db.notify_committed()  # for this thread, whichever thread committed it
        return result

    def _lead(self, mine: _Work[Any]) -> None:
        """Write ``mine`` and everyone queued behind it; wake each of them once.

        Only the callers of the batch and the next leader are woken, not every
        queued thread: under load a wake-everyone rule woke a dozen threads per
        batch to find they still had to wait.
        """
        with self._lock:
            take = MAX_BATCH - 1
            batch, self._queue = [mine, *self._queue[:take]], self._queue[take:]
        try:
            self._write(batch)
        finally:
            with self._lock:
                following = self._queue.pop(0) if self._queue else None
                self._writing = following is not None  # the lead passes on, or ends
            for item in batch[1:]:
                item.wake.release()
            if following is not None:
                following.wake.release()

    def _write(self, batch: list[_Work[Any]]) -> None:
        """One transaction for ``batch``; every piece ends ``done``."""
        failure: BaseException | None = InterruptedError("the write was interrupted")
        self.transactions += 1
        try:
            with self.db.raw_write(durable=any(item.durable for item in batch)) as cur:
                if len(batch) == 1:  # alone: its error rolls back the transaction
                    batch[0].result = batch[0].work(cur)
                else:
                    for item in batch:
                        _run_in_savepoint(cur, item)
            failure = None
        except Exception as exc:
            failure = exc
        finally:
            for item in batch:
                if failure is not None:  # nothing in this batch was committed
                    item.result, item.error = None, item.error or failure
                item.done = True


def _run_in_savepoint(cur: RawCursor, item: _Work[Any]) -> None:
    cur.execute("SAVEPOINT group_item")
    deferred = commit_hooks.mark()
    try:
        item.result = item.work(cur)
    except Exception as exc:
        item.error = exc
        commit_hooks.discard_since(deferred)  # its counts were rolled back with it
        cur.execute("ROLLBACK TO SAVEPOINT group_item")  # a failure here fails the batch
    cur.execute("RELEASE SAVEPOINT group_item")


def _outcome(item: _Work[T]) -> T:
    if item.error is not None:
        raise item.error
    return item.result
