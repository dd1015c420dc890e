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
from tests.conftest import USING_PG
from tests.group_commit_helpers import (
    insert,
    probe_database,
    queue_behind_a_blocked_writer,
    rows,
)


@pytest.fixture
def db(db_config: dict[str, Any]) -> Iterator[Database]:
    yield from probe_database(db_config)


@pytest.mark.skipif(USING_PG, reason="PostgreSQL commits each caller on its own")
def test_callers_queued_behind_a_writer_share_one_transaction(db: Database) -> None:
    group = GroupCommit(db)
    outcomes, _ = queue_behind_a_blocked_writer(group, [insert(i) for i in range(1, 11)])
    assert outcomes == {-1: "first", **{i: (i + 1) * 10 for i in range(10)}}
    assert group.transactions == 2  # the blocker's, then one for all ten
    assert [r[0] for r in rows(db)] == list(range(11))


@pytest.mark.skipif(USING_PG, reason="PostgreSQL commits each caller on its own")
def test_a_failing_caller_is_rolled_back_alone(db: Database) -> None:
    def half_then_fail(cur: RawCursor) -> None:
        cur.execute("INSERT INTO probe (id, note) VALUES (99, 'half')")
        raise ValueError("refused")

    group = GroupCommit(db)
    works = [insert(1), half_then_fail, insert(2)]
    outcomes, _ = queue_behind_a_blocked_writer(group, works)
    assert outcomes[0] == 10 and outcomes[2] == 20
    assert isinstance(outcomes[1], ValueError) and str(outcomes[1]) == "refused"
    assert group.transactions == 2
    assert rows(db) == [(0, "first"), (1, "ok"), (2, "ok")]  # no row 99


@pytest.mark.skipif(USING_PG, reason="PostgreSQL commits each caller on its own")
def test_a_batch_whose_transaction_fails_fails_every_caller(db: Database) -> None:
    def break_the_transaction(cur: RawCursor) -> None:
        # Ends the caller's savepoint itself, so it cannot be rolled back to:
        # the batch's transaction fails and nothing of it may be committed.
        cur.execute("RELEASE SAVEPOINT group_item")
        raise ValueError("broken")

    group = GroupCommit(db)
    outcomes, _ = queue_behind_a_blocked_writer(
        group, [insert(1), break_the_transaction, insert(2)]
    )
    assert outcomes[-1] == "first"
    assert isinstance(outcomes[0], Exception) and isinstance(outcomes[2], Exception)
    assert isinstance(outcomes[1], ValueError)
    assert rows(db) == [(0, "first")]
    assert group.run(insert(3)) == 30  # the next batch is unaffected
    assert rows(db) == [(0, "first"), (3, "ok")]


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
    outcomes, _ = queue_behind_a_blocked_writer(group, works)
    assert outcomes[0] == "a" and outcomes[2] == "b" and isinstance(outcomes[1], ValueError)
    assert group.transactions == 2
    assert sorted(ran) == ["a", "b"]  # run once each, after the commit; none for the refused


def test_a_lone_caller_writes_at_once_and_errors_reach_it(db: Database) -> None:
    group = GroupCommit(db)
    assert group.run(insert(1)) == 10
    with pytest.raises(db.dbapi_integrity_error):
        group.run(insert(1))  # the primary key is taken
    assert rows(db) == [(1, "ok")]
    assert group.transactions == 2


def test_every_caller_hears_of_its_commit_and_all_rows_land(db: Database) -> None:
    heard: list[int] = []
    db.on_write_committed(lambda: heard.append(threading.get_ident()))
    group = GroupCommit(db)
    idents: list[int] = []

    def call(i: int) -> None:
        idents.append(threading.get_ident())
        group.run(insert(i))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(1, 41)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert [r[0] for r in rows(db)] == list(range(1, 41))
    assert set(idents) <= set(heard)  # followers too, not only the thread that committed
    if USING_PG:
        assert group.transactions == 40
    else:
        assert group.transactions <= 40
