"""The read side the pages use: named core queries and what they filter and order.

Each function here replaced an ORM query that a view built itself; these
tests pin what the page relied on (which rows, in which order, how many)
against the real database.
"""

from __future__ import annotations

import dataclasses

import pytest

from core import accounts, audit, catalog, impact, ledger, settings, usage
from core.errors import UnknownModel
from tests.conftest import Billing

CR = 1_000_000  # µcr per credit


def test_search_users_matches_any_case_with_literal_wildcards(billing: Billing) -> None:
    for email in ("bob@example.com", "al_bert@example.com", "alice@example.com"):
        billing.user(email)
    with billing.db.read_session() as s:

        def emails(text: str, **kw: int) -> list[str]:
            return [user.email for user, _ in accounts.search_users(s, text, **kw)]

        assert emails("") == ["al_bert@example.com", "alice@example.com", "bob@example.com"]
        assert emails("  ALICE ") == ["alice@example.com"]
        assert emails("al_") == ["al_bert@example.com"]  # "_" is not a wildcard
        assert emails("%") == []  # nor is "%"
        assert emails("example", limit=2) == ["al_bert@example.com", "alice@example.com"]
        found = accounts.search_users(s, "bob")
        assert [(u.email, w.user_id == u.id) for u, w in found] == [("bob@example.com", True)]


def test_find_user_by_id(billing: Billing) -> None:
    user = billing.user("carol@example.com")
    with billing.db.read_session() as s:
        assert accounts.find_user_by_id(s, user.id).email == "carol@example.com"
        assert accounts.find_user_by_id(s, user.id + 1000) is None


def test_rate_history_is_newest_first_and_bounded(billing: Billing) -> None:
    for rate in (11_000, 12_000, 13_000):
        billing.set_rate(rate)
    with billing.db.read_session() as s:
        history = catalog.rate_history(s)
        assert [r.credits_per_usd for r in history][:3] == [13_000, 12_000, 11_000]
        assert history[0].old_credits_per_usd == 12_000
        assert [r.credits_per_usd for r in catalog.rate_history(s, limit=2)] == [13_000, 12_000]


def test_models_by_name_lists_disabled_models_too(billing: Billing) -> None:
    billing.set_price("zeta", 1, 2, enabled=False)
    billing.set_price("alpha", 3, 4)
    with billing.db.read_session() as s:
        models = catalog.models_by_name(s)
        assert [m.name for m in models] == ["alpha", "gpt-4o-mini", "zeta"]
        assert [m.enabled for m in models] == [True, True, False]
        assert catalog.find_model(s, models[2].id).name == "zeta"
        assert catalog.find_model(s, max(m.id for m in models) + 1) is None


def test_price_history_is_one_models_changes_newest_first(billing: Billing) -> None:
    billing.set_price("alpha", 100, 200)
    billing.set_price("gpt-4o-mini", 1, 2)
    billing.set_price("alpha", 300, 400, enabled=False)
    with billing.db.read_session() as s:
        alpha = next(m for m in catalog.models_by_name(s) if m.name == "alpha")
        history = catalog.price_history(s, alpha.id)
        assert [(h.new_input_uusd_per_m, h.new_enabled) for h in history] == [
            (300, False),
            (100, True),
        ]
        assert history[0].old_input_uusd_per_m == 100
        assert history[1].old_input_uusd_per_m is None  # the creation


def test_sample_costs_by_model_id(billing: Billing) -> None:
    billing.set_price("alpha", 2_000_000, 4_000_000)  # $2 in, $4 out per 1M tokens
    with billing.db.read_session() as s:
        models = catalog.models_by_name(s)
        costs = impact.sample_costs(models, 10_000)
    # 1,000 in + 500 out on alpha: $0.002 + $0.002 = $0.004 = 40 credits at 10,000/USD.
    by_name = {m.name: costs[m.id] for m in models}
    assert by_name["alpha"] == 40 * CR
    assert by_name["gpt-4o-mini"] == impact.sample_cost(150_000, 600_000, 10_000)


def test_recent_entries_are_one_wallets_newest_first(billing: Billing) -> None:
    alice = billing.user("alice@example.com", 100 * CR)
    billing.user("bob@example.com", 7 * CR)
    for amount in (1, 2, 3):
        with billing.db.write() as s:
            ledger.adjust(s, audit.CLI, "alice@example.com", amount * CR, f"grant {amount}")
    with billing.db.read_session() as s:
        wallet_id = accounts.find_user_by_id(s, alice.id).wallet.id
        entries = ledger.recent_entries(s, wallet_id)
        assert [e.amount_ucr // CR for e in entries] == [3, 2, 1, 100]
        assert {e.wallet_id for e in entries} == {wallet_id}
        assert entries[0].balance_after_ucr == 106 * CR
        assert ledger.recent_entries(s, wallet_id, limit=2) == entries[:2]


def test_changed_settings_keeps_only_what_differs() -> None:
    now = dataclasses.replace(settings.Settings(), topup_options_usd=(5, 10), overdraft_limit_ucr=0)
    proposed = {
        "topup_options_usd": (5, 10),  # as stored: unchanged
        "overdraft_limit_ucr": 0,
        "max_tokens_per_event": now.max_tokens_per_event + 1,
        "default_low_balance_threshold_ucr": now.default_low_balance_threshold_ucr,
    }
    assert settings.changed_settings(now, proposed) == {
        "max_tokens_per_event": now.max_tokens_per_event + 1
    }
    assert settings.changed_settings(now, {"topup_options_usd": (10, 5)}) == {
        "topup_options_usd": (10, 5)  # the order is shown to users: a change
    }
    assert settings.changed_settings(now, {}) == {}


def test_changed_settings_passes_unknown_keys_on_for_update_to_refuse() -> None:
    assert settings.changed_settings(settings.Settings(), {"colour": "red"}) == {"colour": "red"}


def test_changed_settings_against_stored_settings(billing: Billing) -> None:
    billing.set(overdraft_limit_ucr=5 * CR, topup_options_usd=(5, 20))
    with billing.db.read_session() as s:
        stored = settings.load(s)
    proposed = {"overdraft_limit_ucr": 5 * CR, "topup_options_usd": (5, 20, 50)}
    assert settings.changed_settings(stored, proposed) == {"topup_options_usd": (5, 20, 50)}


def test_recent_events_are_one_users_newest_first_refused_included(billing: Billing) -> None:
    alice = billing.user("alice@example.com", 100 * CR)
    billing.user("bob@example.com", 100 * CR)
    for n in range(12):
        billing.debit(f"a{n}", "alice@example.com", input_tokens=1000 + n)
        billing.debit(f"b{n}", "bob@example.com")
    with pytest.raises(UnknownModel):  # stored as refused, then raised
        billing.debit("refused", "alice@example.com", model="no-such-model")
    with billing.db.read_session() as s:
        events = usage.recent_events(s, alice.id)
        assert [e.event_id for e in events] == ["refused"] + [f"a{n}" for n in range(11, 2, -1)]
        assert {e.user_id for e in events} == {alice.id}
        assert [e.event_id for e in usage.recent_events(s, alice.id, limit=2)] == ["refused", "a11"]
