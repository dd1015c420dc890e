"""Admin settings: validated, audited, in force for the next event."""

from __future__ import annotations

import json

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from core.errors import LimitExceeded
from core.models import AuditEntry
from tests.conftest import Billing, post_form

VALID = {
    "topup_options": "5, 10, 25, 50, 100",
    "max_tokens": "10000000",
    "max_credits": "1000000",
    "overdraft": "0",
    "threshold": "5000",
    "reason": "r",
}


def _post(client: FlaskClient, **fields: str):
    return post_form(client, "/admin/settings", **{**VALID, **fields})


def test_form_shows_current_values(client: FlaskClient, admin: Billing) -> None:
    page = client.get("/admin/settings").get_data(as_text=True)
    assert 'value="5, 10, 25, 50, 100"' in page
    assert 'value="1,000,000"' in page  # max credits per event, separated like every figure
    assert 'value="10,000,000"' in page  # max tokens per event
    assert 'value="5,000"' in page  # default alert


def test_change_is_audited_and_in_force(client: FlaskClient, admin: Billing) -> None:
    admin.user("alice@example.com", 100_000_000)
    response = _post(client, topup_options="10, 20", max_tokens="1000", reason="tighten caps")
    assert response.status_code == 302
    with admin.db.read_session() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "settings.update")).one()
    assert json.loads(entry.after) == {"max_tokens_per_event": 1000, "topup_options_usd": [10, 20]}
    assert entry.reason == "tighten caps"
    with pytest.raises(LimitExceeded):
        admin.debit("big", "alice@example.com")  # 1,500 tokens > 1,000
    assert 'data-amount="20"' in client.get("/pricing").get_data(as_text=True)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"topup_options": "5, ten"}, "whole dollar amounts"),
        ({"topup_options": "5, 5"}, "differ"),
        ({"topup_options": "0"}, "from 1 to 10,000"),
        ({"max_tokens": "0"}, "at least 1"),
        ({"max_tokens": "-5"}, "at least 1"),
        ({"max_credits": "-1"}, "negative"),
        ({"overdraft": "1e3"}, "exponent"),
        ({"threshold": "abc"}, "must be a number"),
        ({"reason": ""}, "This field is required"),
    ],
)
def test_bad_settings_rerender_with_errors(
    client: FlaskClient, admin: Billing, fields, message
) -> None:
    response = _post(client, **fields)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    with admin.db.read_session() as s:
        assert (
            s.scalars(select(AuditEntry).where(AuditEntry.action == "settings.update")).all() == []
        )
