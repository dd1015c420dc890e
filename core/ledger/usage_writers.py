"""The ledger's raw-cursor writers: the usage hot path (see ``core.ledger``).

``set_balances`` + ``post_usage_entries`` for the usage API's requests,
``charge_one_event`` for its common one-event request on PostgreSQL,
``charge_one_event_if`` for the same request decided before its transaction
(``core.usage_one_statement``), and
``settle_charge`` for a hold's settlement. Like the rest of ``core.ledger``
they work in the caller's transaction and never commit; with it they are the
only writers of ``ledger_entries`` and ``wallets.balance_ucr``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple

from core import outbox
from core.enums import LedgerKind
from core.rawdb import RawCursor, Statement


class BalanceChange(NamedTuple):
    """A wallet's balance as read under the write lock, and what it becomes."""

    wallet_id: int
    old_ucr: int
    new_ucr: int


class UsageEntry(NamedTuple):
    """One ``usage`` ledger entry: a charge for the usage event ``reference`` names."""

    wallet_id: int
    amount_ucr: int  # negative: a debit
    balance_after_ucr: int
    reference: str  # "usage:<event pk>"
    credits_per_usd: int
    memo: str


class StaleBalance(RuntimeError):
    """Raised when a wallet's balance is no longer the one read under the write lock."""


def set_balances(cur: RawCursor, changes: Iterable[BalanceChange]) -> None:
    """Write new balances, each a compare-and-set on the balance read before.

    In the caller's transaction, which read ``old_ucr`` while holding the
    write lock (SQLite ``BEGIN IMMEDIATE``, PostgreSQL ``FOR UPDATE``), so the
    compare always holds; if it does not, the lock discipline is broken and
    ``StaleBalance`` is raised (the transaction then rolls back) instead of
    spending a balance twice. The caller posts the matching entries in the
    same transaction (``post_usage_entries``). One statement per wallet.
    """
    changed = []
    for change in changes:
        row = cur.execute(
            _SET_BALANCE,
            {"new": change.new_ucr, "id": change.wallet_id, "old": change.old_ucr},
        ).fetchone()
        if row is None:
            raise StaleBalance(f"wallet {change.wallet_id} changed under the write lock")
        changed.append(row)
    outbox.note_balances(cur, changed)


def charge_one_event(
    cur: RawCursor,
    change: BalanceChange,
    event: Mapping[str, Any],
    entry_memo: str,
    also: Statement,
    *,
    commit: bool = False,
) -> int:
    """PostgreSQL: write one charged usage event in one statement; its pk.

    Data-modifying CTEs: the balance's compare-and-set (as ``set_balances``),
    the ``usage_events`` row, its ``usage`` entry (``reference =
    'usage:<event pk>'``, as ``post_usage_entries``) and ``also``, the
    caller's rollup upsert (``core.usage_rollups.rollup_upsert``, which
    reads the event's CTE). Every write depends on the compare-and-set having
    matched: if it did not, nothing is written and ``StaleBalance`` is raised
    (the caller's transaction must then roll back).

    ``commit``: the caller's transaction ends with this statement, and its
    COMMIT goes out with it (``RawCursor.execute_all``).
    """
    params = {"new": change.new_ucr, "id": change.wallet_id, "old": change.old_ucr}
    amount = change.new_ucr - change.old_ucr
    (row,) = _event_rows(
        cur,
        _event_statement_sql((_SET_BALANCE, params), amount, event, entry_memo, also),
        change.wallet_id,
        commit=commit,
    )
    return int(row[0])


def charge_one_event_if(
    cur: RawCursor,
    wallet_id: int,
    charge_ucr: int,
    overdraft_ucr: int,
    guard: Statement,
    event: Mapping[str, Any],
    entry_memo: str,
    also: Statement,
) -> int | None:
    """PostgreSQL: charge one usage event in one statement that is its whole
    transaction, if the wallet's available credits cover it and ``guard``
    holds; the new balance, or None and nothing written.

    The wallet's UPDATE is relative and its WHERE holds the funds check
    (balance − reserved − charge ≥ −``overdraft_ucr``) and ``guard``, an SQL
    condition of the caller's (``wallets`` names the wallet's row). Under
    READ COMMITTED a wallet that another transaction changed first is checked
    again at its committed values once its lock is granted, so the rule
    holds however many charge it at once. The event (without
    ``balance_after_ucr``: the balance that UPDATE returns), its ``usage``
    entry and ``also`` (the caller's rollup statement) depend on it, as in
    ``charge_one_event``. The statement goes out alone in autocommit
    (``RawCursor.execute_all(commit=True)``), where PostgreSQL commits it.

    The caller's ``guard`` must make a second run write nothing (it checks
    that the event is not stored yet): the statement may be sent again on a
    fresh connection if the lent one proves dead.
    """
    guard_sql, guard_params = guard
    balance = (
        f"{_CHARGE_IF_COVERED} AND ({guard_sql}) RETURNING {outbox.ALERT_COLUMNS}",
        {"charge": charge_ucr, "id": wallet_id, "overdraft": overdraft_ucr, **(guard_params or {})},
    )
    statement = _event_statement_sql(balance, -charge_ucr, event, entry_memo, also)
    rows = _event_rows(cur, statement, wallet_id, commit=True, conditional=True)
    return int(rows[0][4]) if rows else None  # ALERT_COLUMNS' balance_ucr


def settle_charge(
    cur: RawCursor,
    wallet_id: int,
    reserved_ucr: int,
    charge_ucr: int,
    event: Mapping[str, Any],
    entry_memo: str,
    also: Statement,
    created_at: datetime,
    *,
    close: Statement,
    after: Statement | None = None,
    commit: bool = False,
) -> tuple[int, int] | None:
    """A hold's settlement, if ``close`` (the hold's move out of ``active``,
    an ``UPDATE … RETURNING`` that returns a row only if it moved it)
    succeeds: free ``reserved_ucr`` of the wallet's reservation and debit
    ``charge_ucr`` in one relative UPDATE, then write the charge's usage
    event (``event``, without ``balance_after_ucr``: the balance that UPDATE
    returns), its ``usage`` entry, ``also`` (the caller's rollup statement)
    and ``after`` (the caller's key update, an ``UPDATE … WHERE …``). The
    event's pk and the new balance; None, and nothing written, if ``close``
    moved no hold (it was closed already).

    In the caller's write transaction, which holds the wallet's lock (SQLite
    ``BEGIN IMMEDIATE``; PostgreSQL locks the row with the UPDATE). On
    PostgreSQL all of it is one statement of data-modifying CTEs, every
    write after the close depending on it, so a close that moved no hold
    writes nothing. Rows are locked hold, wallet, key, as everywhere
    (``core.holds``): the key's UPDATE, which no other part reads, runs
    after the statement's main query, which reads the wallet's.

    ``commit``: the caller's transaction ends with the settlement: on
    PostgreSQL its COMMIT goes out in the same round trip
    (``RawCursor.execute_all``). It may be sent again on a fresh connection
    if the lent one proves dead: a second run finds the hold closed.
    """
    params = {"reserved": reserved_ucr, "charge": charge_ucr, "id": wallet_id}
    if not cur.is_sqlite:
        statement = _event_statement_sql(
            (_SETTLE_RESERVED_AFTER_CLOSE, params),
            -charge_ucr,
            event,
            entry_memo,
            also,
            close=close,
            after=after,
        )
        rows = _event_rows(cur, statement, wallet_id, commit=commit, conditional=True)
        if not rows:
            return None
        return int(rows[0][0]), int(rows[0][4])  # ALERT_COLUMNS' balance_ucr
    if not cur.execute(*close).fetchall():
        return None
    row = cur.execute(_SETTLE_RESERVED, params).fetchone()
    if row is None:
        raise StaleBalance(f"wallet {wallet_id} is gone")
    outbox.note_balances(cur, [row])
    balance = int(row[3])  # ALERT_COLUMNS' balance_ucr
    (event_pk,) = cur.insert_with_ids("usage_events", [{**event, "balance_after_ucr": balance}])
    entry = UsageEntry(
        wallet_id, -charge_ucr, balance, f"usage:{event_pk}", event["credits_per_usd"], entry_memo
    )
    post_usage_entries(cur, [entry], created_at)
    also_sql, also_params = also
    cur.execute(also_sql, also_params)
    if after is not None:
        cur.execute(*after)
    return event_pk, balance


def _event_rows(
    cur: RawCursor, statement: Statement, wallet_id: int, *, commit: bool, conditional: bool = False
) -> list[Any]:
    """PostgreSQL: run an ``_event_statement_sql`` (with the COMMIT, if
    ``commit``), note the wallet's low-balance alert; its rows. No row:
    nothing was written. That is an answer of a ``conditional`` statement
    (a settled hold's close moved nothing; a guarded charge's condition did
    not hold), whose second run writes nothing, so it may be sent again on a
    fresh connection; otherwise the balance's compare-and-set failed and
    ``StaleBalance`` is raised."""
    [rows] = cur.execute_all([statement], commit=commit, idempotent=conditional)
    if not rows and not conditional:
        raise StaleBalance(f"wallet {wallet_id} changed under the write lock")
    alerts = [row[1:] for row in rows]
    if commit:
        outbox.note_balances_committed(cur, alerts)
    else:
        outbox.note_balances(cur, alerts)
    return rows


def _event_statement_sql(
    balance: Statement,
    amount_ucr: int,
    event: Mapping[str, Any],
    entry_memo: str,
    also: Statement,
    *,
    close: Statement | None = None,
    after: Statement | None = None,
) -> Statement:
    """PostgreSQL: ``close`` if any (whose row ``balance`` then requires),
    the balance ``UPDATE … RETURNING ALERT_COLUMNS`` (wallet ``:id``), then
    the event (its ``balance_after_ucr`` the balance that UPDATE returned),
    the entry, ``also`` (which reads the event's CTE, ``ev``) and ``after``,
    each only if that UPDATE changed the wallet: one statement returning the
    event's pk and the wallet's ``ALERT_COLUMNS``; its text and parameters.
    The parts' parameters share one namespace: a name used by two parts
    raises ``ValueError``."""
    (balance_sql, balance_params), (also_sql, also_params) = balance, also
    close_sql, close_params = close or ("", None)
    after_sql, after_params = after or ("", None)
    columns = tuple(c for c in event if c != "balance_after_ucr")
    parts = [
        {f"ev_{c}": event[c] for c in columns},
        {
            "amount": amount_ucr,
            "rate": event["credits_per_usd"],
            "memo": entry_memo,
            "created_at": event["received_at"],
        },
        balance_params or {},
        also_params or {},
        close_params or {},
        after_params or {},
    ]
    params = {name: value for part in parts for name, value in part.items()}
    if len(params) != sum(map(len, parts)):
        raise ValueError("two parts of the statement share a parameter name")
    return _event_sql(balance_sql, columns, also_sql, close_sql, after_sql), params


@lru_cache(maxsize=16)
def _event_sql(
    balance_sql: str, columns: tuple[str, ...], also_sql: str, close_sql: str, after_sql: str
) -> str:
    """The text of ``_event_statement_sql`` (a few shapes, built once each)."""
    names = ", ".join((*columns, "balance_after_ucr"))
    values = ", ".join((*(f":ev_{c}" for c in columns), "bal.balance_ucr"))
    close = f" c AS ({close_sql})," if close_sql else ""
    after = f", k AS ({after_sql} AND EXISTS (SELECT 1 FROM bal))" if after_sql else ""
    return (
        f"WITH{close} bal AS ({balance_sql}),"
        f" ev AS (INSERT INTO usage_events ({names}) SELECT {values} FROM bal RETURNING id),"
        " led AS (INSERT INTO ledger_entries (wallet_id, amount_ucr, balance_after_ucr, kind,"
        " reference, credits_per_usd, memo, created_at) SELECT bal.id, :amount, bal.balance_ucr,"
        f" '{LedgerKind.USAGE}', 'usage:' || ev.id, :rate, :memo, :created_at FROM ev, bal),"
        f" also AS ({also_sql}){after}"
        " SELECT ev.id, bal.* FROM ev, bal"
    )


def post_usage_entries(cur: RawCursor, entries: Sequence[UsageEntry], created_at: datetime) -> None:
    """Insert ``usage`` ledger entries, all created at ``created_at``.

    In the caller's transaction, together with the ``set_balances`` they
    explain. One executemany for the lot; a second charge of the same event
    collides on UNIQUE (kind, reference) and raises the driver's IntegrityError.
    """
    if not entries:
        return
    at = cur.db_value(created_at)
    cur.executemany(
        _INSERT_USAGE_ENTRY,
        [
            {
                "wallet_id": e.wallet_id,
                "amount": e.amount_ucr,
                "balance_after": e.balance_after_ucr,
                "reference": e.reference,
                "credits_per_usd": e.credits_per_usd,
                "memo": e.memo,
                "created_at": at,
            }
            for e in entries
        ],
    )


_SET_BALANCE = (
    "UPDATE wallets SET balance_ucr = :new WHERE id = :id AND balance_ucr = :old"
    f" RETURNING {outbox.ALERT_COLUMNS}"
)
_CHARGE_IF_COVERED = (
    "UPDATE wallets SET balance_ucr = balance_ucr - :charge WHERE id = :id"
    " AND balance_ucr - reserved_ucr - :charge >= -:overdraft"
)
_SETTLE_RESERVED_SET = (
    "UPDATE wallets SET reserved_ucr = reserved_ucr - :reserved,"
    " balance_ucr = balance_ucr - :charge WHERE id = :id"
)
_SETTLE_RESERVED = f"{_SETTLE_RESERVED_SET} RETURNING {outbox.ALERT_COLUMNS}"
# The same after a hold's close, the CTE ``c`` of ``_event_statement_sql``.
_SETTLE_RESERVED_AFTER_CLOSE = (
    f"{_SETTLE_RESERVED_SET} AND EXISTS (SELECT 1 FROM c) RETURNING {outbox.ALERT_COLUMNS}"
)
_INSERT_USAGE_ENTRY = (
    "INSERT INTO ledger_entries (wallet_id, amount_ucr, balance_after_ucr, kind, reference,"
    " credits_per_usd, memo, created_at) VALUES (:wallet_id, :amount, :balance_after,"
    f" '{LedgerKind.USAGE}', :reference, :credits_per_usd, :memo, :created_at)"
)
