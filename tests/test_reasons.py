"""One reason rule (core.audit.clean_reason) on every path that takes a reason.

A blank or over-long reason is refused by every domain function that takes
one, by every admin form (on its reason field) and by every CLI command with
``--reason`` (a one-line error, exit 1), and nothing is written. A reason
is stored stripped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core import accounts, audit, catalog, ledger, settings
from core.audit import MAX_REASON_LENGTH, clean_reason
from core.errors import ValidationError
from core.models import (
    AiModel,
    AuditEntry,
    LedgerEntry,
    ModelPriceChange,
    RateChange,
    Setting,
    User,
    Wallet,
)
from tests.conftest import AuthActions, Billing, csrf_token, sign_in_admin

BLANK = " \t\n "
TOO_LONG = "x" * (MAX_REASON_LENGTH + 1)
REQUIRED = "A reason is required."
LENGTH = "Keep the reason to 2,000 characters or fewer."


def _state(billing: Billing) -> tuple[Any, ...]:
    """Everything a reasoned change could write."""
    with billing.db.read_session() as s:
        counts = tuple(
            s.scalar(select(func.count()).select_from(table))
            for table in (AuditEntry, RateChange, ModelPriceChange, LedgerEntry, Setting, AiModel)
        )
        users = s.execute(select(User.email, User.role, User.is_disabled).order_by(User.id)).all()
        wallets = s.execute(select(Wallet.balance_ucr, Wallet.flagged).order_by(Wallet.id)).all()
        prices = s.execute(
            select(AiModel.name, AiModel.input_price_uusd_per_m, AiModel.enabled)
        ).all()
    return counts, users, wallets, prices


@pytest.fixture
def world(billing: Billing) -> Billing:
    alice = billing.user("alice@example.com", 10_000_000)
    with billing.db.write() as s:
        s.execute(update(Wallet).where(Wallet.user_id == alice.id).values(flagged=True))
    return billing


# --- the rule --------------------------------------------------------------------


def test_clean_reason_strips_and_keeps_up_to_the_limit() -> None:
    assert clean_reason("  refund for outage \n") == "refund for outage"
    assert clean_reason(" " + "x" * MAX_REASON_LENGTH + " ") == "x" * MAX_REASON_LENGTH
    for bad, message in ((None, REQUIRED), ("", REQUIRED), (BLANK, REQUIRED), (TOO_LONG, LENGTH)):
        with pytest.raises(ValidationError) as refused:
            clean_reason(bad)
        assert (refused.value.message, refused.value.details) == (message, {"field": "reason"})


# --- every domain function that takes a reason --------------------------------------


def _domain_calls(billing: Billing) -> dict[str, Callable[[str], object]]:
    """name -> a call of that domain function with the given reason."""
    db = billing.db
    with db.read_session() as s:
        alice = s.scalar(select(User.id).where(User.email == "alice@example.com"))

    def write(work: Callable[[Session], object]) -> None:
        with db.write() as s:
            work(s)

    def model_price(s: Session, reason: str) -> object:
        return catalog.set_model_price(
            s,
            audit.CLI,
            "gpt-4o-mini",
            input_uusd_per_m=1,
            output_uusd_per_m=2,
            enabled=False,
            reason=reason,
        )

    return {
        "set_rate": lambda r: write(lambda s: catalog.set_rate(s, audit.CLI, 500, r)),
        "set_model_price": lambda r: write(lambda s: model_price(s, r)),
        "adjust": lambda r: write(lambda s: ledger.adjust(s, audit.CLI, "alice@example.com", 5, r)),
        "set_access": lambda r: write(
            lambda s: accounts.set_access(
                s, audit.CLI, alice, role="admin", disabled=True, reason=r
            )
        ),
        "clear_flag": lambda r: write(lambda s: accounts.clear_flag(s, audit.CLI, alice, r)),
        "settings_update": lambda r: write(
            lambda s: settings.update(s, audit.CLI, r, max_tokens_per_event=123)
        ),
    }


DOMAIN = ["set_rate", "set_model_price", "adjust", "set_access", "clear_flag", "settings_update"]


@pytest.mark.parametrize("name", DOMAIN)
@pytest.mark.parametrize(("reason", "message"), [(BLANK, REQUIRED), (TOO_LONG, LENGTH)])
def test_domain_functions_refuse_a_bad_reason_and_write_nothing(
    world: Billing, name: str, reason: str, message: str
) -> None:
    before = _state(world)
    with pytest.raises(ValidationError) as refused:
        _domain_calls(world)[name](reason)
    assert refused.value.message == message
    assert refused.value.details.get("field") == "reason"
    assert _state(world) == before


@pytest.mark.parametrize("name", DOMAIN)
def test_domain_functions_store_the_reason_stripped(world: Billing, name: str) -> None:
    _domain_calls(world)[name]("  checked with finance \n")
    with world.db.read_session() as s:
        latest = s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(1)).one()
    assert latest.reason == "checked with finance"


# --- every admin form with a reason --------------------------------------------------


@pytest.fixture
def admin(client: FlaskClient, auth: AuthActions, world: Billing) -> Billing:
    sign_in_admin(auth, world, "boss@example.com")
    return world


def _forms(billing: Billing) -> dict[str, tuple[str, str, dict[str, str]]]:
    """name -> (URL, reason field's id, the other fields of a valid post)."""
    with billing.db.read_session() as s:
        alice = s.scalar(select(User.id).where(User.email == "alice@example.com"))
        model = s.scalar(select(AiModel.id).where(AiModel.name == "gpt-4o-mini"))
    price = {"input_usd": "1", "output_usd": "2", "enabled": "y"}
    return {
        "rate": ("/admin/rate", "reason", {"credits_per_usd": "500"}),
        "add model": ("/admin/models", "reason", {"name": "new-model", **price}),
        "edit model": (f"/admin/models/{model}", "reason", price),
        "settings": (
            "/admin/settings",
            "reason",
            {
                "topup_options": "5, 10",
                "max_tokens": "123",
                "max_credits": "1,000",
                "overdraft": "0",
                "threshold": "5000",
            },
        ),
        "adjust": (f"/admin/users/{alice}/adjust", "adjust-reason", {"adjust-amount": "5"}),
        "access": (
            f"/admin/users/{alice}/access",
            "access-reason",
            {"access-role": "admin", "access-disabled": "y", "confirmed": "yes"},
        ),
        "unflag": (f"/admin/users/{alice}/unflag", "flag-reason", {}),
    }


FORMS = ["rate", "add model", "edit model", "settings", "adjust", "access", "unflag"]


@pytest.mark.parametrize("name", FORMS)
@pytest.mark.parametrize(
    ("reason", "message"), [(BLANK, "This field is required."), (TOO_LONG, LENGTH)]
)
def test_admin_forms_refuse_a_bad_reason_on_the_field_and_write_nothing(
    client: FlaskClient, admin: Billing, name: str, reason: str, message: str
) -> None:
    url, field_id, fields = _forms(admin)[name]
    before = _state(admin)
    token = csrf_token(client, "/admin/users")
    response = client.post(url, data={**fields, field_id: reason, "csrf_token": token})
    assert response.status_code == 400
    assert f'id="{field_id}-error">{message}</small>' in response.get_data(as_text=True)
    assert _state(admin) == before


@pytest.mark.parametrize("name", FORMS)
def test_admin_forms_accept_a_good_reason(client: FlaskClient, admin: Billing, name: str) -> None:
    """The posts above are valid but for the reason."""
    url, field_id, fields = _forms(admin)[name]
    before = _state(admin)
    token = csrf_token(client, "/admin/users")
    response = client.post(url, data={**fields, field_id: " ok ", "csrf_token": token})
    assert response.status_code == 302
    assert _state(admin) != before


# --- every CLI command with --reason -------------------------------------------------

COMMANDS = {
    "set-rate": ["set-rate", "500"],
    "set-model-price": ["set-model-price", "gpt-4o-mini", "--input", "1", "--output", "2"],
    "grant-credits": ["grant-credits", "alice@example.com", "5"],
}


@pytest.mark.parametrize("name", list(COMMANDS))
@pytest.mark.parametrize(("reason", "message"), [(BLANK, REQUIRED), (TOO_LONG, LENGTH)])
def test_cli_refuses_a_bad_reason_and_writes_nothing(
    app: Flask, runner: FlaskCliRunner, world: Billing, name: str, reason: str, message: str
) -> None:
    before = _state(world)
    result = runner.invoke(args=[*COMMANDS[name], "--reason", reason])
    assert (result.exit_code, result.output) == (1, f"Error: {message}\n")
    assert _state(world) == before


@pytest.mark.parametrize("name", list(COMMANDS))
def test_cli_accepts_a_good_reason(
    app: Flask, runner: FlaskCliRunner, world: Billing, name: str
) -> None:
    before = _state(world)
    result = runner.invoke(args=[*COMMANDS[name], "--reason", " ok "])
    assert result.exit_code == 0, result.output
    assert _state(world) != before
