"""Commits that need not wait for the disk (``Database.raw_write(durable=False)``).

Only a gateway hold is committed that way (``core.holds``, "Durability"); its
settle, and every other write, still waits. On SQLite the statements SQLite
itself runs are recorded (``set_trace_callback`` on every new connection) to
see which commits ran at ``synchronous=NORMAL``; on PostgreSQL the server is
asked for ``synchronous_commit`` inside the transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from core.db import Database
from core.group_commit import GroupCommit
from core.rawdb import RawCursor
from tests.conftest import USING_PG, make_test_app
from tests.gateway_setup import World, make_world, post
from tests.group_commit_helpers import (
    insert,
    probe_database,
    queue_behind_a_blocked_writer,
    rows,
)

sqlite_only = pytest.mark.skipif(USING_PG, reason="SQLite's synchronous PRAGMA")
NORMAL = "PRAGMA synchronous=NORMAL"


@pytest.fixture
def db(db_config: dict[str, Any]) -> Iterator[Database]:
    yield from probe_database(db_config)


def _traced(db: Database) -> list[str]:
    """Every statement SQLite runs on this database's connections from now on."""
    statements: list[str] = []
    db.dispose()  # connections made from here on are traced

    @event.listens_for(db.engine, "connect")
    def _trace(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.set_trace_callback(statements.append)

    return statements


def _commits(statements: list[str]) -> list[bool]:
    """For each COMMIT, in order: whether it ran at synchronous=NORMAL."""
    mode, commits = "", []
    for sql in statements:
        if sql.startswith("PRAGMA synchronous="):
            mode = sql
        elif sql == "COMMIT":
            commits.append(mode == NORMAL)
    return commits


def _synchronous(db: Database) -> int:
    with db.raw_read() as cur:
        return int(cur.execute("PRAGMA synchronous").fetchone()[0])


@sqlite_only
def test_only_the_commit_asked_not_to_be_durable_skips_the_disk_wait(db: Database) -> None:
    statements = _traced(db)
    with db.raw_write(durable=False) as cur:
        insert(1)(cur)
    with db.raw_write() as cur:
        insert(2)(cur)
    assert _commits(statements) == [True, False]
    assert _synchronous(db) == 2  # the lent connection is back at FULL
    assert [r[0] for r in rows(db)] == [1, 2]


@sqlite_only
def test_a_failed_transaction_that_need_not_be_durable_rolls_back_and_resets_the_mode(
    db: Database,
) -> None:
    def insert_then_fail() -> None:
        with db.raw_write(durable=False) as cur:
            insert(1)(cur)
            raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        insert_then_fail()
    assert _synchronous(db) == 2
    with db.raw_write() as cur:
        insert(2)(cur)
    assert [r[0] for r in rows(db)] == [2]


@sqlite_only
def test_nothing_changes_when_commits_do_not_wait_anyway(db_config: dict[str, Any]) -> None:
    app = make_test_app(db_config, SQLITE_SYNCHRONOUS="NORMAL")
    db = app.extensions["creditline.db"]
    statements = _traced(db)
    with db.raw_write(durable=False) as cur:
        cur.execute("CREATE TABLE probe (id INTEGER PRIMARY KEY, note TEXT NOT NULL)")
    assert _commits(statements) == [False] and NORMAL not in statements
    assert _synchronous(db) == 1
    db.dispose()


@sqlite_only
@pytest.mark.parametrize(("durable", "waits"), [([False, True], True), ([False, False], False)])
def test_a_batch_waits_for_the_disk_if_any_of_its_work_must(
    db: Database, durable: list[bool], waits: bool
) -> None:
    group = GroupCommit(db)
    statements = _traced(db)
    outcomes, _ = queue_behind_a_blocked_writer(group, [insert(1), insert(2)], durable)
    assert outcomes == {-1: "first", 0: 10, 1: 20}
    assert group.transactions == 2  # the blocker's (durable), then the batch's
    assert _commits(statements) == [False, not waits]
    assert _synchronous(db) == 2


@pytest.mark.skipif(not USING_PG, reason="PostgreSQL's synchronous_commit")
def test_postgres_turns_synchronous_commit_off_for_that_transaction_only(db: Database) -> None:
    def setting(cur: RawCursor) -> str:
        return str(cur.execute("SHOW synchronous_commit").fetchone()[0])

    with db.raw_write(durable=False) as cur:
        assert setting(cur) == "off"
        insert(1)(cur)
    with db.raw_write() as cur:
        assert setting(cur) == "on"
        insert(2)(cur)
    with db.raw_read() as cur:
        assert setting(cur) == "on"
    assert [r[0] for r in rows(db)] == [1, 2]


@pytest.fixture
def world(db_config: dict[str, Any]) -> Iterator[World]:
    yield from make_world(db_config)


@sqlite_only
def test_a_gateway_call_takes_its_hold_without_the_disk_wait_and_settles_with_it(
    world: World,
) -> None:
    db = world.billing.db
    statements = _traced(db)
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    response = post(world, json.dumps(body).encode())
    assert response.status_code == 200
    assert [h.status for h in world.holds()] == ["settled"]
    # The hold's commit, then the settle's (the key check may add a durable
    # write before them: a key's first use is recorded).
    assert _commits(statements)[-2:] == [True, False]
