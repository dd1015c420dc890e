"""Actions that run only once the current write transaction has committed.

Metric counters use it (``core.metrics``): the code that changes a state
(``core.holds``, ``core.topup_ledger``) says what to count at the moment it
changes it, and the count happens after the commit, or never if the
transaction rolls back. So every path through that code is counted, and no
rolled-back attempt is.

``Database.write`` and ``Database.raw_write`` open a scope per transaction
(``transaction``); ``after_commit`` adds to the innermost scope of the calling
thread. Group commit (``core.group_commit``) runs other threads' work inside
its leader's transaction, each piece in a savepoint: a piece rolled back to
its savepoint drops what it deferred (``mark`` / ``discard_since``). With no
scope open (a caller that runs its own transaction), the action runs at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_local = threading.local()


def _scopes() -> list[list[Callable[[], None]]]:
    scopes = getattr(_local, "scopes", None)
    if scopes is None:
        scopes = _local.scopes = []
    return scopes


@contextmanager
def transaction() -> Iterator[None]:
    """A scope around one write transaction: its actions run if it ends without error."""
    scopes = _scopes()
    pending: list[Callable[[], None]] = []
    scopes.append(pending)
    try:
        yield
    finally:
        # The one this call pushed, by identity (scopes nest, so it is the last).
        for index in range(len(scopes) - 1, -1, -1):
            if scopes[index] is pending:
                del scopes[index]
                break
    for action in pending:
        action()


def after_commit(action: Callable[[], None]) -> None:
    """Run ``action`` once the calling thread's current transaction has committed."""
    scopes = _scopes()
    if scopes:
        scopes[-1].append(action)
    else:
        action()


def mark() -> int:
    """Where the current scope stands (before a savepoint)."""
    scopes = _scopes()
    return len(scopes[-1]) if scopes else 0


def discard_since(position: int) -> None:
    """Drop what was deferred after ``mark()`` returned ``position`` (a rolled-back savepoint)."""
    scopes = _scopes()
    if scopes:
        del scopes[-1][position:]
