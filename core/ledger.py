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
3. A usage debit never takes a balance below ``-overdraft_limit``: the debit is
   ``UPDATE wallets SET balance = balance - cost WHERE id = ? AND
   balance >= cost - overdraft`` and is skipped (event rejected) if no row
   matched. Only refunds and disputes may push a balance further down.
4. ``usage_daily`` equals the per (user, day, model) sums of charged events.

Concurrency
-----------
On SQLite every write transaction starts ``BEGIN IMMEDIATE`` (``core.db``),
so writers are serialised and the read-then-write below cannot race. On
PostgreSQL the conditional UPDATE is atomic under READ COMMITTED; two
transactions inserting the same event id or reference collide on the UNIQUE
constraint, the loser's transaction is rolled back and retried once, and the
retry finds the winner's row and answers as a duplicate.

Rejections
----------
A usage event that cannot be charged (unknown user or model, disabled model,
over a cap, insufficient credits) is still stored, with status ``rejected``
and its reason, and the transaction commits. Only then is the typed error
(``core.errors.UsageRejected`` subclasses) raised, so callers see an error
and nothing is lost. Replaying the same event returns the original outcome.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import func, insert, literal, select, union_all, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import audit
from core.accounts import find_user, normalise_email
from core.clock import utcnow
from core.db import Database
from core.errors import (
    REJECTIONS,
    Conflict,
    DomainError,
    InsufficientCredits,
    LimitExceeded,
    ModelDisabled,
    UnknownModel,
    UnknownUsageUser,
    UsageRejected,
    UserDisabled,
    ValidationError,
)
from core.models import LedgerEntry, Notification, UsageDaily, UsageEvent, User, Wallet
from core.pricebook import PriceBook, PriceBookCache
from core.pricing import format_credits, usage_cost_ucr

T = TypeVar("T")
_RETRIES = 3


@dataclass(frozen=True)
class UsageReport:
    """One usage event as an integration reports it (already type-checked)."""

    event_id: str
    user: str
    model: str
    input_tokens: int
    output_tokens: int
    conversation_id: str | None = None
    occurred_at: datetime | None = None

    def payload_hash(self) -> str:
        """What makes two reports with one event id "the same payload"."""
        canonical = json.dumps(
            [
                normalise_email(self.user),
                self.model,
                self.input_tokens,
                self.output_tokens,
                self.conversation_id,
                self.occurred_at.isoformat() if self.occurred_at else None,
            ],
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class UsageResult:
    """The outcome for one event: charged, or rejected with ``error`` set."""

    event_id: str
    status: str  # "charged" | "rejected"
    duplicate: bool
    cost_ucr: int
    balance_ucr: int | None
    error: DomainError | None = None


@dataclass(frozen=True)
class Posting:
    entry_id: int
    balance_ucr: int
    duplicate: bool


# --- transactions with retry --------------------------------------------------


def _transact(db: Database, work: Callable[[Session], T]) -> T:
    """Run ``work`` in one write transaction, retrying lost UNIQUE races."""
    for attempt in range(_RETRIES):
        try:
            with db.write() as session:
                return work(session)
        except IntegrityError:
            if attempt == _RETRIES - 1:
                raise
    raise AssertionError("unreachable")


# --- generic postings -----------------------------------------------------------


def post_entry(
    session: Session,
    wallet_id: int,
    amount_ucr: int,
    kind: str,
    *,
    reference: str | None = None,
    floor_ucr: int | None = None,
    memo: str = "",
    actor_id: int | None = None,
    credits_per_usd: int | None = None,
) -> Posting | None:
    """Move ``amount_ucr`` (signed) into a wallet, with its ledger entry.

    In the caller's transaction. Idempotent when ``reference`` is given: a
    second posting of the same (kind, reference) changes nothing and returns
    the first one marked duplicate. With ``floor_ucr``, the posting happens
    only if the new balance stays >= the floor; otherwise returns None.
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
        stmt = stmt.where(Wallet.balance_ucr + amount_ucr >= floor_ucr)
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
    return Posting(entry_id, balance, duplicate=False)


def credit(
    db: Database,
    wallet_id: int,
    amount_ucr: int,
    kind: str,
    reference: str,
    *,
    memo: str = "",
    credits_per_usd: int | None = None,
) -> Posting:
    """Add credits once per (kind, reference), e.g. a paid Checkout Session."""
    if amount_ucr <= 0:
        raise ValidationError("A credit must be positive.")

    def work(session: Session) -> Posting:
        posting = post_entry(
            session,
            wallet_id,
            amount_ucr,
            kind,
            reference=reference,
            memo=memo,
            credits_per_usd=credits_per_usd,
        )
        assert posting is not None  # no floor on a credit
        return posting

    return _transact(db, work)


def adjust(db: Database, actor: audit.Actor, email: str, amount_ucr: int, reason: str) -> Posting:
    """An admin's correction, positive or negative, with a required reason.

    A negative adjustment may not take the balance below zero: debt is only
    ever created by refunds and disputes, never by hand.
    """
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError("A reason is required.", field="reason")
    if amount_ucr == 0:
        raise ValidationError("An adjustment of zero changes nothing.", field="amount")

    def work(session: Session) -> Posting:
        user = find_user(session, email)
        if user is None:
            raise UnknownUsageUser(f"No user with email {email!r}.")
        posting = post_entry(
            session,
            user.wallet.id,
            amount_ucr,
            "adjustment",
            floor_ucr=0 if amount_ucr < 0 else None,
            memo=reason,
            actor_id=actor.user_id,
        )
        if posting is None:
            raise InsufficientCredits(
                f"Removing {format_credits(-amount_ucr)} credits would take "
                f"{user.email} below zero (balance {format_credits(user.wallet.balance_ucr)})."
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

    return _transact(db, work)


# --- usage debits ---------------------------------------------------------------


def debit_usage(
    db: Database, prices: PriceBookCache, integration_key_id: int, report: UsageReport
) -> UsageResult:
    """Price and debit one usage event, exactly once. See the module docstring.

    Returns the result for a charge (``duplicate`` on replay). Raises
    ``Conflict`` for a reused id with another payload, and a ``UsageRejected``
    subclass (after committing the rejected event) when it cannot be charged.
    """
    result = _transact(
        db, lambda s: _debit_one(s, prices.get(s), integration_key_id, report, utcnow())
    )
    if result.error is not None:
        raise result.error
    return result


def debit_usage_batch(
    db: Database,
    prices: PriceBookCache,
    integration_key_id: int,
    reports: Sequence[UsageReport],
) -> list[UsageResult]:
    """Many events in one transaction; one result each, in order, never raising
    for a single event's rejection or conflict."""

    def work(session: Session) -> list[UsageResult]:
        book = prices.get(session)
        now = utcnow()
        return [_debit_one(session, book, integration_key_id, r, now) for r in reports]

    return _transact(db, work)


def _debit_one(
    session: Session, book: PriceBook, key_id: int, report: UsageReport, now: datetime
) -> UsageResult:
    payload_hash = report.payload_hash()
    existing = session.execute(
        select(
            UsageEvent.payload_hash,
            UsageEvent.status,
            UsageEvent.reason_code,
            UsageEvent.reason,
            UsageEvent.cost_ucr,
            UsageEvent.balance_after_ucr,
        ).where(UsageEvent.integration_key_id == key_id, UsageEvent.event_id == report.event_id)
    ).first()
    if existing is not None:
        return _replay(report.event_id, payload_hash, existing)

    account = session.execute(
        select(User.id, User.is_disabled, Wallet.id.label("wallet_id"))
        .join(Wallet, Wallet.user_id == User.id)
        .where(User.email == normalise_email(report.user))
    ).first()
    model = book.models.get(report.model)
    limits = book.settings
    cost: int | None = None
    if model is not None:
        cost = usage_cost_ucr(
            report.input_tokens,
            report.output_tokens,
            model.input_uusd_per_m,
            model.output_uusd_per_m,
            book.credits_per_usd,
        )
    error = _precheck(report, account, model, cost, book)

    balance: int | None = None
    if error is None:
        assert account is not None
        assert cost is not None
        balance = session.execute(
            update(Wallet)
            .where(
                Wallet.id == account.wallet_id,
                Wallet.balance_ucr >= cost - limits.overdraft_limit_ucr,
            )
            .values(balance_ucr=Wallet.balance_ucr - cost)
            .returning(Wallet.balance_ucr)
        ).scalar()
        if balance is None:
            error = InsufficientCredits(
                f"This event costs {format_credits(cost)} credits; the balance is too low.",
                event_id=report.event_id,
                cost=format_credits(cost),
            )
            session.execute(
                insert(Notification).values(
                    user_id=account.id,
                    kind="usage_rejected",
                    message=(
                        f"A {report.model} request costing {format_credits(cost)} credits "
                        "was refused because your balance is too low. Top up to continue."
                    ),
                    created_at=now,
                )
            )

    event_pk = session.execute(
        insert(UsageEvent)
        .values(
            integration_key_id=key_id,
            event_id=report.event_id,
            payload_hash=payload_hash,
            user_ref=report.user,
            user_id=account.id if account else None,
            model_name=report.model,
            model_id=model.id if model else None,
            input_tokens=report.input_tokens,
            output_tokens=report.output_tokens,
            cost_ucr=cost,
            status="rejected" if error else "charged",
            reason_code=error.code if error else None,
            reason=error.message if error else None,
            credits_per_usd=book.credits_per_usd,
            input_price_uusd_per_m=model.input_uusd_per_m if model else None,
            output_price_uusd_per_m=model.output_uusd_per_m if model else None,
            rate_version_id=book.rate_version_id,
            price_version_id=model.price_version_id if model else None,
            balance_after_ucr=balance,
            conversation_id=report.conversation_id,
            occurred_at=report.occurred_at or now,
            received_at=now,
        )
        .returning(UsageEvent.id)
    ).scalar_one()

    if error is not None:
        return UsageResult(report.event_id, "rejected", False, 0, None, error)

    assert account is not None
    assert cost is not None
    assert balance is not None
    assert model is not None
    session.execute(
        insert(LedgerEntry).values(
            wallet_id=account.wallet_id,
            amount_ucr=-cost,
            balance_after_ucr=balance,
            kind="usage",
            reference=f"usage:{event_pk}",
            credits_per_usd=book.credits_per_usd,
            memo=f"{report.model}: {report.input_tokens} in / {report.output_tokens} out",
            created_at=now,
        )
    )
    _add_to_rollup(session, account.id, now, model.id, report, cost)
    return UsageResult(report.event_id, "charged", False, cost, balance)


def _precheck(report, account, model, cost, book: PriceBook) -> UsageRejected | None:  # type: ignore[no-untyped-def]
    """The reasons an event is refused before any balance is touched."""
    eid = report.event_id
    limits = book.settings
    if account is None:
        return UnknownUsageUser(f"No user with email {report.user!r}.", event_id=eid)
    if account.is_disabled:
        return UserDisabled("This user's account is disabled.", event_id=eid)
    if model is None:
        return UnknownModel(f"Unknown model {report.model!r}.", event_id=eid)
    if not model.enabled:
        return ModelDisabled(f"Model {report.model!r} is disabled.", event_id=eid)
    tokens = report.input_tokens + report.output_tokens
    if tokens > limits.max_tokens_per_event:
        return LimitExceeded(
            f"{tokens} tokens exceed the cap of {limits.max_tokens_per_event} per event.",
            event_id=eid,
        )
    if cost > limits.max_credits_per_event_ucr:
        return LimitExceeded(
            f"{format_credits(cost)} credits exceed the cap of "
            f"{format_credits(limits.max_credits_per_event_ucr)} per event.",
            event_id=eid,
        )
    return None


def _replay(event_id: str, payload_hash: str, row) -> UsageResult:  # type: ignore[no-untyped-def]
    if row.payload_hash != payload_hash:
        conflict = Conflict(
            f"Event {event_id!r} was already reported with a different payload.",
            event_id=event_id,
        )
        return UsageResult(event_id, "rejected", False, 0, None, conflict)
    if row.status == "charged":
        return UsageResult(event_id, "charged", True, row.cost_ucr, row.balance_after_ucr)
    error_cls = REJECTIONS.get(row.reason_code, UsageRejected)
    error = error_cls(row.reason or "Rejected.", event_id=event_id, duplicate=True)
    return UsageResult(event_id, "rejected", True, 0, None, error)


def _add_to_rollup(
    session: Session, user_id: int, now: datetime, model_id: int, r: UsageReport, cost: int
) -> None:
    dialect = session.get_bind().dialect.name
    make_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = UsageDaily.__table__
    stmt = make_insert(table).values(
        user_id=user_id,
        day=now.date(),
        model_id=model_id,
        events=1,
        input_tokens=r.input_tokens,
        output_tokens=r.output_tokens,
        cost_ucr=cost,
    )
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["user_id", "day", "model_id"],
            set_={
                "events": table.c.events + 1,
                "input_tokens": table.c.input_tokens + stmt.excluded.input_tokens,
                "output_tokens": table.c.output_tokens + stmt.excluded.output_tokens,
                "cost_ucr": table.c.cost_ucr + stmt.excluded.cost_ucr,
            },
        )
    )


# --- verification -------------------------------------------------------------


@dataclass(frozen=True)
class LedgerProblem:
    what: str
    key: str
    expected: int
    found: int


def check_ledger(session: Session) -> list[LedgerProblem]:
    """Every invariant of the module docstring that can be checked from data."""
    problems: list[LedgerProblem] = []
    sums = (
        select(LedgerEntry.wallet_id, func.sum(LedgerEntry.amount_ucr).label("total"))
        .group_by(LedgerEntry.wallet_id)
        .subquery()
    )
    for row in session.execute(
        select(Wallet.id, Wallet.balance_ucr, func.coalesce(sums.c.total, 0).label("total"))
        .outerjoin(sums, sums.c.wallet_id == Wallet.id)
        .where(Wallet.balance_ucr != func.coalesce(sums.c.total, 0))
    ):
        problems.append(
            LedgerProblem("balance != sum(ledger)", f"wallet {row.id}", row.total, row.balance_ucr)
        )

    # Rollups: charged events minus rollup rows, per (user, day, model), must
    # net to zero in both columns. UNION ALL catches rows missing on either side.
    signed = union_all(
        select(
            UsageEvent.user_id,
            func.date(UsageEvent.received_at).label("day"),
            UsageEvent.model_id,
            literal(1).label("events"),
            UsageEvent.cost_ucr.label("cost"),
        ).where(UsageEvent.status == "charged"),
        select(
            UsageDaily.user_id,
            func.date(UsageDaily.day).label("day"),
            UsageDaily.model_id,
            (-UsageDaily.events).label("events"),
            (-UsageDaily.cost_ucr).label("cost"),
        ),
    ).subquery()
    for row in session.execute(
        select(
            signed.c.user_id,
            signed.c.day,
            signed.c.model_id,
            func.sum(signed.c.events).label("events"),
            func.sum(signed.c.cost).label("cost"),
        )
        .group_by(signed.c.user_id, signed.c.day, signed.c.model_id)
        .having((func.sum(signed.c.events) != 0) | (func.sum(signed.c.cost) != 0))
    ):
        key = f"user {row.user_id} day {row.day} model {row.model_id}"
        problems.append(LedgerProblem("usage_daily != charged events", key, 0, row.cost))

    usage_ledger = session.execute(
        select(func.coalesce(-func.sum(LedgerEntry.amount_ucr), 0)).where(
            LedgerEntry.kind == "usage"
        )
    ).scalar_one()
    usage_events = session.execute(
        select(func.coalesce(func.sum(UsageEvent.cost_ucr), 0)).where(
            UsageEvent.status == "charged"
        )
    ).scalar_one()
    if usage_ledger != usage_events:
        problems.append(
            LedgerProblem("usage ledger != charged events", "all", usage_events, usage_ledger)
        )
    return problems
