"""check-ledger ties card payments to the ledger: each top-up's entries must
add up to what its recorded state implies (core.ledger_checks).

The broken states below are the ones the Stripe defects left behind: two
cumulative refunds both debited with ``refunded_cents`` ending at the smaller
one, a won dispute never given back, a paid top-up never credited. Existing
databases get their entries linked to their top-ups by migration 0004.
"""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError

from core import ledger, ledger_checks, migrate, payments, stripe_events
from core.models import TopUp, TopUpDispute, TopUpPosting
from core.pricing import MICRO as CR
from tests.conftest import Billing
from tests.stripe_fake import FakeStripe, dispute_event, refund_event
from tests.stripe_shop import gateway, paid_topup, topup_row

C = 100_000 * CR  # $10 at 10,000 credits per USD


def check(shop: Flask) -> tuple[int, str]:
    result = shop.test_cli_runner().invoke(args=["check-ledger"])
    return result.exit_code, result.output


def test_clean_payment_history_checks_ok(shop: Flask, fake_stripe: FakeStripe) -> None:
    billing = Billing(shop)
    user = billing.user("alice@example.com")
    session_id = paid_topup(shop, fake_stripe, billing, user.id, 10)
    for event in (
        dispute_event("evt_d1", "charge.dispute.created", session_id, "dp_1", 1000, "open"),
        dispute_event("evt_d2", "charge.dispute.closed", session_id, "dp_1", 1000, "won"),
    ):
        stripe_events.handle_event(billing.db, gateway(shop), event)
    assert check(shop) == (0, "ledger ok\n")


@pytest.mark.parametrize("broken", ["won_not_given_back", "paid_not_credited", "refund_lowered"])
def test_a_topup_whose_entries_disagree_with_its_state_fails_the_check(
    shop: Flask, fake_stripe: FakeStripe, broken: str
) -> None:
    billing = Billing(shop)
    user = billing.user("alice@example.com")
    session_id = paid_topup(shop, fake_stripe, billing, user.id, 10)
    topup_id = topup_row(billing, session_id).id
    if broken == "won_not_given_back":  # the "won" recorded, its reversal never posted
        created = dispute_event("evt_d", "charge.dispute.created", session_id, "dp", 1000, "open")
        stripe_events.handle_event(billing.db, gateway(shop), created)
        change = update(TopUpDispute).where(TopUpDispute.id == "dp").values(status="won")
        expected, found = C, 0
    elif broken == "paid_not_credited":  # a second top-up marked paid, never credited
        payments.begin_checkout(
            billing.db, gateway(shop), billing.prices, user.id, 10, "https://x/s", "https://x/c"
        )
        topup_id = topup_row(billing, fake_stripe.last_session_id()).id
        change = update(TopUp).where(TopUp.id == topup_id).values(status="paid")
        expected, found = C, 0
    else:  # half refunded and debited, then the refunded amount recorded lower
        refund = refund_event("evt_r", session_id, 1000, 500)
        stripe_events.handle_event(billing.db, gateway(shop), refund)
        change = update(TopUp).where(TopUp.id == topup_id).values(refunded_cents=250)
        expected, found = C - C // 4, C // 2
    assert check(shop) == (0, "ledger ok\n")
    with billing.db.write() as s:
        s.execute(change)

    code, output = check(shop)
    assert code == 1
    key = f"top-up {topup_id} (wallet {user.wallet.id})"
    assert output.splitlines() == [
        f"top-up entries != its recorded state: {key}: expected {expected}, found {found}"
    ]


def _old_style_history(shop: Flask, billing: Billing) -> tuple[int, int, int]:
    """At revision 0003, as the code before 0004 wrote it: a clean top-up with a
    refund and a won dispute, and the race's leftovers on another: refunds of
    $5 and then $2.50 (cumulative) both debited, ``refunded_cents`` at 250.
    Returns (clean top-up, raced top-up, wallet)."""
    db = billing.db
    migrate.downgrade(db, "0003")
    with db.write() as s:
        # The user as revision 0003 stores it (today's User model has more columns).
        s.execute(
            text(
                "INSERT INTO users (email, password_hash, role, is_disabled, created_at)"
                " VALUES ('alice@example.com', 'x', 'user', false, CURRENT_TIMESTAMP)"
            )
        )
        s.execute(
            text(
                "INSERT INTO wallets (user_id, balance_ucr, flagged, created_at)"
                " SELECT id, 0, false, CURRENT_TIMESTAMP FROM users"
            )
        )
        wallet_id = s.execute(text("SELECT id FROM wallets")).scalar_one()
        insert_topup = text(
            "INSERT INTO topups (id, user_id, wallet_id, amount_cents, credits_ucr,"
            " credits_per_usd, rate_version_id, status, checkout_session_id, refunded_cents,"
            " credited_ucr, refund_debited_ucr, created_at)"
            " VALUES (:id, 1, :wallet, 1000, :c, 10000, 1, 'paid', :cs, :refunded, :c,"
            " :refund_debited, CURRENT_TIMESTAMP)"
        )
        s.execute(
            insert_topup,
            {"id": 1, "wallet": wallet_id, "c": C, "cs": "cs_1", "refunded": 200,
             "refund_debited": C // 5},
        )  # fmt: skip
        s.execute(
            insert_topup,
            {"id": 2, "wallet": wallet_id, "c": C, "cs": "cs_2", "refunded": 250,
             "refund_debited": C // 4},
        )  # fmt: skip
        s.execute(
            text(
                "INSERT INTO topup_disputes (id, topup_id, amount_cents, status, debited_ucr,"
                " created_at) VALUES ('dp_1', 1, 1000, 'won', 0, CURRENT_TIMESTAMP)"
            )
        )
        for kind, amount, reference in [
            ("topup", C, "topup:cs_1"),
            ("refund", -C // 5, "refund:1:200"),
            ("dispute", -(C - C // 5), "dispute:dp_1"),
            ("reversal", C - C // 5, "dispute-won:dp_1"),
            ("topup", C, "topup:cs_2"),
            ("refund", -C // 2, "refund:2:500"),
            ("refund", -C // 4, "refund:2:250"),
        ]:
            # Plain SQL: today's post_entry also keeps tables 0003 does not have.
            balance = s.execute(
                text(
                    "UPDATE wallets SET balance_ucr = balance_ucr + :a WHERE id = :w"
                    " RETURNING balance_ucr"
                ),
                {"a": amount, "w": wallet_id},
            ).scalar_one()
            s.execute(
                text(
                    "INSERT INTO ledger_entries (wallet_id, amount_ucr, balance_after_ucr, kind,"
                    " reference, memo, created_at)"
                    " VALUES (:w, :a, :b, :k, :r, '', CURRENT_TIMESTAMP)"
                ),
                {"w": wallet_id, "a": amount, "b": balance, "k": kind, "r": reference},
            )
    migrate.upgrade(db)
    return 1, 2, wallet_id


def test_migration_links_old_entries_and_the_check_finds_the_race(
    shop: Flask, fake_stripe: FakeStripe
) -> None:
    billing = Billing(shop)
    clean, raced, wallet_id = _old_style_history(shop, billing)
    with billing.db.read_session() as s:
        links = s.execute(
            select(TopUpPosting.topup_id, TopUpPosting.ledger_entry_id).order_by(
                TopUpPosting.ledger_entry_id
            )
        ).all()
    assert [topup for topup, _ in links] == [clean] * 4 + [raced] * 3
    code, output = check(shop)
    assert code == 1
    key = f"top-up {raced} (wallet {wallet_id})"
    assert output.splitlines() == [
        f"top-up entries != its recorded state: {key}: expected {C - C // 4}, found {C // 4}",
        f"top-up refund entries != recorded posted: {key}: expected {-C // 4}, "
        f"found {-(C // 2 + C // 4)}",
    ]


def test_topup_postings_refuse_update_and_delete(shop: Flask, fake_stripe: FakeStripe) -> None:
    billing = Billing(shop)
    user = billing.user("alice@example.com")
    paid_topup(shop, fake_stripe, billing, user.id, 10)
    for statement in ("UPDATE topup_postings SET topup_id = 1", "DELETE FROM topup_postings"):
        with pytest.raises(DBAPIError, match="append-only"), billing.db.write() as s:
            s.execute(text(statement))
    assert check(shop) == (0, "ledger ok\n")


def test_each_invariant_has_its_own_check_and_check_ledger_runs_them_all(
    billing: Billing,
) -> None:
    billing.user("ivy@example.com", 10 * CR)
    billing.debit("e1", "ivy@example.com")
    with billing.db.write() as s:
        s.execute(text("UPDATE wallets SET balance_ucr = balance_ucr + 1"))
        s.execute(text("UPDATE usage_daily SET events = events + 1"))
        s.execute(text("UPDATE wallets SET reserved_ucr = reserved_ucr + 1"))
    with billing.db.read_session() as s:
        found = {check.__name__: check(s) for check in ledger_checks.CHECKS}
        everything = ledger.check_ledger(s)
    assert {name: [p.what for p in problems] for name, problems in found.items()} == {
        "check_balances": ["balance != sum(ledger)"],
        "check_rollups": ["usage_daily != charged events"],
        "check_usage_entries": [],
        "check_topups": [],
        "check_holds": ["reserved != active holds"],
    }
    assert everything == [p for problems in found.values() for p in problems]
    for check in (
        *ledger_checks.CHECKS,
        ledger_checks.topup_net_problems,
        ledger_checks.topup_part_problems,
    ):
        assert check.__doc__ and "\n" not in check.__doc__.strip()
