"""Group commit (core/group_commit.py): many callers, one transaction, each
caller seeing exactly what its own transaction would have given it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from core import commit_hooks
from core.db import Database
from core.group_commit import GroupCommit
from core.rawdb import RawCursor
from tests.conftest import USING_PG, make_test_app


@pytest.fixture
def db(db_config: dict[str, Any]) -> Iterator[Database]:
    app = make_test_app(db_config)
    database = app.extensions["creditline.db"]
    with database.raw_write() as cur:
        cur.execute("CREATE TABLE probe (id INTEGER PRIMARY KEY, note TEXT NOT NULL)")
    yield database
    database.dispose()


def _rows(db: Database) -> list[tuple[int, str]]:
    with db.raw_read() as cur:
        return [tuple(r) for r in cur.execute("SELECT id, note FROM probe ORDER BY id").fetchall()]


def _insert(row_id: int, note: str = "ok") -> Any:
    def work(cur: RawCursor) -> int:
        cur.execute(
            "INSERT INTO probe (id, note) VALUES (:id, :note)", {"id": row_id, "note": note}
        )
        return row_id * 10

    return work


def _queue_behind_a_blocked_writer(
    group: GroupCommit, works: list[Any]
) -> tuple[dict[int, Any], threading.Event]:
    """Start a writer that blocks inside its transaction, then queue ``works``
    behind it; the writer is released by setting the returned event. Results
    (or exceptions) land in the returned dict by index (-1: the blocker)."""
    outcomes: dict[int, Any] = {}
    entered, release = threading.Event(), threading.Event()

    def blocker(cur: RawCursor) -> str:
        entered.set()
        release.wait(10)
        cur.execute("INSERT INTO probe (id, note) VALUES (0, 'first')")
        return "first"

    def call(index: int, work: Any) -> None:
        try:
            outcomes[index] = group.run(work)
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


@pytest.mark.skipif(USING_PG, reason="PostgreSQL commits each caller on its own")
def test_callers_queued_behind_a_writer_share_one_transaction(db: Database) -> None:
    group = GroupCommit(db)
    outcomes, _ = _queue_behind_a_blocked_writer(group, [_insert(i) for i in range(1, 11)])
    assert outcomes == {-1: "first", **{i: (i + 1) * 10 for i in range(10)}}
    assert group.transactions == 2  # the blocker's, then one for all ten
    assert [r[0] for r in _rows(db)] == list(range(11))


@pytest.mark.skipif(USING_PG, reason="PostgreSQL commits each caller on its own")
def test_a_failing_caller_is_rolled_back_alone(db: Database) -> None:
    def half_then_fail(cur: RawCursor) -> None:
        cur.execute("INSERT INTO probe (id, note) VALUES (99, 'half')")
        raise ValueError("refused")

    group = GroupCommit(db)
    works = [_insert(1), half_then_fail, _insert(2)]
    outcomes, _ = _queue_behind_a_blocked_writer(group, works)
    assert outcomes[0] == 10 and outcomes[2] == 20
    assert isinstance(outcomes[1], ValueError) and str(outcomes[1]) == "refused"
    assert group.transactions == 2
    assert _rows(db) == [(0, "first"), (1, "ok"), (2, "ok")]  # no row 99


@pytest.mark.skipif(USING_PG, reason="PostgreSQL commits each caller on its own")
def test_a_batch_whose_transaction_fails_fails_every_caller(db: Database) -> None:
    def break_the_transaction(cur: RawCursor) -> None:
        # Ends the caller's savepoint itself, so it cannot be rolled back to:
        # the batch's transaction fails and nothing of it may be committed.
        cur.execute("RELEASE SAVEPOINT group_item")
        raise ValueError("broken")

    group = GroupCommit(db)
    outcomes, _ = _queue_behind_a_blocked_writer(
        group, [_insert(1), break_the_transaction, _insert(2)]
    )
    assert outcomes[-1] == "first"
    assert isinstance(outcomes[0], Exception) and isinstance(outcomes[2], Exception)
    assert isinstance(outcomes[1], ValueError)
    assert _rows(db) == [(0, "first")]
    assert group.run(_insert(3)) == 30  # the next batch is unaffected
    assert _rows(db) == [(0, "first"), (3, "ok")]


@pytest.mark.skipif(USING_PG, reason="PostgreSQL commits each caller on its own")
def test_after_commit_actions_of_a_caller_rolled_back_alone_are_dropped(db: Database) -> None:
    ran: list[str] = []

    def deferring(name: str, fail: bool = False) -> Any:
        def work(cur: RawCursor) -> str:
            commit_hooks.after_commit(lambda: ran.append(name))
            if fail:
                raise ValueError("refused")
            return name

        return work

    group = GroupCommit(db)
    works = [deferring("a"), deferring("refused", fail=True), deferring("b")]
    outcomes, _ = _queue_behind_a_blocked_writer(group, works)
    assert outcomes[0] == "a" and outcomes[2] == "b" and isinstance(outcomes[1], ValueError)
    assert group.transactions == 2
    assert sorted(ran) == ["a", "b"]  # run once each, after the commit; none for the refused


def test_a_lone_caller_writes_at_once_and_errors_reach_it(db: Database) -> None:
    group = GroupCommit(db)
    assert group.run(_insert(1)) == 10
    with pytest.raises(db.dbapi_integrity_error):
        group.run(_insert(1))  # the primary key is taken
    assert _rows(db) == [(1, "ok")]
    assert group.transactions == 2


def test_every_caller_hears_of_its_commit_and_all_rows_land(db: Database) -> None:
    heard: list[int] = []
    db.on_write_committed(lambda: heard.append(threading.get_ident()))
    group = GroupCommit(db)
    idents: list[int] = []

    def call(i: int) -> None:
        idents.append(threading.get_ident())
        group.run(_insert(i))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(1, 41)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert [r[0] for r in _rows(db)] == list(range(1, 41))
    assert set(idents) <= set(heard)  # followers too, not only the thread that committed
    if USING_PG:
        assert group.transactions == 40
    else:
        assert group.transactions <= 40
