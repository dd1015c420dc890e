"""The ledger (spec §2): exact, idempotent debits; rejections kept; history."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from core import audit, ledger, usage_debits
from core.errors import (
    Conflict,
    InsufficientCredits,
    LimitExceeded,
    ModelDisabled,
    UnknownModel,
    UnknownUsageUser,
    UserDisabled,
    ValidationError,
)
from core.models import (
    AuditEntry,
    LedgerEntry,
    ModelPriceChange,
    Notification,
    RateChange,
    UsageDaily,
    UsageEvent,
    User,
)
from core.pricing import MICRO as CR
from tests.conftest import Billing
from tests.ledger_helpers import credit


def events(billing: Billing) -> list[UsageEvent]:
    with billing.db.read_session() as s:
        return list(s.scalars(select(UsageEvent).order_by(UsageEvent.id)))


def test_debit_charges_once_with_ledger_entry_and_rollup(billing: Billing) -> None:
    billing.user("alice@example.com", 100 * CR)
    result = billing.debit("msg-1", "alice@example.com")
    assert (result.status, result.duplicate) == ("charged", False)
    assert result.cost_ucr == 4_500_000
    assert result.balance_ucr == 95_500_000
    assert billing.balance("alice@example.com") == 95_500_000

    with billing.db.read_session() as s:
        entry = s.scalars(select(LedgerEntry).where(LedgerEntry.kind == "usage")).one()
        event = s.scalars(select(UsageEvent)).one()
        rollup = s.scalars(select(UsageDaily)).one()
    assert entry.amount_ucr == -4_500_000
    assert entry.balance_after_ucr == 95_500_000
    assert entry.reference == f"usage:{event.id}"
    assert entry.credits_per_usd == 10_000
    assert (event.status, event.cost_ucr, event.credits_per_usd) == ("charged", 4_500_000, 10_000)
    assert (event.input_price_uusd_per_m, event.output_price_uusd_per_m) == (150_000, 600_000)
    assert event.rate_version_id is not None and event.price_version_id is not None
    assert (rollup.events, rollup.input_tokens, rollup.output_tokens, rollup.cost_ucr) == (
        1,
        1000,
        500,
        4_500_000,
    )
    assert billing.problems() == []


def test_replay_with_same_payload_is_a_free_duplicate(billing: Billing) -> None:
    billing.user("alice@example.com", 100 * CR)
    first = billing.debit("msg-1", "alice@example.com")
    billing.debit("msg-2", "alice@example.com")
    again = billing.debit("msg-1", "ALICE@example.com")  # email case does not matter
    assert again.duplicate is True
    assert (again.cost_ucr, again.balance_ucr) == (first.cost_ucr, first.balance_ucr)
    assert billing.balance("alice@example.com") == 91_000_000
    assert len(events(billing)) == 2
    assert billing.problems() == []


def test_same_id_different_payload_is_a_conflict(billing: Billing) -> None:
    billing.user("alice@example.com", 100 * CR)
    billing.debit("msg-1", "alice@example.com")
    with pytest.raises(Conflict):
        billing.debit("msg-1", "alice@example.com", input_tokens=1001)
    assert billing.balance("alice@example.com") == 95_500_000
    assert len(events(billing)) == 1


def test_event_ids_are_scoped_per_integration_key(billing: Billing) -> None:
    from core.models import IntegrationKey

    billing.user("alice@example.com", 100 * CR)
    billing.debit("msg-1", "alice@example.com")
    with billing.db.write() as s:
        other = IntegrationKey(name="other", prefix="cl_other", key_hash="1" * 64)
        s.add(other)
        s.flush()
        other_id = other.id
    report = usage_debits.UsageReport("msg-1", "alice@example.com", "gpt-4o-mini", 1000, 500)
    result = usage_debits.debit_usage(billing.db, billing.prices, other_id, report)
    assert result.duplicate is False
    assert billing.balance("alice@example.com") == 91_000_000


def test_insufficient_credits_rejects_keeps_event_and_notifies(billing: Billing) -> None:
    billing.user("bob@example.com", 4 * CR)  # one event costs 4.5
    with pytest.raises(InsufficientCredits) as caught:
        billing.debit("msg-1", "bob@example.com")
    assert caught.value.event_id == "msg-1"
    assert billing.balance("bob@example.com") == 4 * CR
    (event,) = events(billing)
    assert (event.status, event.reason_code) == ("rejected", "insufficient_credits")
    assert event.cost_ucr == 4_500_000
    with billing.db.read_session() as s:
        note = s.scalars(select(Notification)).one()
        assert note.kind == "usage_rejected"
        assert "4.5 credits" in note.message
        assert (
            s.scalar(
                select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == "usage")
            )
            == 0
        )
    # A replay gives the same answer and charges nothing.
    with pytest.raises(InsufficientCredits) as again:
        billing.debit("msg-1", "bob@example.com")
    assert again.value.duplicate is True
    assert billing.problems() == []


def test_exact_balance_is_enough(billing: Billing) -> None:
    billing.user("bob@example.com", 4_500_000)
    assert billing.debit("msg-1", "bob@example.com").balance_ucr == 0


def test_one_micro_credit_short_is_refused(billing: Billing) -> None:
    billing.user("bob@example.com", 4_499_999)
    with pytest.raises(InsufficientCredits):
        billing.debit("msg-1", "bob@example.com")
    assert billing.balance("bob@example.com") == 4_499_999


def test_overdraft_edge_is_exact_to_the_micro_credit(billing: Billing) -> None:
    billing.set(overdraft_limit_ucr=4 * CR)
    billing.user("dan@example.com", 500_000)  # 0.5 - 4.5 = -4: exactly the limit
    billing.user("eve@example.com", 499_999)  # one µcr further
    assert billing.debit("m1", "dan@example.com").balance_ucr == -4 * CR
    with pytest.raises(InsufficientCredits):
        billing.debit("m2", "eve@example.com")
    assert billing.balance("eve@example.com") == 499_999


def test_overdraft_limit_allows_going_negative_up_to_it(billing: Billing) -> None:
    billing.set(overdraft_limit_ucr=5 * CR)
    billing.user("carol@example.com", 1 * CR)
    assert billing.debit("m1", "carol@example.com").balance_ucr == -3_500_000
    with pytest.raises(InsufficientCredits):
        billing.debit("m2", "carol@example.com")  # would reach -8
    assert billing.balance("carol@example.com") == -3_500_000


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"model": "no-such-model"}, UnknownModel),
        ({"model": "old-model"}, ModelDisabled),
        ({"input_tokens": 10_000_001, "output_tokens": 0}, LimitExceeded),
    ],
)
def test_refused_events_are_recorded_with_reason(billing: Billing, kwargs, error) -> None:
    billing.set_price("old-model", 1, 1, enabled=False)
    billing.user("dave@example.com", 100 * CR)
    with pytest.raises(error):
        billing.debit("msg-1", "dave@example.com", **kwargs)
    (event,) = events(billing)
    assert (event.status, event.reason_code) == ("rejected", error.code)
    assert event.reason
    assert billing.balance("dave@example.com") == 100 * CR


def test_credit_cap_per_event(billing: Billing) -> None:
    billing.set(max_credits_per_event_ucr=4 * CR)
    billing.user("erin@example.com", 100 * CR)
    with pytest.raises(LimitExceeded, match="cap"):
        billing.debit("msg-1", "erin@example.com")
    assert (
        billing.debit("msg-2", "erin@example.com", input_tokens=100, output_tokens=0).cost_ucr
        == 150_000
    )


def test_unknown_and_disabled_users(billing: Billing) -> None:
    with pytest.raises(UnknownUsageUser):
        billing.debit("msg-1", "ghost@example.com")
    user = billing.user("frank@example.com", 100 * CR)
    with billing.db.write() as s:
        s.get(User, user.id).is_disabled = True
    with pytest.raises(UserDisabled):
        billing.debit("msg-2", "frank@example.com")
    assert [e.reason_code for e in events(billing)] == ["unknown_user", "user_disabled"]
    assert events(billing)[0].user_ref == "ghost@example.com"


def test_rate_change_between_debits_charges_each_at_its_own_rate(billing: Billing) -> None:
    billing.user("gina@example.com", 1000 * CR)
    first = billing.debit("msg-1", "gina@example.com")
    billing.set_rate(20_000)
    second = billing.debit("msg-2", "gina@example.com")
    assert (first.cost_ucr, second.cost_ucr) == (4_500_000, 9_000_000)

    with billing.db.read_session() as s:
        rates = {r.credits_per_usd: r.id for r in s.scalars(select(RateChange))}
        entries = s.scalars(
            select(LedgerEntry).where(LedgerEntry.kind == "usage").order_by(LedgerEntry.id)
        ).all()
    e1, e2 = events(billing)
    assert [e.credits_per_usd for e in entries] == [10_000, 20_000]
    assert (e1.rate_version_id, e2.rate_version_id) == (rates[10_000], rates[20_000])
    assert billing.problems() == []


def test_price_change_applies_to_the_next_event_on_every_worker(app, billing: Billing) -> None:
    """Two price-book caches (two workers) on one database: a change made
    through one is in force for the very next event through the other."""
    from core.pricebook import PriceBookCache

    worker_b = PriceBookCache()
    billing.user("hank@example.com", 1000 * CR)

    def report(n: int) -> usage_debits.UsageReport:
        return usage_debits.UsageReport(f"m{n}", "hank@example.com", "gpt-4o-mini", 1000, 500)

    assert (
        usage_debits.debit_usage(billing.db, worker_b, billing.key_id, report(1)).cost_ucr
        == 4_500_000
    )
    billing.set_price("gpt-4o-mini", 300_000, 1_200_000)  # through "worker A"
    assert (
        usage_debits.debit_usage(billing.db, worker_b, billing.key_id, report(2)).cost_ucr
        == 9_000_000
    )
    with billing.db.read_session() as s:
        versions = [
            e.price_version_id for e in s.scalars(select(UsageEvent).order_by(UsageEvent.id))
        ]
        history = s.scalars(select(ModelPriceChange).order_by(ModelPriceChange.id)).all()
    assert versions == [history[0].id, history[1].id]
    assert (history[1].old_input_uusd_per_m, history[1].new_input_uusd_per_m) == (150_000, 300_000)


def test_price_book_is_not_reloaded_without_a_change(billing: Billing) -> None:
    billing.user("ivy@example.com", 1000 * CR)
    billing.debit("m1", "ivy@example.com")
    loads = billing.prices.loads
    for n in range(2, 6):
        billing.debit(f"m{n}", "ivy@example.com")
    assert billing.prices.loads == loads
    billing.set(max_tokens_per_event=5000)
    with pytest.raises(LimitExceeded):
        billing.debit("m9", "ivy@example.com", input_tokens=6000)
    assert billing.prices.loads == loads + 1


def test_batch_gives_one_result_per_event_in_order(billing: Billing) -> None:
    billing.user("jack@example.com", 10 * CR)
    reports = [
        usage_debits.UsageReport("b1", "jack@example.com", "gpt-4o-mini", 1000, 500),
        usage_debits.UsageReport("b2", "jack@example.com", "nope", 1, 1),
        usage_debits.UsageReport("b1", "jack@example.com", "gpt-4o-mini", 1000, 500),
        usage_debits.UsageReport("b1", "jack@example.com", "gpt-4o-mini", 1, 1),
        usage_debits.UsageReport("b3", "jack@example.com", "gpt-4o-mini", 1000, 500),
        usage_debits.UsageReport("b4", "jack@example.com", "gpt-4o-mini", 1000, 500),
    ]
    results = usage_debits.debit_usage_batch(billing.db, billing.prices, billing.key_id, reports)
    summary = [(r.event_id, r.status, r.duplicate, r.error and r.error.code) for r in results]
    assert summary == [
        ("b1", "charged", False, None),
        ("b2", "rejected", False, "unknown_model"),
        ("b1", "charged", True, None),
        ("b1", "rejected", False, "conflict"),
        ("b3", "charged", False, None),
        ("b4", "rejected", False, "insufficient_credits"),
    ]
    assert billing.balance("jack@example.com") == 1_000_000
    assert billing.problems() == []


def test_adjustments_need_a_reason_and_cannot_create_debt(billing: Billing) -> None:
    billing.user("kim@example.com")
    with pytest.raises(ValidationError, match="reason"), billing.db.write() as s:
        ledger.adjust(s, audit.CLI, "kim@example.com", CR, "  ")
    with billing.db.write() as s:
        ledger.adjust(s, audit.CLI, "kim@example.com", 5 * CR, "goodwill")
    with pytest.raises(InsufficientCredits, match="below zero"), billing.db.write() as s:
        ledger.adjust(s, audit.CLI, "kim@example.com", -6 * CR, "claw back")
    with billing.db.write() as s:
        assert ledger.adjust(s, audit.CLI, "kim@example.com", -5 * CR, "claw back").balance_ucr == 0
    with billing.db.read_session() as s:
        actions = s.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
    assert actions.count("wallet.adjust") == 2


def test_credit_is_idempotent_per_reference(billing: Billing) -> None:
    user = billing.user("lee@example.com")
    wallet_id = user.wallet.id
    first = credit(
        billing.db, wallet_id, 250_000 * CR, "topup", "cs_test_1", credits_per_usd=10_000
    )
    again = credit(
        billing.db, wallet_id, 250_000 * CR, "topup", "cs_test_1", credits_per_usd=10_000
    )
    assert (first.duplicate, again.duplicate) == (False, True)
    assert again.entry_id == first.entry_id
    assert billing.balance("lee@example.com") == 250_000 * CR


@pytest.mark.parametrize(
    "table", ["audit_log", "ledger_entries", "model_price_history", "exchange_rate_history"]
)
def test_history_tables_refuse_update_and_delete(billing: Billing, table: str) -> None:
    billing.user("max@example.com", 10 * CR)  # writes audit + ledger rows
    billing.set_rate(12_345)
    for statement in (f"UPDATE {table} SET id = id", f"DELETE FROM {table}"):
        with pytest.raises(DBAPIError, match="append-only"), billing.db.write() as s:
            s.execute(text(statement))
    with billing.db.read_session() as s:
        assert s.execute(text(f"SELECT count(*) FROM {table}")).scalar() > 0


def test_check_ledger_finds_a_tampered_balance(billing: Billing) -> None:
    user = billing.user("ned@example.com", 10 * CR)
    billing.debit("m1", "ned@example.com")
    assert billing.problems() == []
    with billing.db.write() as s:
        s.execute(
            text("UPDATE wallets SET balance_ucr = balance_ucr + 1 WHERE id = :id"),
            {"id": user.wallet.id},
        )
    (problem,) = billing.problems()
    assert problem.what == "balance != sum(ledger)"
    assert (problem.expected, problem.found) == (5_500_000, 5_500_001)


def test_check_ledger_finds_a_rollup_that_disagrees_with_events(billing: Billing) -> None:
    billing.user("olga@example.com", 10 * CR)
    billing.debit("m1", "olga@example.com")
    assert billing.problems() == []
    with billing.db.write() as s:
        s.execute(text("UPDATE usage_daily SET cost_ucr = cost_ucr + 7"))
    (problem,) = billing.problems()
    assert problem.what == "usage_daily != charged events"
    assert problem.found == -7
    with billing.db.write() as s:  # a rollup row with no events behind it at all
        s.execute(text("UPDATE usage_daily SET cost_ucr = cost_ucr - 7"))
        s.execute(
            text(
                "INSERT INTO usage_daily (user_id, day, model_id, events, input_tokens,"
                " output_tokens, cost_ucr) SELECT user_id, '2020-01-01', model_id, 1, 1, 1, 5"
                " FROM usage_daily"
            )
        )
    (problem,) = billing.problems()
    assert "2020-01-01" in problem.key


@pytest.mark.parametrize(
    ("user", "model", "conversation", "occurred"),
    [
        ("Alice@Example.com ", "gpt-4o-mini", None, None),
        (
            'q"uote\\back@x.io',
            "m\u00e9t\u00e9o-\U0001f600",
            "conv\n\t\x01",
            datetime(2026, 1, 2, 3, 4, 5, 6),
        ),
        ("a@b.c", "</script>", "", datetime(2026, 11, 24)),
    ],
)
def test_payload_hash_is_the_hash_of_compact_json(user, model, conversation, occurred) -> None:
    """Stored hashes depend on this exact text: the fast encoder must match json.dumps."""
    report = usage_debits.UsageReport("e", user, model, 12, 0, conversation, occurred)
    canonical = json.dumps(
        [
            user.strip().lower(),
            model,
            12,
            0,
            conversation,
            occurred.isoformat() if occurred else None,
        ],
        separators=(",", ":"),
    )
    assert report.payload_hash() == hashlib.sha256(canonical.encode()).hexdigest()
