"""The credit ledger: every balance change, exactly once.

Design
------
A wallet holds one integer, ``balance_ucr`` (micro-credits). It only changes
together with a new ``ledger_entries`` row in the same transaction, and the
row records the signed amount, the resulting balance, its kind (topup, usage,
refund, dispute, adjustment, reversal), an external reference and the rate
that applied. Ledger rows are never updated or deleted (database triggers
refuse it); corrections are new entries.

Invariants (checked by ``check_ledger`` and ``flask check-ledger``):

1. For every wallet, ``balance_ucr == SUM(ledger_entries.amount_ucr)``.
2. A usage event is charged at most once: ``usage_events`` is UNIQUE on
   (integration key, event id) and ledger entries are UNIQUE on
   (kind, reference), with ``reference = 'usage:<event pk>'``.
3. A usage debit never takes the available credits (balance − reserved,
   ``core.holds``) below ``-overdraft_limit``: the wallet is read under the
   write lock and written with a compare-and-set (``core.usage_debits``), and
   an event that would overdraw is stored as rejected instead. A settled
   hold charges at most what it reserved. Only refunds and disputes may push
   a balance further down.
4. ``usage_daily`` equals the per (user, day, model) sums of charged events.
5. Card top-ups: each top-up's entries add up to what its recorded state
   implies, part by part.

``core.ledger_checks`` checks 1, 2 (the usage entries add up to the charged
events), 4 and 5 from the data, one function each.

Concurrency
-----------
On SQLite every write transaction starts ``BEGIN IMMEDIATE`` (``core.db``),
so writers are serialised and a read-then-write cannot race. On PostgreSQL
``post_entry``'s conditional UPDATE is atomic under READ COMMITTED, and usage
debits lock their wallet rows ``FOR UPDATE``; two transactions inserting the
same event id or reference collide on the UNIQUE constraint, the loser's
transaction is rolled back and retried, and the retry finds the winner's row
and answers as a duplicate.

Transactions
------------
Every function here works in the caller's transaction (a ``Session``, or a
``RawCursor`` on the hot path) and never commits: the rule of ``core.db``'s
module docstring, "who owns the transaction".

Writers
-------
This module holds every writer of ``ledger_entries`` and of
``wallets.balance_ucr``; nothing else in ``core`` writes either. Two ways in:

* ``post_entry`` (ORM session): one entry and its balance change, with an
  optional floor or ceiling. Top-ups, refunds, disputes, adjustments.
* ``set_balances`` + ``post_usage_entries`` (raw DBAPI cursor): the usage
  hot path (``core.usage_debits``) prices and decides a whole request in
  Python under the write lock, then writes every changed balance as a
  compare-and-set on the balance it read and every charge's entry with one
  executemany. Any future debit path goes through them.
* ``charge_one_event`` (raw cursor, PostgreSQL): the common request of one
  charged event, written by one statement instead of four (the balance's
  compare-and-set, the usage event, its entry, the ``usage_daily`` rollup;
  every write in it depends on the compare-and-set having matched). A
  round trip to PostgreSQL costs its server a wake-up and a statement's
  overhead: fewer of them was most of the ingest speed-up there.
* ``settle_charge`` (raw DBAPI cursor): a hold's settlement
  (``core.holds.settle``) frees the hold's reservation and debits its charge
  in one relative UPDATE of the wallet, under the write lock, and records the
  balance that UPDATE returns on the event and the entry (on PostgreSQL as
  one statement, like ``charge_one_event``).

Rejections
----------
A usage event that cannot be charged (unknown user or model, disabled model,
over a cap, insufficient credits) is still stored, with status ``rejected``
and its reason, and the transaction commits. Only then is the typed error
(``core.errors.UsageRejected`` subclasses) raised, so callers see an error
and nothing is lost. Replaying the same event returns the original outcome.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from core import audit, outbox
from core.accounts import find_user
from core.bounds import MAX_AMOUNT_UCR
from core.clock import utcnow
from core.enums import LedgerKind
from core.errors import (
    BalanceLimit,
    InsufficientCredits,
    UnknownUsageUser,
    ValidationError,
)
from core.models import LedgerEntry, Wallet
from core.pricing import format_credits
from core.rawdb import RawCursor, Statement


@dataclass(frozen=True)
class Posting:
    entry_id: int
    balance_ucr: int
    duplicate: bool


# --- generic postings -----------------------------------------------------------


def post_entry(
    session: Session,
    wallet_id: int,
    amount_ucr: int,
    kind: str,
    *,
    reference: str | None = None,
    floor_ucr: int | None = None,
    ceiling_ucr: int | None = None,
    memo: str = "",
    actor_id: int | None = None,
    credits_per_usd: int | None = None,
) -> Posting | None:
    """Move ``amount_ucr`` (signed) into a wallet, with its ledger entry.

    In the caller's transaction. Idempotent when ``reference`` is given: a
    second posting of the same (kind, reference) changes nothing and returns
    the first one marked duplicate. With ``floor_ucr``, the posting happens
    only if the new *available* credits (balance − reserved, ``core.holds``)
    stay >= the floor, so a debit cannot spend what running calls reserved;
    with ``ceiling_ucr``, only if the balance stays <= the ceiling; otherwise
    returns None. (The ceiling is compared
    as ``balance <= ceiling - amount``, computed in Python: no SQL arithmetic
    near 64 bits.)
    """
    if type(amount_ucr) is not int:
        raise TypeError("amounts are integers of micro-credits")
    if reference is not None:
        existing = session.execute(
            select(LedgerEntry.id, LedgerEntry.balance_after_ucr).where(
                LedgerEntry.kind == kind, LedgerEntry.reference == reference
            )
        ).first()
        if existing is not None:
            return Posting(existing.id, existing.balance_after_ucr, duplicate=True)
    stmt = update(Wallet).where(Wallet.id == wallet_id)
    if floor_ucr is not None:
        stmt = stmt.where(Wallet.balance_ucr - Wallet.reserved_ucr + amount_ucr >= floor_ucr)
    if ceiling_ucr is not None:
        stmt = stmt.where(Wallet.balance_ucr <= ceiling_ucr - amount_ucr)
    balance = session.execute(
        stmt.values(balance_ucr=Wallet.balance_ucr + amount_ucr).returning(Wallet.balance_ucr)
    ).scalar()
    if balance is None:
        return None
    entry_id = session.execute(
        insert(LedgerEntry)
        .values(
            wallet_id=wallet_id,
            amount_ucr=amount_ucr,
            balance_after_ucr=balance,
            kind=kind,
            reference=reference,
            credits_per_usd=credits_per_usd,
            memo=memo,
            actor_id=actor_id,
            created_at=utcnow(),
        )
        .returning(LedgerEntry.id)
    ).scalar_one()
    outbox.note_wallets(RawCursor.of_session(session), [wallet_id])
    return Posting(entry_id, balance, duplicate=False)


# --- raw-cursor postings (the usage hot path) ------------------------------------


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


def adjust(
    session: Session, actor: audit.Actor, email: str, amount_ucr: int, reason: str
) -> Posting:
    """An admin's correction, positive or negative, with a required reason.

    A negative adjustment may not take the balance below zero: debt is only
    ever created by refunds and disputes, never by hand. A positive one may
    not take it above ``bounds.MAX_AMOUNT_UCR`` (``BalanceLimit``). In the
    caller's transaction: it has no reference, so no UNIQUE race to retry.
    """
    reason = audit.clean_reason(reason)
    if amount_ucr == 0:
        raise ValidationError("An adjustment of zero changes nothing.", field="amount")
    if abs(amount_ucr) > MAX_AMOUNT_UCR:
        raise BalanceLimit(
            f"One adjustment is at most {format_credits(MAX_AMOUNT_UCR)} credits.",
            field="amount",
        )

    user = find_user(session, email)
    if user is None:
        raise UnknownUsageUser(f"No user with email {email!r}.")
    posting = post_entry(
        session,
        user.wallet.id,
        amount_ucr,
        LedgerKind.ADJUSTMENT,
        floor_ucr=0 if amount_ucr < 0 else None,
        ceiling_ucr=MAX_AMOUNT_UCR if amount_ucr > 0 else None,
        memo=reason,
        actor_id=actor.user_id,
    )
    if posting is None and amount_ucr > 0:
        raise BalanceLimit(
            f"Adding {format_credits(amount_ucr)} credits would take {user.email} above "
            f"the ceiling of {format_credits(MAX_AMOUNT_UCR)} credits per balance "
            f"(balance {format_credits(user.wallet.balance_ucr)}).",
            field="amount",
        )
    if posting is None:
        wallet = user.wallet
        raise InsufficientCredits(
            f"Removing {format_credits(-amount_ucr)} credits would take {user.email}'s "
            "available credits below zero (balance "
            f"{format_credits(wallet.balance_ucr)}, reserved by running calls "
            f"{format_credits(wallet.reserved_ucr)})."
        )
    audit.record(
        session,
        actor,
        "wallet.adjust",
        "wallet",
        user.wallet.id,
        before={"balance_ucr": posting.balance_ucr - amount_ucr},
        after={"balance_ucr": posting.balance_ucr, "amount_ucr": amount_ucr},
        reason=reason,
    )
    return posting


# --- verification -------------------------------------------------------------


@dataclass(frozen=True)
class LedgerProblem:
    """One broken invariant: what, where, and the two numbers that disagree."""

    what: str
    key: str
    expected: int
    found: int


def check_ledger(session: Session) -> list[LedgerProblem]:
    """Every invariant of the module docstring that can be checked from data:
    ``core.ledger_checks.CHECKS``, one function per invariant, in order."""
    from core.ledger_checks import CHECKS  # they build on this module

    return [problem for check in CHECKS for problem in check(session)]


# Read side: queries for views

RECENT_ENTRIES_LIMIT = 20


def recent_entries(
    session: Session, wallet_id: int, limit: int = RECENT_ENTRIES_LIMIT
) -> list[LedgerEntry]:
    """The newest ``limit`` ledger entries of one wallet, newest first."""
    query = (
        select(LedgerEntry)
        .where(LedgerEntry.wallet_id == wallet_id)
        .order_by(LedgerEntry.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))
