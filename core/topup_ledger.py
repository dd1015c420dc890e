"""The ledger side of a card top-up: what it owes the wallet, posted exactly once.

A top-up's *facts* are its row and its disputes: status, the credits quoted
(C) for the amount charged (A cents), the largest cumulative refund Stripe
reported (R cents) and each dispute's amount and outcome. ``reconcile``
turns the facts into ledger entries; ``expected_net`` says what they must add
up to, and ``core.ledger_checks`` compares the two for every top-up.

The rule
--------
* Paid: the wallet gets C, once (``topup`` entry). Not paid: nothing, and no
  refund or dispute takes anything either.
* Claw-backs. Each claim takes back its share of the credits,
  ``C * min(cents, A) // A``: the refund (R) and every dispute that is open
  or lost. A won dispute claims nothing.
* A refund and a dispute on the same charge never take the same money back
  twice: the claims together take back at most what was bought,
  ``clawed = min(C, refund share + sum of open/lost dispute shares)``, so
  ``net = C - clawed`` and a top-up's entries never add up to less than
  zero (a wallet can still go negative if the credits were already spent;
  it is then flagged for an admin).
* Claims are served in the order they are applied, each up to what is left
  (refunds before disputes when both appear in one transaction). A won
  dispute gives back exactly what that dispute took (``reversal`` entry),
  and in the same transaction any claim that had been cut short takes what
  it is owed from the room this frees. Whatever the order of events, the
  final ``net`` is the same; only which entry carries which part may differ.

What has been posted is kept per part: ``credited_ucr``,
``refund_debited_ucr`` and each dispute's ``debited_ucr``; every posting is
also linked to its top-up in ``topup_postings``.

Exactly once
------------
The caller holds the top-up row locked (``lock_topup``: on PostgreSQL
``SELECT … FOR NO KEY UPDATE``, the row lock an UPDATE takes, which two
reconcilers cannot hold at once but which lets inserts referencing the
top-up through a foreign key go on; on SQLite ``BEGIN IMMEDIATE`` under the
writer lock already serialises every writer), so the parts read here are the
committed ones and nobody else reconciles this top-up until we commit. Each posting
carries a reference that is new by construction (the part's running total
after it, which only grows, or the one-off ``dispute-won:``). A reference
that already exists therefore means the parts and the ledger disagree;
instead of treating it as "already done" (``post_entry``'s idempotency,
right for usage events, wrong here), ``PostingConflict`` rolls the
transaction back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from core import metrics, outbox
from core.enums import DisputeStatus, LedgerKind, TopUpStatus
from core.errors import LedgerError
from core.ledger import post_entry
from core.models import Notification, TopUp, TopUpDispute, TopUpPosting, Wallet
from core.pricing import format_cents, format_credits_display
from core.rawdb import RawCursor

CLAIMING = (DisputeStatus.OPEN, DisputeStatus.LOST)  # dispute outcomes that keep their claw-back


class PostingConflict(LedgerError):
    """Raised when a top-up's posting finds its ledger reference already used."""

    code = "posting_conflict"


def lock_topup(session: Session, *where: Any) -> TopUp | None:
    """The top-up matching ``where``, locked until the transaction ends and
    read fresh (not from the session's identity map)."""
    return session.scalar(
        select(TopUp)
        .where(*where)
        .order_by(TopUp.id)
        .limit(1)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )


def share(topup: TopUp, cents: int) -> int:
    """The credits ``cents`` of this top-up's charge stand for (floor, exact)."""
    return topup.credits_ucr * min(max(cents, 0), topup.amount_cents) // topup.amount_cents


def expected_net(topup: TopUp, disputes: Iterable[TopUpDispute]) -> int:
    """What the facts say the top-up's entries must add up to."""
    if topup.status != TopUpStatus.PAID:
        return 0
    claims = share(topup, topup.refunded_cents) + sum(
        share(topup, d.amount_cents) for d in disputes if d.status in CLAIMING
    )
    return topup.credits_ucr - min(topup.credits_ucr, claims)


def disputes_of(session: Session, topup_id: int) -> Sequence[TopUpDispute]:
    return session.scalars(
        select(TopUpDispute)
        .where(TopUpDispute.topup_id == topup_id)
        .order_by(TopUpDispute.created_at, TopUpDispute.id)
        .execution_options(populate_existing=True)
    ).all()


def reconcile(session: Session, topup: TopUp) -> None:
    """Post what the facts say is owed and has not been posted yet.

    The caller holds ``topup`` locked (``lock_topup``) in this transaction.
    """
    paid = topup.status == TopUpStatus.PAID
    disputes = disputes_of(session, topup.id)
    if paid and topup.credited_ucr < topup.credits_ucr:
        balance = _post(
            session,
            topup,
            topup.credits_ucr - topup.credited_ucr,
            LedgerKind.TOPUP,
            f"topup:{topup.checkout_session_id or topup.id}",
            f"${topup.amount_cents // 100} top-up",
            credits_per_usd=topup.credits_per_usd,
        )
        outbox.topup_paid(
            RawCursor.of_session(session),
            topup.id,
            topup.user_id,
            topup.amount_cents,
            topup.credits_ucr - topup.credited_ucr,
            balance,
        )
        topup.credited_ucr = topup.credits_ucr
        metrics.count_topup()  # after the commit, whichever path paid it

    for dispute in disputes:  # a won dispute gives back what it took
        if dispute.status not in CLAIMING and dispute.debited_ucr > 0:
            _post(
                session,
                topup,
                dispute.debited_ucr,
                LedgerKind.REVERSAL,
                f"dispute-won:{dispute.id}",
                "card dispute won",
            )
            dispute.debited_ucr = 0

    room = topup.credited_ucr - topup.refund_debited_ucr - sum(d.debited_ucr for d in disputes)
    if paid:
        take = min(share(topup, topup.refunded_cents) - topup.refund_debited_ucr, room)
        if take > 0:
            topup.refund_debited_ucr += take
            refunded = format_cents(min(topup.refunded_cents, topup.amount_cents))
            _debit(
                session,
                topup,
                take,
                LedgerKind.REFUND,
                f"refund:{topup.id}@{topup.refund_debited_ucr}",
                f"refund of {refunded}",
            )
            room -= take
        for dispute in disputes:
            if dispute.status not in CLAIMING:
                continue
            take = min(share(topup, dispute.amount_cents) - dispute.debited_ucr, room)
            if take > 0:
                dispute.debited_ucr += take
                _debit(
                    session,
                    topup,
                    take,
                    LedgerKind.DISPUTE,
                    f"dispute:{dispute.id}@{dispute.debited_ucr}",
                    "card dispute",
                )
                room -= take
    session.flush()


def _post(
    session: Session,
    topup: TopUp,
    amount: int,
    kind: str,
    reference: str,
    memo: str,
    credits_per_usd: int | None = None,
) -> int:
    """One ledger entry for this top-up, linked to it; the balance after."""
    posting = post_entry(
        session,
        topup.wallet_id,
        amount,
        kind,
        reference=reference,
        memo=memo,
        credits_per_usd=credits_per_usd,
    )
    assert posting is not None  # no floor
    if posting.duplicate:
        raise PostingConflict(
            f"Top-up {topup.id}: ledger reference {reference!r} is already used; "
            "its recorded parts and the ledger disagree.",
            topup_id=topup.id,
        )
    session.execute(
        insert(TopUpPosting).values(ledger_entry_id=posting.entry_id, topup_id=topup.id)
    )
    return posting.balance_ucr


def _debit(
    session: Session, topup: TopUp, amount: int, kind: str, reference: str, memo: str
) -> None:
    balance = _post(session, topup, -amount, kind, reference, memo)
    session.add(
        Notification(
            user_id=topup.user_id,
            kind=kind,
            message=(
                f"{format_credits_display(amount)} credits were removed: {memo} "
                f"on your {format_cents(topup.amount_cents)} top-up."
            ),
        )
    )
    if kind == LedgerKind.REFUND:
        outbox.topup_refunded(
            RawCursor.of_session(session), topup.id, topup.user_id, topup.amount_cents, amount, memo
        )
    if balance < 0:
        # Credits already spent were refunded or disputed: an admin should look.
        session.execute(update(Wallet).where(Wallet.id == topup.wallet_id).values(flagged=True))
