"""A usage report decided before its transaction (core/usage_one_statement.py).

Each test first reports one event for the user, so the process has the
price book and the user's wallet cached and the next report may take the
one-statement way (on PostgreSQL; on SQLite every report goes the general
way, and the same answers are expected). Then something the decision rests
on changes, and the next report must be decided as the general way would.
A key revoked after a report is ``tests/test_api.py``'s revoked-key test.
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from flask import Flask
from prometheus_client import REGISTRY
from sqlalchemy import func, select, update

from core import accounts, audit, outbox, usage_debits
from core.errors import InsufficientCredits
from core.models import Notification, UsageEvent, User
from core.pricing import MICRO as CR
from core.usage_one_statement import UserWallets
from tests.api_client import Api
from tests.conftest import Billing
from tests.hold_helpers import request_for, take
from tests.ledger_helpers import low_balance_state

COST = 4_500_000  # 1,000 in + 500 out of gpt-4o-mini at 10,000 credits/USD
ANN = "ann@example.com"


def warm_up(api: Api, email: str = ANN) -> None:
    response = api.usage(event_id=f"warm-up-{email}", user=email)
    assert response.status_code == 201, response.get_json()


def stored(billing: Billing, event_id: str) -> tuple[str, str | None]:
    with billing.db.read_session() as s:
        row = s.execute(
            select(UsageEvent.status, UsageEvent.reason_code).where(UsageEvent.event_id == event_id)
        ).one()
    return row.status, row.reason_code


def test_the_usual_report_is_charged_with_its_rows(api: Api, billing: Billing) -> None:
    billing.user(ANN, 100 * CR)
    warm_up(api)
    response = api.usage(event_id="second", user=ANN)
    assert response.status_code == 201
    assert response.get_json()["balance"] == "91"  # 100 - 2 x 4.5
    assert stored(billing, "second") == ("charged", None)
    assert billing.balance(ANN) == 100 * CR - 2 * COST
    assert billing.problems() == []  # entries, balance_after and rollups agree


def test_a_user_disabled_after_warm_up_is_refused(api: Api, billing: Billing, app: Flask) -> None:
    user = billing.user(ANN, 100 * CR)
    warm_up(api)
    with billing.db.write() as s:
        accounts.set_access(s, audit.CLI, user.id, role="user", disabled=True, reason="test")
    response = api.usage(event_id="after", user=ANN)
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "user_disabled"
    assert stored(billing, "after") == ("rejected", "user_disabled")
    assert billing.balance(ANN) == 100 * CR - COST


def test_insufficient_credits_after_warm_up_are_refused_and_stored(
    api: Api, billing: Billing
) -> None:
    billing.user(ANN, COST + COST // 2)
    warm_up(api)
    response = api.usage(event_id="too-much", user=ANN)
    assert response.status_code == 402
    assert stored(billing, "too-much") == ("rejected", "insufficient_credits")
    assert billing.balance(ANN) == COST // 2
    with billing.db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(Notification)) == 1
    assert billing.problems() == []


def test_reserved_credits_are_not_spent_after_warm_up(api: Api, billing: Billing) -> None:
    billing.user(ANN, 3 * COST)
    warm_up(api)
    # A running call reserves 1,000 in + 1,000 out: 7.5 credits of the 9 left.
    take(billing, request_for(billing, ANN, tokens=(1000, 1000)))
    response = api.usage(event_id="over-reserved", user=ANN)
    assert response.status_code == 402
    assert billing.balance(ANN) == 2 * COST


def test_the_overdraft_limit_is_the_floor_after_warm_up(api: Api, billing: Billing) -> None:
    billing.set(overdraft_limit_ucr=5 * CR)
    billing.user(ANN, COST)
    warm_up(api)  # balance 0
    assert api.usage(event_id="into-overdraft", user=ANN).status_code == 201
    assert billing.balance(ANN) == -COST  # -4.5, within -5
    assert api.usage(event_id="past-the-limit", user=ANN).status_code == 402
    assert billing.balance(ANN) == -COST
    assert billing.problems() == []


def test_a_replay_after_warm_up_answers_from_the_stored_event(api: Api, billing: Billing) -> None:
    billing.user(ANN, 100 * CR)
    warm_up(api)
    assert api.usage(event_id="twice", user=ANN).status_code == 201
    replay = api.usage(event_id="twice", user=ANN)
    assert replay.status_code == 200
    assert replay.get_json()["duplicate"] is True
    assert api.usage(event_id="twice", user=ANN, input_tokens=7).status_code == 409
    assert billing.balance(ANN) == 100 * CR - 2 * COST


def test_a_price_change_after_warm_up_is_charged_at_the_new_price(
    api: Api, billing: Billing
) -> None:
    billing.user(ANN, 100 * CR)
    warm_up(api)
    billing.set_price("gpt-4o-mini", 1_500_000, 6_000_000)  # 10 x dearer
    response = api.usage(event_id="dearer", user=ANN)
    assert response.get_json()["credits_charged"] == "45"
    assert billing.balance(ANN) == 100 * CR - COST - 10 * COST
    assert billing.problems() == []


def test_an_email_given_to_another_user_charges_that_user(api: Api, billing: Billing) -> None:
    billing.user(ANN, 100 * CR)
    warm_up(api)  # the process remembers ANN's user and wallet
    with billing.db.write() as s:  # an operator renames the account, another takes the email
        s.execute(update(User).where(User.email == ANN).values(email="ann.old@example.com"))
    billing.user(ANN, 50 * CR)
    assert api.usage(event_id="new-owner", user=ANN).status_code == 201
    assert billing.balance(ANN) == 50 * CR - COST
    assert billing.balance("ann.old@example.com") == 100 * CR - COST
    assert billing.problems() == []


def test_a_charge_that_crosses_the_alert_level_alerts_once(api: Api, billing: Billing) -> None:
    threshold = outbox._DEFAULT_THRESHOLD
    billing.user(ANN, threshold + COST + COST // 2)
    warm_up(api)  # still above
    for n in range(2):  # below, alerted; still below: not again
        assert api.usage(event_id=f"low-{n}", user=ANN).status_code == 201
    assert low_balance_state(billing.db) == (True, 1)


@pytest.mark.slow
def test_threads_charging_one_wallet_never_pass_the_floor(billing: Billing) -> None:
    """16 threads x 40 reports, each with a warm cache, on a wallet funded for
    exactly 300 events: 300 charged, the rest refused, the balance at 0."""
    funded, threads, per_thread = 300, 16, 40
    billing.user(ANN, funded * COST)
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def reporter(n: int) -> None:
        wallets = UserWallets()
        for i in range(per_thread):
            report = usage_debits.UsageReport(f"t{n}-{i}", ANN, "gpt-4o-mini", 1000, 500)
            try:
                usage_debits.debit_usage(
                    billing.db, billing.prices, billing.key_id, report, wallets
                )
                outcome = "charged"
            except InsufficientCredits:
                outcome = "refused"
            with lock:
                outcomes[outcome] += 1

    workers = [threading.Thread(target=reporter, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert outcomes == {"charged": funded, "refused": threads * per_thread - funded}
    assert billing.balance(ANN) == 0
    assert billing.problems() == []


def test_reports_decided_alone_count_in_the_metrics(api: Api, billing: Billing) -> None:
    def charged() -> float | None:
        return REGISTRY.get_sample_value("creditline_usage_events_total", {"outcome": "charged"})

    billing.user(ANN, 100 * CR)
    warm_up(api)
    before = charged() or 0
    assert api.usage(event_id="counted", user=ANN).status_code == 201
    assert charged() == before + 1


def test_the_cache_starts_again_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(UserWallets, "MAX_SIZE", 2)
    wallets = UserWallets()
    wallets.remember("a", 1, 10)
    wallets.remember("b", 2, 20)
    wallets.remember("c", 3, 30)
    assert (wallets.get("a"), wallets.get("c")) == (None, (3, 30))
