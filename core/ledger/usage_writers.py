"""The ledger's raw-cursor writers: the usage hot path (see ``core.ledger``).

``set_balances`` + ``post_usage_entries`` for the usage API's requests,
``charge_one_event`` for its common one-event request on PostgreSQL, and
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
    also: tuple[str, Mapping[str, Any]],
) -> int:
    """PostgreSQL: write one charged usage event in one statement; its pk.

    Data-modifying CTEs: the balance's compare-and-set (as ``set_balances``),
    the ``usage_events`` row, its ``usage`` entry (``reference =
    'usage:<event pk>'``, as ``post_usage_entries``) and ``also``, the
    caller's own statement (the rollup upsert) with its parameters. Raises
    ``StaleBalance`` if the compare-and-set did not match; the caller's
    transaction must then roll back (the statement's other writes with it).
    """
    params = {"new": change.new_ucr, "id": change.wallet_id, "old": change.old_ucr}
    amount = change.new_ucr - change.old_ucr
    return _event_statement(cur, (_SET_BALANCE, params), amount, event, entry_memo, also)[0]


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
) -> tuple[int, int] | None:
    """A hold's settlement, if ``close`` (the hold's move out of ``active``,
    a statement that returns a row only if it moved it) succeeds: free
    ``reserved_ucr`` of the wallet's reservation and debit ``charge_ucr`` in
    one relative UPDATE, then write the charge's usage event (``event``,
    without ``balance_after_ucr``: the balance that UPDATE returns), its
    ``usage`` entry, ``also`` (the caller's rollup statement) and ``after``
    (the caller's key update). The event's pk and the new balance; None, and
    nothing written, if ``close`` moved no hold (it was closed already).

    In the caller's write transaction, which holds the wallet's lock (SQLite
    ``BEGIN IMMEDIATE``; PostgreSQL locks the row with the UPDATE). On
    PostgreSQL all of it goes out in one round trip, behind a savepoint: the
    close, one statement for the rest (so the wallet's row lock is held for
    that statement and the commit only) and ``after``. If the close moved no
    hold, what ran after it is rolled back to the savepoint (a settled hold's
    second event is not even inserted: ``ON CONFLICT (hold_id) DO NOTHING``).
    """
    params = {"reserved": reserved_ucr, "charge": charge_ucr, "id": wallet_id}
    if not cur.is_sqlite:
        statements: list[Statement] = [("SAVEPOINT settle", None), close]
        statements.append(
            _event_statement_sql((_SETTLE_RESERVED, params), -charge_ucr, event, entry_memo, also)
        )
        if after is not None:
            statements.append(after)
        results = cur.execute_all(statements)
        if not results[1]:
            cur.execute("ROLLBACK TO SAVEPOINT settle")
            return None
        row = results[2][0]
        outbox.note_balances(cur, [row[1:]])
        return int(row[0]), int(row[4])  # ALERT_COLUMNS' balance_ucr
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


def _event_statement(
    cur: RawCursor,
    balance: Statement,
    amount_ucr: int,
    event: Mapping[str, Any],
    entry_memo: str,
    also: Statement,
) -> tuple[int, int]:
    """PostgreSQL: ``_event_statement_sql`` run; (event pk, new balance)."""
    row = cur.execute(
        *_event_statement_sql(balance, amount_ucr, event, entry_memo, also)
    ).fetchone()
    if row is None:
        raise StaleBalance(f"wallet {balance[1]['id']} changed under the write lock")
    outbox.note_balances(cur, [row[1:]])
    return int(row[0]), int(row[4])  # ALERT_COLUMNS' balance_ucr


def _event_statement_sql(
    balance: Statement,
    amount_ucr: int,
    event: Mapping[str, Any],
    entry_memo: str,
    also: Statement,
) -> tuple[str, dict[str, Any]]:
    """PostgreSQL: the balance ``UPDATE … RETURNING ALERT_COLUMNS`` (wallet
    ``:id``), then the event (its ``balance_after_ucr`` the balance that UPDATE
    returned), the entry and ``also``, as one statement returning the event's
    pk and the wallet's ``ALERT_COLUMNS``; its text and parameters."""
    (balance_sql, balance_params), (also_sql, also_params) = balance, also
    columns = tuple(c for c in event if c != "balance_after_ucr")
    return _event_sql(balance_sql, columns, also_sql), {
        **{f"ev_{c}": event[c] for c in columns},
        **also_params,
        **balance_params,
        "amount": amount_ucr,
        "rate": event["credits_per_usd"],
        "memo": entry_memo,
        "created_at": event["received_at"],
    }


@lru_cache(maxsize=16)
def _event_sql(balance_sql: str, columns: tuple[str, ...], also_sql: str) -> str:
    """The text of ``_event_statement`` (a few shapes, built once each)."""
    names = ", ".join((*columns, "balance_after_ucr"))
    values = ", ".join((*(f":ev_{c}" for c in columns), "(SELECT balance_ucr FROM bal)"))
    return (
        f"WITH bal AS ({balance_sql}),"
        f" ev AS (INSERT INTO usage_events ({names}) VALUES ({values})"
        # A hold's second event (a settle racing a settle) writes nothing;
        # the caller's savepoint undoes the rest. Other conflicts still raise.
        " ON CONFLICT (hold_id) DO NOTHING RETURNING id),"
        " led AS (INSERT INTO ledger_entries (wallet_id, amount_ucr, balance_after_ucr, kind,"
        " reference, credits_per_usd, memo, created_at) SELECT :id, :amount, bal.balance_ucr,"
        f" '{LedgerKind.USAGE}', 'usage:' || ev.id, :rate, :memo, :created_at FROM ev, bal),"
        f" also AS ({also_sql})"
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
_SETTLE_RESERVED = (
    "UPDATE wallets SET reserved_ucr = reserved_ucr - :reserved,"
    " balance_ucr = balance_ucr - :charge WHERE id = :id"
    f" RETURNING {outbox.ALERT_COLUMNS}"
)
_INSERT_USAGE_ENTRY = (
    "INSERT INTO ledger_entries (wallet_id, amount_ucr, balance_after_ucr, kind, reference,"
    " credits_per_usd, memo, created_at) VALUES (:wallet_id, :amount, :balance_after,"
    f" '{LedgerKind.USAGE}', :reference, :credits_per_usd, :memo, :created_at)"
)
