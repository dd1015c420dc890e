"""Engine and session handling for one app instance.

SQLite is the default store and is run the way a money ledger needs:

* ``journal_mode=WAL`` so readers never block the single writer;
* ``synchronous=FULL`` (configurable) so a committed top-up survives power loss;
* ``foreign_keys=ON`` and ``busy_timeout`` so writers queue instead of failing;
* every write transaction starts with ``BEGIN IMMEDIATE``. A deferred BEGIN
  that reads a balance and then writes can fail with SQLITE_BUSY under
  concurrency (the read lock cannot be upgraded), so writers take the write
  lock up front and wait in line for it. Read-only sessions keep a deferred
  BEGIN so dashboards never queue behind the writer.

This follows SQLAlchemy's pysqlite recipe: pysqlite's own transaction handling
is switched off (``isolation_level = None``) and the ``begin`` event emits our
BEGIN. The listeners are attached to this app's engine only, never globally,
so two apps in one process (tests, benchmarks) do not affect each other.

PostgreSQL (``DATABASE_URL=postgresql+psycopg://…``) needs none of this and
runs READ COMMITTED: ``core.ledger.post_entry`` moves a balance with one
conditional ``UPDATE … SET balance = balance + amount WHERE <floor/ceiling>``,
which is atomic there, and the usage path locks its wallet rows
``SELECT … FOR UPDATE`` before deciding, then writes each balance as a
compare-and-set on the value it read (``core.ledger.set_balances``).

Who owns the transaction
------------------------
Core functions take a ``Session`` (or, on the ingest hot path, a
``RawCursor``) and work inside the caller's transaction: the caller (a view,
a CLI command, a test) opens it with ``Database.write()`` or
``read_session()``, and everything it does commits or rolls back as one.
Only a function that cannot live inside one transaction takes the
``Database`` and opens its own, and there are three reasons for that:

* it calls the network (Stripe), which never happens inside a write
  transaction: ``payments.begin_checkout``, ``payments.fulfil``,
  ``payments.from_stripe``, ``stripe_events.handle_event``;
* it must retry a lost UNIQUE race, which takes a fresh transaction per
  attempt (``retry_lost_races`` below): usage ingest
  (``usage_debits.debit_usage`` / ``debit_usage_batch``), Stripe events
  (``stripe_events.handle_event``) and Checkout reconciliation
  (``payments.fulfil``);
* it hashes a password, which is slow on purpose and must not hold the write
  lock: ``accounts.register``, ``accounts.authenticate`` and
  ``accounts.change_password`` read, hash outside any transaction, then write.

The owner of a raw write may let its last statements carry the COMMIT, on
PostgreSQL one round trip fewer (``RawCursor.execute_all(commit=True)``):
only a function that the owner tells so, because nothing follows it, does
(``usage_debits.charge`` and ``holds.settle`` with ``commit=True``).

``core.migrate`` hands the Database to Alembic, which runs its own
transactions.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, sessionmaker

from core import commit_hooks
from core.rawdb import RawCursor
from core.writer_lock import WriterLock, no_lock

S = TypeVar("S")
T = TypeVar("T")

# Execution option carried by connections of the write engine; the ``begin``
# listener reads it to choose IMMEDIATE over DEFERRED.
_WRITE_OPTION = "creditline_write"
_SYNCHRONOUS_MODES = {"OFF", "NORMAL", "FULL", "EXTRA"}
_SYNCING = {"FULL", "EXTRA"}  # the modes whose commits wait for the disk
_BEGIN = ("BEGIN",)
_BEGIN_NOT_DURABLE = ("BEGIN", "SET LOCAL synchronous_commit TO off")
# The raw cursors' connections on PostgreSQL (``Database._raw``): pool_size +
# this many per process at most, waited for up to RAW_WAIT_SECONDS.
RAW_OVERFLOW = 10
RAW_WAIT_SECONDS = 30.0


class Database:
    """An engine plus read and write session factories."""

    def __init__(
        self,
        url: str,
        *,
        sqlite_synchronous: str = "FULL",
        busy_timeout_ms: int = 5000,
        schema: str | None = None,
        pool_size: int = 10,
    ) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {}
        if not self.is_sqlite:
            # Named in pg_stat_activity: "creditline", plus the schema if any.
            connect_args = {"application_name": " ".join(filter(None, ["creditline", schema]))}
            if schema:
                # One schema per test run; the app sees it as its default schema.
                connect_args["options"] = f"-csearch_path={schema}"
            kwargs["connect_args"] = connect_args
            kwargs["pool_size"] = pool_size
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(url, **kwargs)
        self._writer_lock: WriterLock | None = None
        self._sqlite_synchronous = sqlite_synchronous.upper()
        # Whether a commit waits for the disk, so that raw_write(durable=False) saves it.
        self._sqlite_syncs_commits = self.is_sqlite and self._sqlite_synchronous in _SYNCING
        if self.is_sqlite:
            _configure_sqlite(self.engine, sqlite_synchronous, busy_timeout_ms)
            path = self.engine.url.database
            if path and path != ":memory:":
                self._writer_lock = _DatabaseWriterLock(
                    path + ".writelock", self.engine.dialect.loaded_dbapi.OperationalError
                )
        # The driver's own IntegrityError, for code that runs on raw cursors.
        self.dbapi_integrity_error: type[Exception] = (
            self.engine.dialect.loaded_dbapi.IntegrityError
        )
        self._write_engine = self.engine.execution_options(**{_WRITE_OPTION: True})
        self._read_sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(self._write_engine, expire_on_commit=False)
        self._after_write: list[Callable[[], None]] = []
        self._idle: list[RawCursor] = []  # see _raw()
        self._idle_lock = threading.Lock()
        self._max_idle = pool_size
        self._raw_slots = (
            None if self.is_sqlite else threading.BoundedSemaphore(pool_size + RAW_OVERFLOW)
        )

    def on_write_committed(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every committed write transaction.

        The web layer uses it to end a request's read snapshot: on SQLite a
        read transaction opened before a write keeps seeing the old data.
        """
        self._after_write.append(listener)

    def notify_committed(self) -> None:
        """Tell this thread's listeners that a write it made has committed
        (``core.group_commit`` calls it for writes another thread committed)."""
        for listener in self._after_write:
            listener()

    def read_session(self) -> Session:
        """A session for reads; the caller closes it."""
        return self._read_sessions()

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One write transaction: commit on success, roll back on any error.
        Actions deferred with ``core.commit_hooks.after_commit`` run after the commit."""
        with commit_hooks.transaction(), self._writers(), self._write_sessions.begin() as session:
            yield session
        self.notify_committed()

    def _writers(self) -> AbstractContextManager[None]:
        """Wait in line with this database's other writers (``core.writer_lock``)."""
        return self._writer_lock.hold() if self._writer_lock else no_lock()

    @contextmanager
    def raw_write(self, *, durable: bool = True) -> Iterator[RawCursor]:
        """One write transaction on a plain DBAPI cursor (the ingest hot path).

        Same rules as ``write()``: SQLite begins IMMEDIATE, everything commits
        together or rolls back on any error, listeners hear of the commit,
        deferred actions (``core.commit_hooks``) run after it.

        ``durable=False`` commits without waiting for the disk (SQLite:
        ``synchronous=NORMAL`` for this transaction; PostgreSQL: ``SET LOCAL
        synchronous_commit TO off``). Only for a transaction whose loss in a
        power cut or an operating-system crash costs nothing but itself: both
        databases recover a prefix of the commits in order, and the next
        durable commit makes every earlier one durable too. A crash of the
        process alone loses nothing either way. See ``core.holds``, "Durability".
        """
        with commit_hooks.transaction(), self._writers(), self._raw() as cursor:
            if self.is_sqlite:
                relaxed = not durable and self._sqlite_syncs_commits
                with self._synchronous_normal(cursor) if relaxed else contextlib.nullcontext():
                    cursor.execute("BEGIN IMMEDIATE")
                    yield cursor
                    cursor.connection.commit()
            else:  # BEGIN is sent with the first statement (core.rawdb)
                cursor.begin_pending = _BEGIN if durable else _BEGIN_NOT_DURABLE
                yield cursor
                cursor.connection.commit()  # nothing to do if no statement ran
        self.notify_committed()

    @contextmanager
    def _synchronous_normal(self, cursor: RawCursor) -> Iterator[None]:
        """SQLite: the transaction inside at ``synchronous=NORMAL`` (a mode SQLite
        changes only between transactions); the connection is back at the
        configured mode afterwards, or closed if it cannot be."""
        cursor.execute("PRAGMA synchronous=NORMAL")
        try:
            yield
        except BaseException:
            cursor.connection.rollback()  # ends the transaction, so the mode can change
            raise
        finally:
            try:
                cursor.execute(f"PRAGMA synchronous={self._sqlite_synchronous}")
            except Exception:
                cursor.connection.invalidate()  # never lent again at NORMAL
                raise

    @contextmanager
    def raw_read(self) -> Iterator[RawCursor]:
        """A plain DBAPI cursor for a read or two outside any session.

        On PostgreSQL the raw connections are in autocommit, so each
        statement is its own snapshot and costs one round trip (no BEGIN and
        ROLLBACK around it)."""
        with self._raw() as cursor:
            yield cursor

    @contextmanager
    def _raw(self) -> Iterator[RawCursor]:
        """A cursor on a DBAPI connection for the raw paths, from a small stack
        of our own rather than the pool: a pool checkout and check-in (with
        its reset rollback) cost as much as the hot path's statements. The
        connections come from the engine, so its ``connect`` listeners have
        configured them. On error the transaction is rolled back; a connection
        that cannot even roll back (the server went away) is closed.

        Unlike the pool (``pool_pre_ping``), the stack does not ping: a
        PostgreSQL connection taken from it is checked by its first statement
        instead, at no cost when it is alive (``_replace_dead``).

        On PostgreSQL, like the pool, it opens at most ``pool_size +
        RAW_OVERFLOW`` connections per process: a thread beyond that waits for
        one (``RAW_WAIT_SECONDS``, then the pool's own TimeoutError, a 503).
        Unbounded, a burst of calls (300 streams starting at once) opened a
        connection each and went past the server's ``max_connections``."""
        slots = self._raw_slots
        if slots is not None and not slots.acquire(timeout=RAW_WAIT_SECONDS):
            raise sa_exc.TimeoutError("no database connection free in time")
        try:
            with self._lent_cursor() as cursor:
                yield cursor
        finally:
            if slots is not None:
                slots.release()

    @contextmanager
    def _lent_cursor(self) -> Iterator[RawCursor]:
        with self._idle_lock:
            cursor = self._idle.pop() if self._idle else None
        if cursor is None:
            connection = self._connect()
            cursor = RawCursor(connection.cursor(), self.is_sqlite, connection)
        elif not self.is_sqlite:
            cursor.first_failed = self._replace_dead
        try:
            yield cursor
        except BaseException:
            # The caller's exception is the one raised (a lost connection's
            # OperationalError answers 503), never the failed rollback's.
            if self._rolled_back(cursor):
                self._give_back(cursor)
            raise
        self._give_back(cursor)

    @staticmethod
    def _rolled_back(cursor: RawCursor) -> bool:
        """Roll back; a connection that cannot (the server went away, or it
        was closed while being replaced) is closed and not reused."""
        try:
            cursor.connection.rollback()
        except Exception:
            with contextlib.suppress(Exception):  # it is already broken
                cursor.connection.close()
            return False
        return True

    def _connect(self) -> Any:
        """A DBAPI connection of our own; on PostgreSQL in autocommit (a write
        sends its own BEGIN: ``raw_write``)."""
        fairy = self.engine.raw_connection()
        fairy.detach()  # ours now; the pool no longer counts it
        if not self.is_sqlite:
            fairy.rollback()  # whatever the connect listeners began
            fairy.dbapi_connection.autocommit = True
        return fairy

    def _replace_dead(self, cursor: RawCursor, exc: Exception) -> bool:
        """After the first statement on a reused connection failed: was it
        because the connection is dead? Then move ``cursor`` to a fresh one
        (the statement is run again there) and say so."""
        connection = cursor.connection
        if not self.engine.dialect.is_disconnect(exc, connection.dbapi_connection, None):
            return False
        with contextlib.suppress(Exception):
            connection.close()
        cursor.rebind(self._connect())
        return True

    def _give_back(self, cursor: RawCursor) -> None:
        cursor.first_failed = None
        cursor.begin_pending = ()
        with self._idle_lock:
            if len(self._idle) < self._max_idle:
                self._idle.append(cursor)
                return
        cursor.connection.close()

    def write_engine_connect(self) -> Connection:
        """A raw connection whose transactions begin IMMEDIATE (migrations)."""
        return self._write_engine.connect()

    def dispose(self) -> None:
        with self._idle_lock:
            for cursor in self._idle:
                cursor.connection.close()
            self._idle.clear()
        if self._writer_lock:
            self._writer_lock.close()
        self.engine.dispose()


class _DatabaseWriterLock(WriterLock):
    """``core.writer_lock`` for one database file. A lock file that cannot be
    opened (its folder gone, a read-only disk) means the database cannot be
    written: reported as the driver's OperationalError, like SQLite's own
    "unable to open database file", so the web layer answers 503."""

    def __init__(self, path: str, error: type[Exception]) -> None:
        super().__init__(path)
        self._error = error

    def _file(self) -> int:
        try:
            return super()._file()
        except OSError as exc:
            raise self._error(f"unable to open the write lock {self.path}: {exc}") from exc


def _configure_sqlite(engine: Engine, synchronous: str, busy_timeout_ms: int) -> None:
    mode = synchronous.upper()
    if mode not in _SYNCHRONOUS_MODES:
        raise ValueError(f"SQLITE_SYNCHRONOUS must be one of {sorted(_SYNCHRONOUS_MODES)}")
    timeout = int(busy_timeout_ms)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Hand transaction control to the ``begin`` listener below.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={mode}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={timeout}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def retry_lost_races(
    transaction: Callable[[], AbstractContextManager[S]],
    work: Callable[[S], T],
    lost: type[Exception] | tuple[type[Exception], ...],
    attempts: int = 3,
) -> T:
    """Run ``work`` in a fresh ``transaction()``; when it loses a UNIQUE race
    (``lost`` is raised and the transaction rolled back), run it again: the
    retry finds the winner's row and answers from it."""
    for attempt in range(attempts):
        try:
            with transaction() as handle:
                return work(handle)
        except lost:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")
