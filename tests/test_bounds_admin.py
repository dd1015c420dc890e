"""Admin forms and CLI commands at the edges of their numbers (core.bounds).

Each entry point that sets a rate, a price, a top-up option, a cap or a
balance refuses a value that could overflow a 64-bit column, with a form
error on the field concerned or a CLI error (exit code 1, one clear line, no
traceback), and leaves nothing changed and nothing audited.
"""

from __future__ import annotations

import html
import re

import pytest
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import func, select, text

from core import audit, ledger
from core.bounds import MAX_AMOUNT_UCR, MAX_CREDITS, MAX_PRICE_UUSD_PER_M, MAX_RATE
from core.errors import BalanceLimit, ValidationError
from core.models import AiModel, AuditEntry, LedgerEntry, RateChange, Setting, User
from tests.conftest import USING_PG, Billing, post_form

MAX = str(MAX_CREDITS)  # "1000000000000" credits, the largest single amount


def _field_error(response, field_id: str) -> str:
    """The error shown under one field (empty if none)."""
    found = re.search(
        rf'<small class="field-error" id="{re.escape(field_id)}-error">(.*?)</small>',
        response.get_data(as_text=True),
    )
    return html.unescape(found.group(1)) if found else ""


def _audited(billing: Billing, action: str) -> int:
    with billing.db.read_session() as s:
        return s.scalar(select(func.count()).where(AuditEntry.action == action))


def _no_traceback(result) -> None:
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert result.output.startswith("Error: ")


SETTINGS = {
    "topup_options": "5, 10, 25, 50, 100",
    "max_tokens": "10000000",
    "max_credits": "1000000",
    "overdraft": "0",
    "threshold": "5000",
    "reason": "r",
}

# --- exchange rate and top-up options: checked against each other -------------------


def test_max_rate_is_refused_while_a_10000_dollar_option_exists(
    client: FlaskClient, admin: Billing
) -> None:
    admin.set(topup_options_usd=(5, 10_000))
    response = post_form(client, "/admin/rate", credits_per_usd=str(MAX_RATE), reason="max")
    assert response.status_code == 400
    error = _field_error(response, "credits_per_usd")
    assert "the $10,000 top-up would buy 10,000,000,000,000 credits" in error
    assert "at most $1,000" in error
    with admin.db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(RateChange)) == 1
    assert _audited(admin, "rate.change") == 0
    preview = client.get(f"/admin/rate/preview?credits_per_usd={MAX_RATE}")
    assert "the $10,000 top-up would buy" in html.unescape(preview.get_data(as_text=True))
    admin.set(topup_options_usd=(5, 1_000))  # at most $1,000 at this rate: accepted
    accepted = post_form(client, "/admin/rate", credits_per_usd=str(MAX_RATE), reason="max")
    assert accepted.status_code == 302
    with admin.db.read_session() as s:
        assert s.scalars(select(RateChange.credits_per_usd).order_by(RateChange.id)).all() == [
            10_000,
            MAX_RATE,
        ]


def test_10000_dollar_option_is_refused_at_the_max_rate(
    client: FlaskClient, admin: Billing
) -> None:
    admin.set_rate(MAX_RATE)
    response = post_form(client, "/admin/settings", **{**SETTINGS, "topup_options": "5, 10000"})
    assert response.status_code == 400
    assert "at most $1,000" in _field_error(response, "topup_options")
    assert _audited(admin, "settings.update") == 0
    with admin.db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(Setting)) == 0


def test_cli_set_rate_refuses_the_max_rate_with_a_10000_dollar_option(
    admin: Billing, runner: FlaskCliRunner
) -> None:
    admin.set(topup_options_usd=(10_000,))
    result = runner.invoke(args=["set-rate", str(MAX_RATE), "--reason", "max"])
    _no_traceback(result)
    assert "Lower the top-up options first." in result.output
    for value in (str(MAX_RATE + 1), "1" + "0" * 400, "1e9", "1000000000.5"):
        _no_traceback(runner.invoke(args=["set-rate", value, "--reason", "x"]))
    with admin.db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(RateChange)) == 1


# --- settings: caps, overdraft, threshold -------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_tokens", "1000000001", "at most 1,000,000,000"),
        ("max_tokens", "9" * 19, "at most 1,000,000,000"),
        ("max_tokens", "²", "at least 1"),
        ("max_credits", "1000000000000.000001", "cannot exceed 1,000,000,000,000"),
        ("max_credits", "1.0000000000000000000000000001", "more than 6 decimal places"),
        ("overdraft", "9" * 25, "cannot exceed"),
        ("overdraft", "1e999999", "exponent"),
        ("threshold", "Infinity", "finite"),
        ("topup_options", "5, 10001", "from 1 to 10,000"),
        ("topup_options", "5, ¹²", "whole dollar amounts"),
    ],
)
def test_settings_beyond_their_bounds_are_form_errors(
    client: FlaskClient, admin: Billing, field: str, value: str, message: str
) -> None:
    response = post_form(client, "/admin/settings", **{**SETTINGS, field: value})
    assert response.status_code == 400
    assert message in _field_error(response, field)
    assert _audited(admin, "settings.update") == 0


def test_settings_at_their_bounds_are_accepted(client: FlaskClient, admin: Billing) -> None:
    fields = {"max_tokens": "1000000000", "max_credits": MAX, "overdraft": MAX, "threshold": MAX}
    response = post_form(client, "/admin/settings", **{**SETTINGS, **fields})
    assert response.status_code == 302
    assert _audited(admin, "settings.update") == 1


@pytest.mark.parametrize(
    "changes",
    [
        {"max_tokens_per_event": 10**9 + 1},
        {"max_credits_per_event_ucr": MAX_AMOUNT_UCR + 1},
        {"overdraft_limit_ucr": 2**63},
        {"default_low_balance_threshold_ucr": 10**30},
    ],
)
def test_settings_refuse_values_past_their_ceiling(admin: Billing, changes) -> None:
    with pytest.raises(ValidationError, match="must be at most"):
        admin.set(**changes)
    assert _audited(admin, "settings.update") == 0


# --- model prices ---------------------------------------------------------------------


def test_max_price_model_form_and_beyond(client: FlaskClient, admin: Billing) -> None:
    over = post_form(
        client,
        "/admin/models",
        name="dear",
        input_usd="1000000.000001",
        output_usd="1",
        reason="r",
        enabled="y",
    )
    assert over.status_code == 400
    assert "cannot exceed $1,000,000 per 1M tokens" in _field_error(over, "input_usd")
    done = post_form(
        client,
        "/admin/models",
        name="dear",
        input_usd="1000000",
        output_usd="1000000",
        reason="r",
        enabled="y",
    )
    assert done.status_code == 302
    with admin.db.read_session() as s:
        model = s.scalars(select(AiModel).where(AiModel.name == "dear")).one()
    assert model.input_price_uusd_per_m == model.output_price_uusd_per_m == MAX_PRICE_UUSD_PER_M


def test_cli_set_model_price_beyond_the_max_is_an_error(
    admin: Billing, runner: FlaskCliRunner
) -> None:
    for bad in ("1000000.000001", "1" + "0" * 30, "0.0000001", "1e6", "-0.5", "NaN"):
        result = runner.invoke(args=["set-model-price", "dear", "--input", bad, "--output", "1"])
        _no_traceback(result)
    ok = runner.invoke(args=["set-model-price", "dear", "--input", "1000000", "--output", "0"])
    assert ok.exit_code == 0, ok.output


def test_max_price_model_at_max_rate_is_priced_without_5xx(
    client: FlaskClient, admin: Billing
) -> None:
    """The pages that price every model at a rate (models list, rate preview)."""
    admin.set(topup_options_usd=(5, 1_000))
    admin.set_price("dear", MAX_PRICE_UUSD_PER_M, MAX_PRICE_UUSD_PER_M)
    admin.set_rate(MAX_RATE)
    assert client.get("/admin/models").status_code == 200
    assert client.get("/admin/rate").status_code == 200
    assert client.get(f"/admin/rate/preview?credits_per_usd={MAX_RATE}").status_code == 200
    assert client.get("/pricing").status_code == 200


# --- balances: adjustments and grant-credits -----------------------------------------


def test_ten_maximal_grant_credits_stop_at_the_ceiling(
    admin: Billing, runner: FlaskCliRunner
) -> None:
    admin.user("bob@example.com")
    results = [
        runner.invoke(args=["grant-credits", "bob@example.com", MAX, "--reason", f"grant {n}"])
        for n in range(10)
    ]
    assert results[0].exit_code == 0, results[0].output
    for refused in results[1:]:
        _no_traceback(refused)
        assert "above the ceiling of 1000000000000 credits per balance" in refused.output
    assert admin.balance("bob@example.com") == MAX_AMOUNT_UCR
    assert type(admin.balance("bob@example.com")) is int
    with admin.db.read_session() as s:
        assert s.scalar(select(func.count()).select_from(LedgerEntry)) == 1
    assert _audited(admin, "wallet.adjust") == 1
    check = runner.invoke(args=["check-ledger"])
    assert (check.exit_code, check.output.strip()) == (0, "ledger ok")
    # What is left under the ceiling can still be granted, and removed again.
    _no_traceback(
        runner.invoke(args=["grant-credits", "bob@example.com", "0.000001", "--reason", "x"])
    )
    minus = runner.invoke(args=["grant-credits", "bob@example.com", "-" + MAX, "--reason", "x"])
    assert minus.exit_code == 0, minus.output
    for bad in (MAX + ".000001", "-" + MAX + "1", "1" * 40):
        _no_traceback(
            runner.invoke(args=["grant-credits", "bob@example.com", bad, "--reason", "x"])
        )


@pytest.mark.parametrize("amount", [MAX_AMOUNT_UCR + 1, -MAX_AMOUNT_UCR - 1, 2**63, -(2**64)])
def test_one_adjustment_is_at_most_the_ceiling_whoever_calls(admin: Billing, amount: int) -> None:
    admin.user("bob@example.com", 5)
    with (
        pytest.raises(BalanceLimit, match="One adjustment is at most 1000000000000 credits"),
        admin.db.write() as s,
    ):
        ledger.adjust(s, audit.CLI, "bob@example.com", amount, "typo")
    assert admin.balance("bob@example.com") == 5


def test_adjustment_form_refuses_to_pass_the_ceiling(client: FlaskClient, admin: Billing) -> None:
    admin.user("bob@example.com", MAX_AMOUNT_UCR - 1)
    with admin.db.read_session() as s:
        user_id = s.scalar(select(User.id).where(User.email == "bob@example.com"))
    url = f"/admin/users/{user_id}/adjust"
    response = post_form(client, url, **{"adjust-amount": "0.000002", "adjust-reason": "more"})
    assert response.status_code == 400
    assert "above the ceiling" in _field_error(response, "adjust-amount")
    beyond = post_form(client, url, **{"adjust-amount": MAX + ".1", "adjust-reason": "more"})
    assert beyond.status_code == 400
    assert "cannot exceed" in _field_error(beyond, "adjust-amount")
    assert admin.balance("bob@example.com") == MAX_AMOUNT_UCR - 1
    ok = post_form(client, url, **{"adjust-amount": "0.000001", "adjust-reason": "to the top"})
    assert ok.status_code == 302
    assert admin.balance("bob@example.com") == MAX_AMOUNT_UCR
    assert admin.problems() == []


def test_pages_that_sum_every_balance_survive_ten_full_wallets(
    client: FlaskClient, admin: Billing
) -> None:
    for n in range(10):
        admin.user(f"rich{n}@example.com", MAX_AMOUNT_UCR)  # together 10^19 µcr > 2^63
    assert client.get("/admin/rate").status_code == 200
    page = client.get("/admin/analytics")
    assert page.status_code == 200
    assert "10,000,000,000,000" in page.get_data(as_text=True)
    assert admin.problems() == []


# --- check-ledger on data no entry point can write any more ------------------------


def test_check_ledger_reports_a_huge_or_fractional_balance_instead_of_crashing(
    admin: Billing, runner: FlaskCliRunner
) -> None:
    user = admin.user("bob@example.com", 1)
    huge = 2**62
    with admin.db.write() as s:
        for n in range(2):  # entries whose sum passes 64 bits
            s.execute(
                text(
                    "INSERT INTO ledger_entries (wallet_id, amount_ucr, balance_after_ucr, kind,"
                    " memo, created_at) VALUES (:w, :a, :a, 'adjustment', :m, CURRENT_TIMESTAMP)"
                ),
                {"w": user.wallet.id, "a": huge, "m": f"corrupt {n}"},
            )
        # What SQLite made of an overflowing "balance + amount" before the bounds:
        # a float. PostgreSQL can only hold the largest integer.
        corrupt = "1e19" if not USING_PG else str(2**63 - 1)
        s.execute(
            text(f"UPDATE wallets SET balance_ucr = {corrupt} WHERE id = :w"), {"w": user.wallet.id}
        )
    result = runner.invoke(args=["check-ledger"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    expected = 2 * huge + 1
    assert f"balance != sum(ledger): wallet {user.wallet.id}: expected {expected}" in result.output
