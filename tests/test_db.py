"""The database layer: SQLite PRAGMAs, BEGIN IMMEDIATE for writes, migrations."""

from __future__ import annotations

import sqlite3

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from flask import Flask
from sqlalchemy import text

from core import migrate
from core.db import Database
from core.models import Base
from tests.conftest import USING_PG

sqlite_only = pytest.mark.skipif(USING_PG, reason="SQLite-specific behaviour")


def _db(app: Flask) -> Database:
    return app.extensions["creditline.db"]


@sqlite_only
def test_pragmas_in_force_on_every_connection(app: Flask) -> None:
    db = _db(app)
    for opened in (db.read_session(), db.write()):
        with opened as s:
            assert s.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert s.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert s.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
            assert s.execute(text("PRAGMA busy_timeout")).scalar() == 5000


@sqlite_only
def test_synchronous_is_configurable(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}", sqlite_synchronous="NORMAL")
    with db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 1
    db.dispose()
    with pytest.raises(ValueError, match="SQLITE_SYNCHRONOUS"):
        Database(f"sqlite:///{tmp_path / 'y.db'}", sqlite_synchronous="SOMETIMES")


@sqlite_only
def test_pragmas_are_per_engine_not_global(app: Flask, tmp_path) -> None:
    """Another engine in the same process keeps SQLite's defaults."""
    from sqlalchemy import create_engine

    other = create_engine(f"sqlite:///{tmp_path / 'other.db'}")
    with other.connect() as conn:
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 0
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "delete"
    other.dispose()


def _database_file(app: Flask) -> str:
    return _db(app).engine.url.database  # type: ignore[return-value]


def _try_write_lock(path: str) -> bool:
    """Can another connection take the write lock right now (no waiting)?"""
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    except sqlite3.OperationalError as exc:
        if "locked" not in str(exc):
            raise
        return False
    finally:
        other.close()
    return True


@sqlite_only
def test_write_transactions_begin_immediate(app: Flask) -> None:
    """A write session holds the write lock from its first statement, even a read."""
    path = _database_file(app)
    with _db(app).write() as s:
        s.execute(text("SELECT count(*) FROM users")).scalar()
        assert not _try_write_lock(path)
    assert _try_write_lock(path)


@sqlite_only
def test_read_sessions_do_not_take_the_write_lock(app: Flask) -> None:
    path = _database_file(app)
    session = _db(app).read_session()
    try:
        session.execute(text("SELECT count(*) FROM users")).scalar()
        assert session.in_transaction()
        assert _try_write_lock(path)
    finally:
        session.close()


def test_write_rolls_back_on_error(app: Flask) -> None:
    insert = text("INSERT INTO settings (key, value, updated_at) VALUES ('k', '1', '2026-01-01')")

    def write_then_fail() -> None:
        with _db(app).write() as s:
            s.execute(insert)
            raise RuntimeError("abort")

    with pytest.raises(RuntimeError, match="abort"):
        write_then_fail()
    with _db(app).read_session() as s:
        assert s.execute(text("SELECT count(*) FROM settings")).scalar() == 0


def test_migrations_reach_head_and_go_down_and_up(app: Flask) -> None:
    db = _db(app)
    assert migrate.current_revision(db) == migrate.head_revision()
    migrate.downgrade(db, "base")
    assert migrate.current_revision(db) is None
    migrate.upgrade(db)
    assert migrate.current_revision(db) == migrate.head_revision()


@pytest.mark.skipif(not USING_PG, reason="PostgreSQL only")
def test_postgres_uses_this_tests_schema(app: Flask) -> None:
    with _db(app).read_session() as s:
        schema = s.execute(text("SELECT current_schema()")).scalar()
    assert schema == app.config["DATABASE_SCHEMA"]


def test_reads_after_a_write_in_one_request_see_the_write(app: Flask) -> None:
    """A read snapshot taken before a write (e.g. by the user loader) is ended
    when the write commits, so the rest of the request reads fresh data."""
    from blueprints.db_session import read_session

    with app.test_request_context():
        before = read_session().execute(text("SELECT count(*) FROM settings")).scalar()
        with _db(app).write() as s:
            s.execute(
                text(
                    "INSERT INTO settings (key, value, updated_at) VALUES ('k', '1', '2026-01-01')"
                )
            )
        after = read_session().execute(text("SELECT count(*) FROM settings")).scalar()
    assert (before, after) == (0, 1)


def test_raw_connections_are_reused_across_threads(app: Flask) -> None:
    """Threaded servers start a thread per request: the hot path's connections
    must be shared out and returned, not kept per thread (PostgreSQL would run
    out of connections)."""
    import threading

    db = app.extensions["creditline.db"]
    seen: list[int] = []

    def request() -> None:
        with db.raw_read() as cursor:
            seen.append(id(cursor))
            assert cursor.scalar("SELECT 1") == 1
        with db.raw_write() as cursor:
            assert cursor.scalar("SELECT version FROM config_version") >= 1

    for _ in range(30):
        thread = threading.Thread(target=request)
        thread.start()
        thread.join()
    assert len(set(seen)) == 1  # one connection served all thirty threads


def test_raw_write_rolls_back_on_error_and_the_connection_stays_usable(app: Flask) -> None:
    db = app.extensions["creditline.db"]

    def fail() -> None:
        with db.raw_write() as cursor:
            cursor.execute("UPDATE config_version SET version = version + 100")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail()
    with db.raw_write() as cursor:
        assert cursor.scalar("SELECT version FROM config_version") < 100


def test_the_migrations_build_exactly_the_schema_the_models_describe(app: Flask) -> None:
    """Autogenerate finds nothing to add: a model change without its migration fails here."""
    db = app.extensions["creditline.db"]
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


@pytest.mark.skipif(not USING_PG, reason="PostgreSQL only: SQLite has no server to exhaust")
def test_raw_cursors_open_a_bounded_number_of_connections(app: Flask) -> None:
    """A burst of threads on the raw paths waits for a connection instead of
    opening one each (past the server's max_connections, a burst failed)."""
    import threading
    import time

    from core.db import RAW_OVERFLOW

    db = Database(app.config["DATABASE_URL"], schema=app.config["DATABASE_SCHEMA"], pool_size=2)
    cap = 2 + RAW_OVERFLOW
    lock = threading.Lock()
    now, peak, done = [0], [0], []

    def hold_one() -> None:
        with db.raw_read() as cur:
            cur.execute("SELECT 1")
            with lock:
                now[0] += 1
                peak[0] = max(peak[0], now[0])
            time.sleep(0.1)
            with lock:
                now[0] -= 1
        done.append(1)

    threads = [threading.Thread(target=hold_one) for _ in range(3 * cap)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    db.dispose()
    assert len(done) == 3 * cap  # every thread got its turn, none failed
    assert peak[0] == cap


def test_a_write_after_a_read_on_the_same_connection_is_one_transaction(app: Flask) -> None:
    """Raw reads run in autocommit on PostgreSQL (one round trip each); the
    connection they give back must be transactional again, or a write that
    fails halfway would keep its first statements."""
    db = _db(app)
    for _ in range(3):  # the stack hands back the connection the read used
        with db.raw_read() as cur:
            assert cur.scalar("SELECT COUNT(*) FROM settings") is not None
        with pytest.raises(RuntimeError):
            _insert_then_fail(db)
        with db.raw_read() as cur:
            assert cur.scalar("SELECT COUNT(*) FROM settings WHERE key = 'half_done'") == 0


def _insert_then_fail(db: Database) -> None:
    with db.raw_write() as cur:
        cur.execute(
            "INSERT INTO settings (key, value, updated_at) VALUES ('half_done', '1', '2026-01-01')"
        )
        raise RuntimeError("the write fails after its first statement")
