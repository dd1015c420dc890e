"""Group commit tests' shared pieces: a database with a probe table, its rows,
an insert into it, and callers queued behind a writer that blocks inside its
transaction."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from core.db import Database
from core.group_commit import GroupCommit
from core.rawdb import RawCursor
from tests.conftest import make_test_app


def rows(db: Database) -> list[tuple[int, str]]:
    with db.raw_read() as cur:
        return [tuple(r) for r in cur.execute("SELECT id, note FROM probe ORDER BY id").fetchall()]


def insert(row_id: int, note: str = "ok") -> Any:
    def work(cur: RawCursor) -> int:
        cur.execute(
            "INSERT INTO probe (id, note) VALUES (:id, :note)", {"id": row_id, "note": note}
        )
        return row_id * 10

    return work


def queue_behind_a_blocked_writer(
    group: GroupCommit, works: list[Any], durable: list[bool] | None = None
) -> tuple[dict[int, Any], threading.Event]:
    """Start a writer that blocks inside its transaction, then queue ``works``
    behind it (``durable``: each one's, default all); the writer is released
    by setting the returned event. Results (or exceptions) land in the
    returned dict by index (-1: the blocker)."""
    durable = durable or [True] * len(works)
    outcomes: dict[int, Any] = {}
    entered, release = threading.Event(), threading.Event()

    def blocker(cur: RawCursor) -> str:
        entered.set()
        release.wait(10)
        cur.execute("INSERT INTO probe (id, note) VALUES (0, 'first')")
        return "first"

    def call(index: int, work: Any) -> None:
        try:
            outcomes[index] = group.run(work, durable=index < 0 or durable[index])
        except Exception as exc:  # the caller's own outcome, kept for the assertions
            outcomes[index] = exc

    threads = [threading.Thread(target=call, args=(-1, blocker))]
    threads[0].start()
    assert entered.wait(10)
    for index, work in enumerate(works):
        threads.append(threading.Thread(target=call, args=(index, work)))
        threads[-1].start()
    # Every queued caller is waiting (they cannot finish while the blocker writes).
    for _ in range(200):
        if group.queued == len(works):
            break
        threading.Event().wait(0.01)
    release.set()
    for t in threads:
        t.join(20)
    return outcomes, release


def probe_database(db_config: dict[str, Any]) -> Iterator[Database]:
    """A migrated test database with a ``probe`` table (a fixture's body)."""
    database = make_test_app(db_config).extensions["creditline.db"]
    with database.raw_write() as cur:
        cur.execute("CREATE TABLE probe (id INTEGER PRIMARY KEY, note TEXT NOT NULL)")
    yield database
    database.dispose()
