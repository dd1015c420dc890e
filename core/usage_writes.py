"""Deciding each new usage event of a request, and writing its rows.

``core.usage_debits.charge`` reads the request's stored events and accounts,
then hands each new event to ``RequestWrites.add``: it prices the event,
applies the checks (user, model, caps) and debits the balance held in memory
unless the available credits (balance − reserved) would go below
``-overdraft_limit``. ``flush`` then writes everything at once: the new
balances and the usage entries through ``core.ledger`` (this module never
writes either itself), one ``usage_events`` row per event, the rollups, and a
notification per refusal for insufficient credits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core import ledger, outbox
from core.accounts import normalise_email
from core.bounds import storable_amount
from core.enums import UsageStatus
from core.errors import (
    InsufficientCredits,
    LimitExceeded,
    ModelDisabled,
    UnknownModel,
    UnknownUsageUser,
    UsageRejected,
    UserDisabled,
)
from core.pricebook import ModelPrice, PriceBook
from core.pricing import format_credits, usage_cost_ucr
from core.rawdb import RawCursor
from core.usage_reports import PreparedReport, UsageReport, UsageResult
from core.usage_rollups import add_to_rollups, rollup_upsert


@dataclass(frozen=True)
class StoredEvent:
    """What a replay needs to know about a stored event."""

    payload_hash: str
    status: str
    reason_code: str | None
    reason: str | None
    cost_ucr: int | None
    balance_after_ucr: int | None


@dataclass(frozen=True)
class Account:
    user_id: int
    is_disabled: bool
    wallet_id: int
    balance_ucr: int
    reserved_ucr: int  # held for running calls (core.holds): not spendable here


def _precheck(
    report: UsageReport,
    account: Account | None,
    model: ModelPrice | None,
    cost: int | None,
    book: PriceBook,
) -> UsageRejected | None:
    """The reasons an event is refused before any balance is considered."""
    eid = report.event_id
    if account is None:
        return UnknownUsageUser(f"No user with email {report.user!r}.", event_id=eid)
    if account.is_disabled:
        return UserDisabled("This user's account is disabled.", event_id=eid)
    return event_refusal(report, model, cost, book)


def event_refusal(
    report: UsageReport, model: ModelPrice | None, cost: int | None, book: PriceBook
) -> UsageRejected | None:
    """The reasons an event is refused whoever reported it: an unknown or
    disabled model, or the per-event caps of ``book``'s settings."""
    eid = report.event_id
    limits = book.settings
    if model is None or cost is None:
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


def event_cost(report: UsageReport, model: ModelPrice | None, book: PriceBook) -> int | None:
    """What ``report`` costs at ``book`` (the exact integer formula); None
    for a model the book does not price."""
    if model is None:
        return None
    return usage_cost_ucr(
        report.input_tokens,
        report.output_tokens,
        model.input_uusd_per_m,
        model.output_uusd_per_m,
        book.credits_per_usd,
    )


def event_row(
    cur: RawCursor,
    key_id: int,
    book: PriceBook,
    prepared: PreparedReport,
    user_id: int | None,
    model: ModelPrice | None,
    cost: int | None,
    error: UsageRejected | None,
    balance_after_ucr: int | None,
    received_at: Any,
) -> dict[str, Any]:
    """The ``usage_events`` row of a decided event (``received_at`` as the
    database stores it, ``cur.db_value``)."""
    report = prepared.report
    return {
        "integration_key_id": key_id,
        "event_id": report.event_id,
        "payload_hash": prepared.payload_hash,
        "user_ref": report.user,
        "user_id": user_id,
        "model_name": report.model,
        "model_id": model.id if model else None,
        "input_tokens": report.input_tokens,
        "output_tokens": report.output_tokens,
        # Over a cap, tokens x price x rate may pass 64 bits; the
        # reason states it, the column keeps only what fits (core.bounds).
        "cost_ucr": None if cost is None else storable_amount(cost),
        "status": UsageStatus.REJECTED if error else UsageStatus.CHARGED,
        "reason_code": error.code if error else None,
        "reason": error.message if error else None,
        "credits_per_usd": book.credits_per_usd,
        "input_price_uusd_per_m": model.input_uusd_per_m if model else None,
        "output_price_uusd_per_m": model.output_uusd_per_m if model else None,
        "rate_version_id": book.rate_version_id,
        "price_version_id": model.price_version_id if model else None,
        "balance_after_ucr": balance_after_ucr,
        "conversation_id": report.conversation_id,
        "occurred_at": cur.db_value(report.occurred_at) or received_at,
        "received_at": received_at,
    }


def usage_memo(report: UsageReport) -> str:
    """The memo of a charged event's ``usage`` ledger entry."""
    return f"{report.model}: {report.input_tokens} in / {report.output_tokens} out"


class RequestWrites:
    """Decides each new event against the balances held, and collects its rows."""

    def __init__(
        self,
        cur: RawCursor,
        key_id: int,
        book: PriceBook,
        now: datetime,
        accounts: dict[str, Account],
    ) -> None:
        self.cur = cur
        self.key_id = key_id
        self.book = book
        self.now = now
        self.accounts = accounts
        self.balances = {a.wallet_id: a.balance_ucr for a in accounts.values()}
        self.events: list[dict[str, Any]] = []
        self.charges: list[tuple[int, int, int, str]] = []  # (event index, wallet, cost, memo)
        self.rollups: dict[tuple[int, int], list[int]] = {}  # (user, model) -> sums
        self.notifications: list[dict[str, Any]] = []
        self.refusals: list[dict[str, Any]] = []  # for core.outbox
        self._now_db = cur.db_value(now)

    def add(self, prepared: PreparedReport) -> tuple[UsageResult, StoredEvent]:
        """Decide one new event; its result, and what a replay of it must say."""
        book = self.book
        report, payload_hash = prepared.report, prepared.payload_hash
        account = self.accounts.get(prepared.email)
        model = book.models.get(report.model)
        cost = event_cost(report, model, book)
        error = _precheck(report, account, model, cost, book)
        balance: int | None = None
        if error is None:
            assert account is not None
            assert cost is not None
            assert model is not None
            held = self.balances[account.wallet_id]
            if held - account.reserved_ucr - cost >= -book.settings.overdraft_limit_ucr:
                balance = held - cost
                self.balances[account.wallet_id] = balance
                self._charged(report, account, model, cost)
            else:
                error = self._refused(report, account, cost)
        user_id = account.user_id if account else None
        self.events.append(
            event_row(
                self.cur,
                self.key_id,
                book,
                prepared,
                user_id,
                model,
                cost,
                error,
                balance,
                self._now_db,
            )
        )
        status = UsageStatus.REJECTED if error else UsageStatus.CHARGED
        reason_code, reason = (error.code, error.message) if error else (None, None)
        stored = StoredEvent(payload_hash, status, reason_code, reason, cost, balance)
        if error is not None:
            return UsageResult(report.event_id, UsageStatus.REJECTED, False, 0, None, error), stored
        assert cost is not None
        return UsageResult(report.event_id, UsageStatus.CHARGED, False, cost, balance), stored

    def _charged(self, report: UsageReport, account: Account, model: ModelPrice, cost: int) -> None:
        self.charges.append((len(self.events), account.wallet_id, cost, usage_memo(report)))
        sums = self.rollups.setdefault((account.user_id, model.id), [0, 0, 0, 0])
        sums[0] += 1
        sums[1] += report.input_tokens
        sums[2] += report.output_tokens
        sums[3] += cost

    def _refused(self, report: UsageReport, account: Account, cost: int) -> UsageRejected:
        self.notifications.append(
            {
                "user_id": account.user_id,
                "message": (
                    f"A {report.model} request costing {format_credits(cost)} credits "
                    "was refused because your balance is too low. Top up to continue."
                ),
                "created_at": self._now_db,
            }
        )
        self.refusals.append(
            {
                "user_id": account.user_id,
                "email": normalise_email(report.user),
                "event_id": report.event_id,
                "model": report.model,
                "cost_ucr": storable_amount(cost),
            }
        )
        return InsufficientCredits(
            f"This event costs {format_credits(cost)} credits; the balance is too low.",
            event_id=report.event_id,
            cost=format_credits(cost),
        )

    def flush(self, *, commit: bool = False) -> None:
        """Write the request's events, entries, balances and rollups.
        ``commit``: the caller's transaction ends here (on PostgreSQL the
        usual request's COMMIT then goes out with its one statement)."""
        cur = self.cur
        changes = [
            ledger.BalanceChange(a.wallet_id, a.balance_ucr, self.balances[a.wallet_id])
            for a in self.accounts.values()
            if self.balances[a.wallet_id] != a.balance_ucr
        ]
        if not cur.is_sqlite and len(self.events) == len(self.charges) == len(changes) == 1:
            # The usual request on PostgreSQL: one statement (core.ledger.charge_one_event).
            ledger.charge_one_event(
                cur,
                changes[0],
                self.events[0],
                self.charges[0][3],
                rollup_upsert(cur, self.now, self.rollups),
                commit=commit,
            )
            return
        ledger.set_balances(cur, changes)
        event_pks = cur.insert_with_ids("usage_events", self.events)
        rate = self.book.credits_per_usd
        ledger.post_usage_entries(
            cur,
            [
                ledger.UsageEntry(
                    wallet_id,
                    -cost,
                    self.events[index]["balance_after_ucr"],
                    f"usage:{event_pks[index]}",
                    rate,
                    memo,
                )
                for index, wallet_id, cost, memo in self.charges
            ],
            self.now,
        )
        add_to_rollups(cur, self.now, self.rollups)
        cur.executemany(_INSERT_NOTIFICATION, self.notifications)
        outbox.usage_rejected(cur, self.refusals)


_INSERT_NOTIFICATION = (
    "INSERT INTO notifications (user_id, kind, message, created_at)"
    " VALUES (:user_id, 'usage_rejected', :message, :created_at)"
)
