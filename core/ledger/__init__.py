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
``RawCursor`` on the hot path) and never commits on its own: the rule of
``core.db``'s module docstring, "who owns the transaction" (the owner may
ask the raw writers to send its COMMIT with their last statement).

Writers
-------
This package holds every writer of ``ledger_entries`` and of
``wallets.balance_ucr``; nothing else in ``core`` writes either. The ORM
writer is here, the raw-cursor ones in ``core/ledger/usage_writers.py``
(all importable from ``core.ledger``):

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
* ``charge_one_event_if`` (raw cursor, PostgreSQL): the same request decided
  before its transaction from what the process has cached
  (``core.usage_one_statement``). Its one statement is its whole
  transaction: the wallet's relative UPDATE carries the funds check
  (balance − reserved − charge ≥ −overdraft) and the caller's condition,
  and the event, entry and rollup depend on it; no row, nothing written.
* ``settle_charge`` (raw DBAPI cursor): a hold's settlement
  (``core.holds.settle``) frees the hold's reservation and debits its charge
  in one relative UPDATE of the wallet, under the write lock, and records the
  balance that UPDATE returns on the event and the entry (on PostgreSQL as
  one statement with the hold's close and the key's update, like
  ``charge_one_event``).

These PostgreSQL statements may carry their transaction's COMMIT when the
owner says nothing follows (``commit=True``; ``charge_one_event_if``
always does); a low-balance alert they
change is then noted in a transaction of its own right after
(``core.outbox.note_balances_committed``).

Rejections
----------
A usage event that cannot be charged (unknown user or model, disabled model,
over a cap, insufficient credits) is still stored, with status ``rejected``
and its reason, and the transaction commits. Only then is the typed error
(``core.errors.UsageRejected`` subclasses) raised, so callers see an error
and nothing is lost. Replaying the same event returns the original outcome.
"""

from __future__ import annotations

from dataclasses import dataclass

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
from core.ledger.usage_writers import (
    BalanceChange,
    StaleBalance,
    UsageEntry,
    charge_one_event,
    charge_one_event_if,
    post_usage_entries,
    set_balances,
    settle_charge,
)
from core.models import LedgerEntry, Wallet
from core.pricing import format_credits
from core.rawdb import RawCursor

__all__ = [
    "RECENT_ENTRIES_LIMIT",
    "BalanceChange",
    "LedgerProblem",
    "Posting",
    "StaleBalance",
    "UsageEntry",
    "adjust",
    "charge_one_event",
    "charge_one_event_if",
    "check_ledger",
    "post_entry",
    "post_usage_entries",
    "recent_entries",
    "set_balances",
    "settle_charge",
]


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
