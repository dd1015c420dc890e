"""Admin: exchange rate with history, audit, validation and the impact preview."""

from __future__ import annotations

import json

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from blueprints.extensions import prices
from core import impact
from core.models import AuditEntry, RateChange
from core.pricing import MICRO as CR
from tests.conftest import Billing, post_form


def test_impact_numbers_for_a_known_dataset(app: Flask, billing: Billing) -> None:
    billing.set_price("gpt-4o", 2_500_000, 10_000_000)
    billing.set_price("retired", 1, 1, enabled=False)
    billing.user("a@example.com", 1_234_567_891)  # 1,234.567891 credits
    billing.user("b@example.com", 98_765 * CR)
    with app.app_context(), billing.db.read_session() as s:
        result = impact.rate_impact(s, prices().get(s), 12_500)
    assert [(c.label, c.now, c.new) for c in result.topups] == [
        ("$5", 50_000 * CR, 62_500 * CR),
        ("$10", 100_000 * CR, 125_000 * CR),
        ("$25", 250_000 * CR, 312_500 * CR),
        ("$50", 500_000 * CR, 625_000 * CR),
        ("$100", 1_000_000 * CR, 1_250_000 * CR),
    ]
    # gpt-4o: (1000*2.5 + 500*10)/1M USD = $0.0075 -> 75 credits now, 93.75 new
    # gpt-4o-mini: $0.00045 -> 4.5 credits now, 5.625 new; disabled models left out
    assert [(c.label, c.now, c.new) for c in result.samples] == [
        ("gpt-4o", 75 * CR, 93_750_000),
        ("gpt-4o-mini", 4_500_000, 5_625_000),
    ]
    assert result.liability_ucr == 99_999_567_891
    # 99,999.567891 credits: $9.99 at 10,000/USD, $7.99 at 12,500/USD (floored)
    assert (result.liability_cents_now, result.liability_cents_new) == (999, 799)


def test_preview_partial_updates_with_typed_rate(client: FlaskClient, admin: Billing) -> None:
    html = client.get(
        "/admin/rate/preview?credits_per_usd=20000", headers={"HX-Request": "true"}
    ).get_data(as_text=True)
    assert html.startswith('<div id="rate-preview"')
    assert "10,000 → 20,000 credits per USD" in html
    assert '<td>$25</td><td class="num">250,000</td><td class="num">500,000</td>' in html
    bad = client.get("/admin/rate/preview?credits_per_usd=-3").get_data(as_text=True)
    assert "Rate must be between 1 and 1,000,000,000" in bad
    blank = client.get("/admin/rate/preview?credits_per_usd=").get_data(as_text=True)
    assert "10,000 → 10,000" in blank


def test_rate_change_keeps_history_and_audit(client: FlaskClient, admin: Billing) -> None:
    response = post_form(
        client, "/admin/rate", credits_per_usd="12,000".replace(",", ""), reason="costs up"
    )
    assert response.status_code == 302
    page = client.get("/admin/rate").get_data(as_text=True)
    assert '<strong id="current-rate">12,000</strong>' in page
    assert "costs up" in page
    with admin.db.read_session() as s:
        change = s.scalars(select(RateChange).order_by(RateChange.id.desc())).first()
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "rate.change")).one()
    assert (change.actor_label, change.old_credits_per_usd, change.credits_per_usd) == (
        "boss@example.com",
        10_000,
        12_000,
    )
    assert json.loads(entry.after) == {"credits_per_usd": 12_000}
    assert entry.ip == "127.0.0.1"
    assert "60,000" in client.get("/pricing").get_data(as_text=True)  # $5 at the new rate


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"credits_per_usd": "-5", "reason": "x"}, "between 1 and"),
        ({"credits_per_usd": "abc", "reason": "x"}, "must be a number"),
        ({"credits_per_usd": "1e9", "reason": "x"}, "exponent"),
        ({"credits_per_usd": "99999999999", "reason": "x"}, "between 1 and"),
        ({"credits_per_usd": "500", "reason": "   "}, "This field is required"),
        ({"credits_per_usd": "", "reason": "x"}, "This field is required"),
    ],
)
def test_bad_rate_forms_rerender_with_errors(
    client: FlaskClient, admin: Billing, data, message
) -> None:
    response = post_form(client, "/admin/rate", **data)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    with admin.db.read_session() as s:
        assert len(s.scalars(select(RateChange)).all()) == 1


def test_reason_is_shown_escaped(client: FlaskClient, admin: Billing) -> None:
    post_form(client, "/admin/rate", credits_per_usd="9000", reason="<img src=x onerror=alert(1)>")
    page = client.get("/admin/rate").get_data(as_text=True)
    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
