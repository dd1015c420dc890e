"""Plain DBAPI access for the hot path (usage ingest, key checks, the price book).

Why not the ORM here: an ingested event is a handful of tiny statements, and
SQLAlchemy's per-statement work (cache keys, compilation lookup, result
objects) costs more than SQLite itself. The hot path writes SQL once, with
``:name`` parameters, and runs it on the pooled DBAPI connection of the same
engine, so the engine's PRAGMAs and ``BEGIN IMMEDIATE`` discipline still apply
and ORM code elsewhere sees the same data.

Two drivers are supported: sqlite3 (``:name`` is native) and psycopg
(translated once per statement text to ``%(name)s``). Values cross the
boundary through ``db_value`` so a datetime is stored exactly as SQLAlchemy
would store it (SQLite keeps timestamps as text).

A cursor lent on a connection that sat idle may find that connection dead
(the server restarted, the backend was terminated). Its owner can set
``first_failed``: when the transaction's first statement fails, that hook
decides whether the connection is gone and, if so, puts the cursor on a fresh
connection, and the statement runs once more. Nothing ran before it in the
transaction, so nothing is lost or done twice; unless the statement went out
with its COMMIT (below), when the server may have committed it before the
connection died: that is sent again only if a second run writes nothing.

On PostgreSQL the connections are in autocommit, and a write transaction's
``BEGIN`` is sent together with its first statement, in one round trip
(``begin_pending``, set by ``Database.raw_write``); ``execute_all`` sends
several queries in one round trip the same way. psycopg's own transaction
start would cost a round trip of its own. A caller whose statements end the
transaction may send its ``COMMIT`` with them too (``execute_all(commit=True)``):
a write then costs one round trip fewer, and its row locks are held for one
round trip fewer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from psycopg.pq import ExecStatus
from sqlalchemy.orm import Session

_PLAIN_BEGIN = ("BEGIN",)
_NAMED = re.compile(r"(?<![:\w]):(\w+)")
# SQLAlchemy's SQLite DATETIME text format (always with microseconds).
_SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"

Params = Mapping[str, Any]
Statement = tuple[str, Params | None]  # SQL with ``:name`` parameters, and their values


class RawCursor:
    """A DBAPI cursor that takes ``:name`` SQL on both databases.

    Not a general abstraction: just enough for a few hand-written statements
    whose text is constant (so the translation cache stays small).
    """

    def __init__(self, cursor: Any, is_sqlite: bool, connection: Any = None) -> None:
        self._cursor = cursor
        self.connection = connection  # the DBAPI connection (pool wrapper), if known
        self.is_sqlite = is_sqlite
        self._translated: dict[str, str] = _SQL_CACHE[is_sqlite]
        # Set until the first statement has run; see the module docstring.
        self.first_failed: Callable[[RawCursor, Exception], bool] | None = None
        # PostgreSQL: the transaction's BEGIN (and any SET LOCAL after it)
        # goes out with its first statement.
        self.begin_pending: tuple[str, ...] = ()
        self._began: tuple[str, ...] = ()  # the BEGIN the transaction went out with

    def rebind(self, connection: Any) -> None:
        """Carry on on ``connection`` (a fresh one replacing a dead one)."""
        self.connection = connection
        self._cursor = connection.cursor()

    def _first(self, statements: Sequence[Statement], *, resend: bool = True) -> list[Any]:
        """The transaction's first statements (see ``execute_all``), with its
        pending BEGIN, and once more on a fresh connection if the hook says
        the lent one was dead (unless ``resend`` is False)."""
        hook, self.first_failed = self.first_failed, None
        begin, self.begin_pending = self.begin_pending, ()
        self._began = begin
        try:
            return self._send(statements, begin)
        except Exception as exc:
            if not resend or hook is None or not hook(self, exc):
                raise
            return self._send(statements, begin)

    def _send(self, statements: Sequence[Statement], begin: Sequence[str]) -> list[Any]:
        """Run ``statements``; the DBAPI cursor holding each one's result. On
        PostgreSQL several, or one after a pending BEGIN, go out together in
        one round trip (a psycopg pipeline; each statement still sees what the
        ones before it did)."""
        if self.is_sqlite or (len(statements) == 1 and not begin):
            cursors = []
            for sql, params in statements:
                cursor = self._cursor if not cursors else self.connection.cursor()
                cursor.execute(self._sql(sql), params or {})
                cursors.append(cursor)
            return cursors
        connection = self.connection.dbapi_connection
        cursors = [self._cursor, *(connection.cursor() for _ in statements[1:])]
        with connection.pipeline():
            for command in begin:
                connection.execute(command)
            for cursor, (sql, params) in zip(cursors, statements, strict=True):
                cursor.execute(self._sql(sql), params or {})
        return cursors

    @classmethod
    def of_session(cls, session: Session) -> RawCursor:
        """The cursor of ``session``'s own transaction (same snapshot, same locks)."""
        connection = session.connection()
        dbapi = connection.connection
        return cls(dbapi.cursor(), connection.dialect.name == "sqlite", dbapi)

    def _sql(self, sql: str) -> str:
        text = self._translated.get(sql)
        if text is None:
            text = sql if self.is_sqlite else _NAMED.sub(r"%(\1)s", sql)
            self._translated[sql] = text
        return text

    def execute(self, sql: str, params: Params | None = None) -> RawCursor:
        if self.first_failed is not None or self.begin_pending:
            self._first([(sql, params)])
            return self
        self._cursor.execute(self._sql(sql), params or {})
        return self

    def execute_all(
        self, statements: Sequence[Statement], *, commit: bool = False, idempotent: bool = False
    ) -> list[list[Any]]:
        """Several statements, in order; each one's rows (none for a statement
        that returns none). On PostgreSQL they take one round trip together
        (with the transaction's BEGIN, if pending); an error in one raises
        after the round trip and the statements after it did not run.

        ``commit``: they are the last of the transaction, whose owner asked
        for this. On PostgreSQL its ``COMMIT`` goes out with them, in the same
        round trip (after an error it does not run, and the owner rolls back
        as usual); a statement run on this cursor afterwards starts a new
        transaction, with the same BEGIN, which the owner commits
        (``Database.raw_write``). On SQLite the owner commits, as always.

        A first round trip that carries the COMMIT is not sent again on a
        fresh connection (see the module docstring): the lent one may have
        died after committing. Unless ``idempotent``: the statements write
        nothing when run a second time (each write depends on a state change
        the first run made, like a hold's close).
        """
        early = commit and not self.is_sqlite
        count, began = len(statements), self.begin_pending or self._began
        if early and len(statements) == 1 and self.begin_pending == _PLAIN_BEGIN:
            # The whole transaction is one statement: in autocommit PostgreSQL
            # runs it as a transaction of its own, with no BEGIN or COMMIT.
            self.begin_pending = ()
        elif early:
            statements = [*statements, ("COMMIT", None)]
        if self.first_failed is not None or self.begin_pending:
            cursors = self._first(statements, resend=not early or idempotent)
        else:
            cursors = self._send(statements, begin=())
        rows = [cursor.fetchall() if self._has_rows(cursor) else [] for cursor in cursors]
        if early:
            del rows[count:]  # the COMMIT's
            self.begin_pending = self._began = began
        return rows

    def _has_rows(self, cursor: Any) -> bool:
        """Whether ``cursor``'s statement returned rows (a SELECT, a RETURNING).
        On psycopg, ``description`` would build a Column object per column on
        every call, a measurable part of the ingest's CPU; the result's status
        says the same."""
        if self.is_sqlite:
            return cursor.description is not None
        result = cursor.pgresult
        return result is not None and result.status == ExecStatus.TUPLES_OK

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        if (self.first_failed is not None or self.begin_pending) and rows:
            self._first([(sql, rows[0])])
            self.executemany(sql, rows[1:])
        elif len(rows) == 1:  # psycopg pipelines executemany: worth it for many rows only
            self._cursor.execute(self._sql(sql), rows[0])
        elif rows:
            self._cursor.executemany(self._sql(sql), rows)

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._cursor.fetchone()

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._cursor.fetchall()

    def scalar(self, sql: str, params: Params | None = None) -> Any:
        row = self.execute(sql, params).fetchone()
        return None if row is None else row[0]

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    def insert_with_ids(self, table: str, rows: Sequence[Params]) -> list[int]:
        """Insert ``rows`` (dicts keyed by column name); the new ids, in order.

        PostgreSQL pipelines the batch with ``RETURNING id``. sqlite3 cannot
        return rows from executemany, so on SQLite the ids are assigned here:
        the caller holds the write lock (``BEGIN IMMEDIATE``) and the table's
        ``INTEGER PRIMARY KEY`` has no AUTOINCREMENT, so ``max(id) + 1 …`` are
        exactly the ids SQLite would pick, and the inserts run as one
        executemany.
        """
        if not rows:
            return []
        columns = list(rows[0])
        if len(rows) == 1:  # one statement, both databases
            return [self.scalar(insert_sql(table, columns) + " RETURNING id", rows[0])]
        if not self.is_sqlite:
            if self.first_failed is not None or self.begin_pending:
                self._first([("SELECT 1", None)])  # a transaction never starts here in practice
            sql = insert_sql(table, columns) + " RETURNING id"
            self._cursor.executemany(self._sql(sql), rows, returning=True)
            ids = []
            while True:
                ids.append(self._cursor.fetchone()[0])
                if not self._cursor.nextset():
                    return ids
        start = self.scalar(f"SELECT coalesce(max(id), 0) + 1 FROM {table}")
        ids = list(range(start, start + len(rows)))
        self.executemany(
            insert_sql(table, ["id", *columns]),
            [{**row, "id": new_id} for row, new_id in zip(rows, ids, strict=True)],
        )
        return ids

    def db_value(self, value: Any) -> Any:
        """A Python value as this driver should receive it for our column types."""
        if self.is_sqlite:
            if isinstance(value, datetime):
                return value.strftime(_SQLITE_DATETIME)
            if isinstance(value, date):
                return value.isoformat()
        return value

    def to_datetime(self, value: Any) -> datetime | None:
        """A timestamp column as read back (text on SQLite, datetime on PostgreSQL)."""
        if value is None or isinstance(value, datetime):
            return value
        return datetime.fromisoformat(value)

    def is_one_of(self, column: str, name: str, values: Iterable[Any]) -> tuple[str, Params]:
        """SQL for "``column`` is one of ``values``", and its parameters.

        One value is a plain ``=`` (an index lookup). Several take one
        constant statement text for any count (a list of N placeholders
        would be a new statement per N): SQLite reads them from a JSON
        array, PostgreSQL takes an array.
        """
        distinct = list(dict.fromkeys(values))
        if len(distinct) == 1:
            return f"{column} = :{name}", {name: distinct[0]}
        if self.is_sqlite:
            return f"{column} IN (SELECT value FROM json_each(:{name}))", {
                name: json.dumps(distinct)
            }
        return f"{column} = ANY(:{name})", {name: distinct}

    def close(self) -> None:
        self._cursor.close()


def insert_sql(table: str, columns: Sequence[str]) -> str:
    """``INSERT INTO table (columns) VALUES (:column, …)``."""
    names = ", ".join(columns)
    return f"INSERT INTO {table} ({names}) VALUES ({', '.join(':' + c for c in columns)})"


_SQL_CACHE: dict[bool, dict[str, str]] = {True: {}, False: {}}
