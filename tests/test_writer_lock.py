"""The writers' queue in front of SQLite's write lock (core/writer_lock.py)."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import threading
from pathlib import Path

import pytest

from core.writer_lock import WriterLock
from tests.conftest import USING_PG


def _can_lock(path: str) -> bool:
    """From a fresh open file description: is the lock free right now?"""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def test_held_across_processes_and_released_after_the_outermost_hold(tmp_path: Path) -> None:
    lock = WriterLock(str(tmp_path / "db.writelock"))
    with lock.hold():
        assert not _can_lock(lock.path)
        with lock.hold():  # nested writes in one thread: no deadlock
            pass
        assert not _can_lock(lock.path)  # still held by the outer hold
    assert _can_lock(lock.path)
    lock.close()


def test_threads_of_one_process_wait_in_line(tmp_path: Path) -> None:
    lock = WriterLock(str(tmp_path / "db.writelock"))
    order: list[str] = []
    a_holds, b_tried = threading.Event(), threading.Event()

    def b() -> None:
        a_holds.wait()
        b_tried.set()
        with lock.hold():
            order.append("b")

    thread = threading.Thread(target=b)
    thread.start()
    with lock.hold():
        a_holds.set()
        b_tried.wait()
        thread.join(timeout=0.2)  # b cannot get in while a holds the lock
        assert thread.is_alive()
        order.append("a")
    thread.join(timeout=10)
    assert order == ["a", "b"]
    lock.close()


def _child_holds(lock: WriterLock, held: object, release: object) -> None:
    with lock.hold():
        held.set()  # type: ignore[attr-defined]
        release.wait(10)  # type: ignore[attr-defined]


def test_a_forked_child_gets_its_own_lock(tmp_path: Path) -> None:
    """flock belongs to the open file description: a child reusing its parent's
    descriptor would share the parent's lock instead of waiting for it."""
    lock = WriterLock(str(tmp_path / "db.writelock"))
    with lock.hold():
        pass  # the parent has opened its descriptor
    ctx = multiprocessing.get_context("fork")
    held, release = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_child_holds, args=(lock, held, release))
    child.start()
    assert held.wait(10)
    assert not _can_lock(lock.path)
    got_it = threading.Event()

    def parent_write() -> None:
        with lock.hold():
            got_it.set()

    waiter = threading.Thread(target=parent_write)
    waiter.start()
    assert not got_it.wait(0.2)  # the parent waits for its child
    release.set()
    child.join(10)
    waiter.join(10)
    assert got_it.is_set()
    lock.close()


@pytest.mark.skipif(USING_PG, reason="SQLite-specific behaviour")
def test_every_write_transaction_holds_the_writers_lock(app) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    db = app.extensions["creditline.db"]
    path = db.engine.url.database + ".writelock"
    with db.write() as session:
        session.execute(text("SELECT 1"))
        assert not _can_lock(path)
    with db.raw_write():
        assert not _can_lock(path)
    assert _can_lock(path)
