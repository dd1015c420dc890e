"""The invariants of ``core.ledger``, checked from the data, one function each.

``core.ledger.check_ledger`` (and ``flask check-ledger``) runs ``CHECKS`` in
order and reports every ``LedgerProblem`` found:

1. ``check_balances``: each wallet's balance is the sum of its entries.
2. ``check_usage_entries``: the ``usage`` entries add up to the charged
   events' costs (each charge has its entry, and no entry lacks its charge).
4. ``check_rollups``: ``usage_daily`` is the per (user, day, model) sum of
   charged events.
5. ``check_topups``: card payments tied to the ledger. For every top-up, with
   its entries found through ``topup_postings``:

   a. ``topup_net_problems``: the credits posted for it (``topup``,
      ``refund``, ``dispute`` and ``reversal`` entries together) equal what
      its recorded state implies: ``core.topup_ledger.expected_net`` of its
      status, quote, refunded cents and disputes. This catches a refund
      debited twice, a claw-back beyond what was bought, a won dispute never
      given back, a refunded amount recorded lower than what was debited,
      and a paid top-up never credited.
   b. ``topup_part_problems``: each part of that sum equals what the top-up
      records as posted for it: ``topup`` entries = ``credited_ucr``,
      ``refund`` entries = ``-refund_debited_ucr``, ``dispute`` +
      ``reversal`` entries = ``-sum of its disputes' debited_ucr``.
      ``reconcile`` posts only the difference to these, so a part out of
      step would be posted wrongly next time.

6. ``check_holds`` (``core.hold_checks``): the holds of ``core.holds``:
   reserved credits equal active holds, per wallet and per key; a key's spent
   credits equal its settled charges; one usage event per settled hold.

Top-ups are few next to usage events; 5 reads each top-up once, with its sums
grouped in the database. Sums of amounts are exact (``core.bounds``), so a
corrupt huge value is reported, not an overflow raised.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import case, func, literal, select, union_all
from sqlalchemy.orm import Session

from core.bounds import exact_sum
from core.enums import CHARGED_STATUSES, LedgerKind
from core.hold_checks import check_holds
from core.ledger import LedgerProblem
from core.models import (
    LedgerEntry,
    TopUp,
    TopUpDispute,
    TopUpPosting,
    UsageDaily,
    UsageEvent,
    Wallet,
)
from core.topup_ledger import expected_net


def check_balances(session: Session) -> list[LedgerProblem]:
    """Invariant 1: every wallet's balance equals the sum of its ledger entries."""
    # Summed as quotient and remainder by 10^6 and compared in Python, so a
    # corrupt huge or non-integer balance is reported, not an overflow raised
    # (see bounds.exact_sum).
    split = 1_000_000
    sums = (
        select(
            LedgerEntry.wallet_id,
            func.sum(LedgerEntry.amount_ucr // split).label("high"),
            func.sum(LedgerEntry.amount_ucr % split).label("low"),
        )
        .group_by(LedgerEntry.wallet_id)
        .subquery()
    )
    problems = []
    for row in session.execute(
        select(Wallet.id, Wallet.balance_ucr, sums.c.high, sums.c.low).outerjoin(
            sums, sums.c.wallet_id == Wallet.id
        )
    ):
        total = int(row.high or 0) * split + int(row.low or 0)
        if type(row.balance_ucr) is not int or row.balance_ucr != total:
            problems.append(
                LedgerProblem("balance != sum(ledger)", f"wallet {row.id}", total, row.balance_ucr)
            )
    return problems


def check_rollups(session: Session) -> list[LedgerProblem]:
    """Invariant 4: ``usage_daily`` equals the per (user, day, model) sums of charged events."""
    # Charged events minus rollup rows must net to zero in both columns;
    # UNION ALL catches rows missing on either side.
    signed = union_all(
        select(
            UsageEvent.user_id,
            func.date(UsageEvent.received_at).label("day"),
            UsageEvent.model_id,
            literal(1).label("events"),
            UsageEvent.cost_ucr.label("cost"),
        ).where(UsageEvent.status.in_(CHARGED_STATUSES)),
        select(
            UsageDaily.user_id,
            func.date(UsageDaily.day).label("day"),
            UsageDaily.model_id,
            (-UsageDaily.events).label("events"),
            (-UsageDaily.cost_ucr).label("cost"),
        ),
    ).subquery()
    return [
        LedgerProblem(
            "usage_daily != charged events",
            f"user {row.user_id} day {row.day} model {row.model_id}",
            0,
            row.cost,
        )
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
        )
    ]


def check_usage_entries(session: Session) -> list[LedgerProblem]:
    """Invariant 2: the ``usage`` ledger entries add up to the charged events' costs."""
    usage_ledger = -exact_sum(session, LedgerEntry.amount_ucr, LedgerEntry.kind == LedgerKind.USAGE)
    usage_events = exact_sum(session, UsageEvent.cost_ucr, UsageEvent.status.in_(CHARGED_STATUSES))
    if usage_ledger == usage_events:
        return []
    return [LedgerProblem("usage ledger != charged events", "all", usage_events, usage_ledger)]


# --- invariant 5: card top-ups ---------------------------------------------------------

_PART = case(
    (LedgerEntry.kind == LedgerKind.TOPUP, LedgerKind.TOPUP.value),
    (LedgerEntry.kind == LedgerKind.REFUND, LedgerKind.REFUND.value),
    else_=LedgerKind.DISPUTE.value,
)


@dataclass(frozen=True)
class TopUpFacts:
    """A top-up, its disputes, and its posted entries summed per part."""

    topup: TopUp
    disputes: list[TopUpDispute]
    posted: dict[str, int]  # part (topup, refund, dispute) -> sum of its entries

    @property
    def key(self) -> str:
        return f"top-up {self.topup.id} (wallet {self.topup.wallet_id})"


def topup_net_problems(facts: TopUpFacts) -> list[LedgerProblem]:
    """Invariant 5a: a top-up's entries together equal what its recorded state implies."""
    expected = expected_net(facts.topup, facts.disputes)
    found = sum(facts.posted.values())
    if found == expected:
        return []
    return [LedgerProblem("top-up entries != its recorded state", facts.key, expected, found)]


def topup_part_problems(facts: TopUpFacts) -> list[LedgerProblem]:
    """Invariant 5b: each part of a top-up's entries equals what it records as posted."""
    topup = facts.topup
    recorded = {
        LedgerKind.TOPUP: topup.credited_ucr,
        LedgerKind.REFUND: -topup.refund_debited_ucr,
        LedgerKind.DISPUTE: -sum(d.debited_ucr for d in facts.disputes),
    }
    return [
        LedgerProblem(
            f"top-up {part} entries != recorded posted",
            facts.key,
            amount,
            facts.posted.get(part, 0),
        )
        for part, amount in recorded.items()
        if facts.posted.get(part, 0) != amount
    ]


def topup_facts(session: Session) -> list[TopUpFacts]:
    """Every top-up with its disputes and posted sums, in id order (three queries)."""
    posted: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for topup_id, part, total in session.execute(
        select(TopUpPosting.topup_id, _PART, func.sum(LedgerEntry.amount_ucr))
        .join(LedgerEntry, LedgerEntry.id == TopUpPosting.ledger_entry_id)
        .group_by(TopUpPosting.topup_id, _PART)
    ):
        posted[topup_id][part] = int(total)
    disputes: dict[int, list[TopUpDispute]] = defaultdict(list)
    for dispute in session.scalars(select(TopUpDispute)):
        disputes[dispute.topup_id].append(dispute)
    return [
        TopUpFacts(topup, disputes[topup.id], posted.get(topup.id, {}))
        for topup in session.scalars(select(TopUp).order_by(TopUp.id))
    ]


def check_topups(session: Session) -> list[LedgerProblem]:
    """Invariant 5: 5a then 5b for each top-up, in id order."""
    return [
        problem
        for facts in topup_facts(session)
        for check in (topup_net_problems, topup_part_problems)
        for problem in check(facts)
    ]


CHECKS: tuple[Callable[[Session], list[LedgerProblem]], ...] = (
    check_balances,
    check_rollups,
    check_usage_entries,
    check_topups,
    check_holds,
)
