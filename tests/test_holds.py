"""Holds (core.holds): reserve the worst case, settle or release exactly once."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from core import audit, holds, ledger, user_keys
from core.clock import utcnow
from core.errors import ConcurrencyLimited, InsufficientCredits, KeyLimitReached
from core.gateway.models import Hold as HoldRow
from core.gateway.models import UserApiKey
from core.models import LedgerEntry, UsageEvent
from tests.conftest import USING_PG, Billing
from tests.hold_helpers import request_for, take, wallet

CR = 1_000_000


# gpt-4o-mini at the default rate: 1,000 in + 500 out = 4.5 credits.
def test_a_hold_reserves_and_a_settle_charges_the_actual_cost(billing: Billing) -> None:
    billing.user("kim@example.com", 10 * CR)
    hold = take(billing, request_for(billing, "kim@example.com"))
    assert hold.amount_ucr == 4_500_000
    assert wallet(billing, "kim@example.com") == (10 * CR, 4_500_000)
    with billing.db.raw_write() as cur:
        settled = holds.settle(cur, hold, 100, 50, utcnow())
    # 100 in + 50 out = 0.45 credits, the rest of the hold freed.
    assert (settled.charged_ucr, settled.shortfall_ucr, settled.duplicate) == (450_000, 0, False)
    assert wallet(billing, "kim@example.com") == (10 * CR - 450_000, 0)
    with billing.db.read_session() as s:
        event = s.scalar(select(UsageEvent).where(UsageEvent.hold_id == hold.id))
        entry = s.scalar(select(LedgerEntry).where(LedgerEntry.reference == f"usage:{event.id}"))
        row = s.get(HoldRow, hold.id)
    assert event.status == "charged" and event.cost_ucr == 450_000 and event.source == "laptop"
    assert entry.amount_ucr == -450_000 and entry.balance_after_ucr == 10 * CR - 450_000
    assert (row.status, row.charged_ucr) == ("settled", 450_000)
    assert billing.problems() == []


def test_the_charge_is_capped_at_the_hold_and_the_shortfall_recorded(billing: Billing) -> None:
    billing.user("kim@example.com", 10 * CR)
    hold = take(billing, request_for(billing, "kim@example.com"))
    with billing.db.raw_write() as cur:
        settled = holds.settle(cur, hold, 2000, 1000, utcnow())  # 9 credits actual
    assert (settled.charged_ucr, settled.shortfall_ucr) == (4_500_000, 4_500_000)
    with billing.db.read_session() as s:
        assert s.get(HoldRow, hold.id).shortfall_ucr == 4_500_000
    assert billing.problems() == []


def test_settle_and_release_happen_once_whoever_comes_second(billing: Billing) -> None:
    billing.user("kim@example.com", 10 * CR)
    hold = take(billing, request_for(billing, "kim@example.com"))
    with billing.db.raw_write() as cur:
        first = holds.settle(cur, hold, 100, 50, utcnow())
    with billing.db.raw_write() as cur:
        again = holds.settle(cur, hold, 1000, 500, utcnow())
        assert not holds.release(cur, hold, "test", utcnow())
    assert again.duplicate and again.charged_ucr == first.charged_ucr
    assert again.usage_event_id == first.usage_event_id
    assert wallet(billing, "kim@example.com") == (10 * CR - 450_000, 0)
    other = take(billing, request_for(billing, "kim@example.com"))
    with billing.db.raw_write() as cur:
        assert holds.release(cur, other, "upstream_error", utcnow())
        late = holds.settle(cur, other, 1000, 500, utcnow())
    assert late.duplicate and late.charged_ucr == 0
    assert wallet(billing, "kim@example.com") == (10 * CR - 450_000, 0)
    with billing.db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(UsageEvent)) == 1
    assert billing.problems() == []


def test_available_not_balance_decides_and_a_refusal_changes_nothing(billing: Billing) -> None:
    billing.user("kim@example.com", 10 * CR)
    take(billing, request_for(billing, "kim@example.com"))
    take(billing, request_for(billing, "kim@example.com"))  # 9 of 10 credits reserved
    with pytest.raises(InsufficientCredits) as refused:
        take(billing, request_for(billing, "kim@example.com"))
    assert refused.value.details == {"required": "4.5", "available": "1"}
    assert wallet(billing, "kim@example.com") == (10 * CR, 9 * CR)
    # The overdraft limit lets available go down to minus the limit, no further.
    take(billing, request_for(billing, "kim@example.com", overdraft=4 * CR))
    assert wallet(billing, "kim@example.com") == (10 * CR, 13_500_000)
    assert billing.problems() == []


def test_a_keys_limit_counts_spent_and_reserved(billing: Billing) -> None:
    kim = billing.user("kim@example.com", 100 * CR)
    with billing.db.write() as s:
        key, _ = user_keys.create(s, audit.CLI, kim.id, "ci", limit_ucr=10 * CR)
        key_id = key.id
    first = take(billing, request_for(billing, "kim@example.com", key_id=key_id))
    with billing.db.raw_write() as cur:
        holds.settle(cur, first, 1000, 500, utcnow())  # 4.5 spent
    take(billing, request_for(billing, "kim@example.com", key_id=key_id))  # 4.5 reserved
    with pytest.raises(KeyLimitReached):
        take(billing, request_for(billing, "kim@example.com", key_id=key_id))
    with billing.db.read_session() as s:
        row = s.get(UserApiKey, key_id)
        assert (row.spent_ucr, row.reserved_ucr) == (4_500_000, 4_500_000)
    # The refused hold rolled back with its wallet reservation.
    assert wallet(billing, "kim@example.com") == (100 * CR - 4_500_000, 4_500_000)
    assert billing.problems() == []


def test_a_users_running_calls_are_capped(billing: Billing) -> None:
    billing.user("kim@example.com", 100 * CR)
    for _ in range(3):
        take(billing, request_for(billing, "kim@example.com"), max_active=3)
    with pytest.raises(ConcurrencyLimited):
        take(billing, request_for(billing, "kim@example.com"), max_active=3)
    assert wallet(billing, "kim@example.com")[1] == 3 * 4_500_000


def test_overdue_holds_expire_at_the_next_hold_and_in_a_sweep(billing: Billing) -> None:
    billing.user("kim@example.com", 10 * CR)
    billing.user("lee@example.com", 10 * CR)
    stale = take(billing, request_for(billing, "kim@example.com", ttl=timedelta(seconds=-1)))
    other = take(billing, request_for(billing, "lee@example.com", ttl=timedelta(seconds=-1)))
    take(billing, request_for(billing, "kim@example.com"))  # expires kim's stale hold first
    assert wallet(billing, "kim@example.com") == (10 * CR, 4_500_000)
    assert wallet(billing, "lee@example.com") == (10 * CR, 4_500_000)
    with billing.db.raw_write() as cur:
        assert holds.expire_overdue(cur, utcnow()) == [other.id]
    assert wallet(billing, "lee@example.com") == (10 * CR, 0)
    with billing.db.read_session() as s:
        assert s.get(HoldRow, stale.id).status == "expired"
    with billing.db.raw_write() as cur:  # an expired hold cannot be charged any more
        assert holds.settle(cur, stale, 1000, 500, utcnow()).duplicate
    assert wallet(billing, "kim@example.com") == (10 * CR, 4_500_000)
    assert billing.problems() == []


def test_settle_prices_with_the_snapshot_not_todays_prices(billing: Billing) -> None:
    billing.user("kim@example.com", 10 * CR)
    hold = take(billing, request_for(billing, "kim@example.com"))
    billing.set_price("gpt-4o-mini", 15_000_000, 60_000_000)  # 100 x dearer mid-call
    billing.set_rate(1_000_000)
    with billing.db.raw_write() as cur:
        assert holds.settle(cur, hold, 1000, 500, utcnow()).charged_ucr == 4_500_000


@pytest.mark.slow
def test_concurrent_holds_never_reserve_more_than_is_available(billing: Billing) -> None:
    """K holds' worth of credits, 5K takers at once: exactly K succeed."""
    k = 6
    billing.user("kim@example.com", k * 4_500_000)
    request = request_for(billing, "kim@example.com")
    start, outcomes, lock = threading.Barrier(5 * k), [], threading.Lock()

    def taker() -> None:
        start.wait()
        try:
            take(billing, request)
            result = "held"
        except InsufficientCredits:
            result = "refused"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=taker) for _ in range(5 * k)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("held") == k and outcomes.count("refused") == 4 * k
    balance, reserved = wallet(billing, "kim@example.com")
    assert (balance, reserved) == (k * 4_500_000, k * 4_500_000)
    assert billing.problems() == []


def test_an_estimated_settle_is_a_charge_everywhere(billing: Billing) -> None:
    billing.user("kim@example.com", 10 * CR)
    hold = take(billing, request_for(billing, "kim@example.com"))
    with billing.db.raw_write() as cur:
        settled = holds.settle(cur, hold, 100, 50, utcnow(), estimated=True)
    with billing.db.read_session() as s:
        event = s.scalar(select(UsageEvent).where(UsageEvent.hold_id == hold.id))
    assert event.status == "estimated" and event.cost_ucr == settled.charged_ucr == 450_000
    assert billing.problems() == []  # rollups and usage entries count it


def test_check_ledger_sees_broken_hold_bookkeeping(billing: Billing) -> None:
    kim = billing.user("kim@example.com", 10 * CR)
    with billing.db.write() as s:
        key, _ = user_keys.create(s, audit.CLI, kim.id, "ci")
        key_id = key.id
    first = take(billing, request_for(billing, "kim@example.com", key_id=key_id))
    with billing.db.raw_write() as cur:
        holds.settle(cur, first, 100, 50, utcnow())
    take(billing, request_for(billing, "kim@example.com", key_id=key_id))
    assert billing.problems() == []
    with billing.db.write() as s:
        s.execute(text("UPDATE user_api_keys SET reserved_ucr = 0, spent_ucr = 1"))
        s.execute(text("UPDATE wallets SET reserved_ucr = 0"))
        s.execute(text("UPDATE holds SET status = 'released' WHERE id = :id"), {"id": first.id})
    assert sorted(p.what for p in billing.problems()) == [
        "key reserved != active holds",
        "key spent != settled charges",
        "reserved != active holds",
        "usage events of a hold",
    ]


def test_reported_usage_and_admin_debits_cannot_spend_reserved_credits(billing: Billing) -> None:
    billing.user("kim@example.com", 10 * CR)
    take(billing, request_for(billing, "kim@example.com"))  # 4.5 of 10 reserved
    assert billing.debit("e1", "kim@example.com").status == "charged"  # 4.5 of 5.5 available
    assert billing.debit("e2", "kim@example.com", 400, 0).status == "charged"  # 0.6 of 1
    with pytest.raises(
        InsufficientCredits
    ):  # the balance (4.9) would cover 4.5; available (0.4) not
        billing.debit("e3", "kim@example.com")
    assert wallet(billing, "kim@example.com") == (10 * CR - 5_100_000, 4_500_000)
    with pytest.raises(InsufficientCredits), billing.db.write() as s:
        ledger.adjust(s, audit.CLI, "kim@example.com", -CR, "claw back")
    with billing.db.write() as s:
        ledger.adjust(s, audit.CLI, "kim@example.com", -400_000, "claw back the rest")
    assert wallet(billing, "kim@example.com") == (4_500_000, 4_500_000)
    assert billing.problems() == []


@pytest.mark.skipif(not USING_PG, reason="row locks: SQLite serialises its writers")
def test_a_refused_hold_does_not_deadlock_with_a_writer_holding_the_wallet(
    billing: Billing,
) -> None:
    """A writer holds the wallet's row (as the usage API's ``FOR UPDATE``) and
    then updates the user's key, the documented order. A hold refused for
    funds meanwhile waits for the wallet (its INSERT's foreign-key check)
    without holding the key, so both finish: no deadlock, a plain refusal."""
    kim = billing.user("kim@example.com", CR)  # less than the 4.5 credits a hold needs
    with billing.db.write() as s:
        key, _ = user_keys.create(s, audit.CLI, kim.id, "ci")
        key_id, wallet_id = key.id, kim.wallet.id
    request = request_for(billing, "kim@example.com", key_id=key_id)
    outcome: list[BaseException | holds.Hold] = []

    def taker() -> None:
        try:
            outcome.append(take(billing, request))
        except BaseException as exc:  # reported by the assertion below
            outcome.append(exc)

    waiting = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
    )
    with billing.db.engine.connect() as writer, billing.db.engine.connect() as watcher:
        writer.execute(text("SELECT id FROM wallets WHERE id = :w FOR UPDATE"), {"w": wallet_id})
        thread = threading.Thread(target=taker)
        thread.start()
        deadline = time.monotonic() + 10
        while watcher.execute(waiting).scalar_one() == 0 and thread.is_alive():
            assert time.monotonic() < deadline, "the hold never waited for the wallet"
            time.sleep(0.01)
            watcher.rollback()
        # Waits for the taker only if it holds the key: a deadlock, found in 1 s.
        writer.execute(
            text("UPDATE user_api_keys SET reserved_ucr = reserved_ucr WHERE id = :k"),
            {"k": key_id},
        )
        writer.commit()
        thread.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], InsufficientCredits), outcome
    assert wallet(billing, "kim@example.com") == (CR, 0)
    assert billing.problems() == []
