"""The ledger's CLI commands (spec §3), each leaving history and audit rows."""

from __future__ import annotations

import json

from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select, text

from blueprints.extensions import database
from core.models import AiModel, AuditEntry, ModelPriceChange, RateChange
from tests.conftest import Billing


def _rows(app: Flask, model):
    with app.app_context(), database().read_session() as s:
        return s.scalars(select(model).order_by(model.id)).all()


def test_set_rate_keeps_history_and_audit(app: Flask, runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["set-rate", "12000", "--reason", "supplier price rise"])
    assert result.exit_code == 0, result.output
    assert "10,000 -> 12,000" in result.output
    initial, change = _rows(app, RateChange)
    assert (initial.credits_per_usd, initial.reason) == (10_000, "initial rate")
    assert (change.old_credits_per_usd, change.credits_per_usd) == (10_000, 12_000)
    assert (change.actor_label, change.reason) == ("cli", "supplier price rise")
    (entry,) = _rows(app, AuditEntry)
    assert entry.action == "rate.change"
    assert json.loads(entry.before) == {"credits_per_usd": 10_000}
    assert json.loads(entry.after) == {"credits_per_usd": 12_000}


def test_set_rate_refuses_bad_input(app: Flask, runner: FlaskCliRunner) -> None:
    for value in ("0", "-1", "2.5", "1e9", "NaN", "1000000001"):
        result = runner.invoke(args=["set-rate", value, "--reason", "x"])
        assert result.exit_code == 1, value
    assert runner.invoke(args=["set-rate", "500", "--reason", " "]).exit_code == 1
    assert runner.invoke(args=["set-rate", "500"]).exit_code == 2  # --reason is required
    assert len(_rows(app, RateChange)) == 1


def test_set_model_price_creates_updates_and_disables(app: Flask, runner: FlaskCliRunner) -> None:
    result = runner.invoke(
        args=["set-model-price", "gpt-4o-mini", "--input", "0.15", "--output", "0.60"]
    )
    assert result.exit_code == 0, result.output
    assert "$0.15 in / $0.6 out per 1M tokens, enabled" in result.output
    runner.invoke(
        args=["set-model-price", "gpt-4o-mini", "--input", "0.2", "--output", "0.8", "--disable"]
    )
    (model,) = _rows(app, AiModel)
    assert (model.input_price_uusd_per_m, model.output_price_uusd_per_m, model.enabled) == (
        200_000,
        800_000,
        False,
    )
    created, changed = _rows(app, ModelPriceChange)
    assert created.old_input_uusd_per_m is None
    assert (changed.old_input_uusd_per_m, changed.new_input_uusd_per_m) == (150_000, 200_000)
    assert (changed.old_enabled, changed.new_enabled) == (True, False)
    assert model.price_version_id == changed.id
    assert [a.action for a in _rows(app, AuditEntry)] == ["model.create", "model.update"]


def test_set_model_price_refuses_bad_prices(app: Flask, runner: FlaskCliRunner) -> None:
    for price in ("-0.1", "0.0000001", "abc", "inf"):
        result = runner.invoke(args=["set-model-price", "m", "--input", price, "--output", "1"])
        assert result.exit_code == 1, price
    result = runner.invoke(args=["set-model-price", "bad name!", "--input", "1", "--output", "1"])
    assert result.exit_code == 1
    assert _rows(app, AiModel) == []


def test_grant_credits_positive_and_negative(
    app: Flask, runner: FlaskCliRunner, billing: Billing
) -> None:
    billing.user("alice@example.com")
    result = runner.invoke(
        args=["grant-credits", "alice@example.com", "100.5", "--reason", "welcome"]
    )
    assert result.exit_code == 0, result.output
    assert "balance 100.5" in result.output
    result = runner.invoke(args=["grant-credits", "alice@example.com", "-0.5", "--reason", "fix"])
    assert "balance 100" in result.output
    result = runner.invoke(
        args=["grant-credits", "alice@example.com", "-101", "--reason", "too much"]
    )
    assert result.exit_code == 1
    assert "below zero" in result.output
    result = runner.invoke(args=["grant-credits", "nobody@example.com", "1", "--reason", "x"])
    assert result.exit_code == 1
    assert billing.balance("alice@example.com") == 100_000_000
    reasons = [a.reason for a in _rows(app, AuditEntry) if a.action == "wallet.adjust"]
    assert reasons == ["welcome", "fix"]


def test_check_ledger_ok_then_broken(app: Flask, runner: FlaskCliRunner, billing: Billing) -> None:
    user = billing.user("bob@example.com", 10_000_000)
    result = runner.invoke(args=["check-ledger"])
    assert (result.exit_code, result.output.strip()) == (0, "ledger ok")
    with billing.db.write() as s:
        s.execute(text("UPDATE wallets SET balance_ucr = 0 WHERE id = :id"), {"id": user.wallet.id})
    result = runner.invoke(args=["check-ledger"])
    assert result.exit_code == 1
    assert f"wallet {user.wallet.id}: expected 10000000, found 0" in result.output
