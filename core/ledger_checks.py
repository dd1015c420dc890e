"""Invariant 5 of ``core.ledger``: card payments tied to the ledger.

For every top-up, with its entries found through ``topup_postings``:

a. The credits posted for it (``topup``, ``refund``, ``dispute`` and
   ``reversal`` entries together) equal what its recorded state implies:
   ``core.topup_ledger.expected_net`` of its status, quote, refunded cents
   and disputes. This catches a refund debited twice, a claw-back beyond
   what was bought, a won dispute never given back, a refunded amount
   recorded lower than what was debited, and a paid top-up never credited.
b. Each part of that sum equals what the top-up records as posted for it:
   ``topup`` entries = ``credited_ucr``, ``refund`` entries =
   ``-refund_debited_ucr``, ``dispute`` + ``reversal`` entries = ``-sum of
   its disputes' debited_ucr``. ``reconcile`` posts only the difference to
   these, so a part out of step would be posted wrongly next time.

Top-ups are few next to usage events; this reads each top-up once, with its
sums grouped in the database.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from core.enums import LedgerKind
from core.ledger import LedgerProblem
from core.models import LedgerEntry, TopUp, TopUpDispute, TopUpPosting
from core.topup_ledger import expected_net

_PART = case(
    (LedgerEntry.kind == LedgerKind.TOPUP, LedgerKind.TOPUP.value),
    (LedgerEntry.kind == LedgerKind.REFUND, LedgerKind.REFUND.value),
    else_=LedgerKind.DISPUTE.value,
)


def check_topups(session: Session) -> list[LedgerProblem]:
    """Invariants a and b of the module docstring, for every top-up."""
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

    problems: list[LedgerProblem] = []
    for topup in session.scalars(select(TopUp).order_by(TopUp.id)):
        parts = posted.get(topup.id, {})
        key = f"top-up {topup.id} (wallet {topup.wallet_id})"
        expected = expected_net(topup, disputes[topup.id])
        found = sum(parts.values())
        if found != expected:
            what = "top-up entries != its recorded state"
            problems.append(LedgerProblem(what, key, expected, found))
        recorded = {
            LedgerKind.TOPUP: topup.credited_ucr,
            LedgerKind.REFUND: -topup.refund_debited_ucr,
            LedgerKind.DISPUTE: -sum(d.debited_ucr for d in disputes[topup.id]),
        }
        for part, amount in recorded.items():
            if parts.get(part, 0) != amount:
                problems.append(
                    LedgerProblem(
                        f"top-up {part} entries != recorded posted", key, amount, parts.get(part, 0)
                    )
                )
    return problems
