"""What users see of running calls: available and reserved credits, and each
call's source and status in the usage history and its CSV (spec §6)."""

from __future__ import annotations

import csv
import io

from flask.testing import FlaskClient

from core import holds
from core.clock import utcnow
from core.pricing import MICRO as CR
from tests.conftest import AuthActions, Billing
from tests.hold_helpers import request_for, take


def test_the_badge_shows_available_and_what_running_calls_reserve(
    client: FlaskClient, auth: AuthActions, billing: Billing
) -> None:
    billing.user("alice@example.com", 10 * CR)
    auth.login("alice@example.com")
    hold = take(billing, request_for(billing, "alice@example.com"))  # 4.5 reserved
    badge = client.get("/dashboard/balance").get_data(as_text=True)
    assert "5.50 credits" in badge and "(4.50 reserved)" in badge
    with billing.db.raw_write() as cur:
        holds.settle(cur, hold, 1000, 500, utcnow(), estimated=True)
    badge = client.get("/dashboard/balance").get_data(as_text=True)
    assert "5.50 credits" in badge and "reserved" not in badge


def test_history_and_csv_show_source_and_status(
    client: FlaskClient, auth: AuthActions, billing: Billing
) -> None:
    billing.user("alice@example.com", 10 * CR)
    auth.login("alice@example.com")
    billing.debit("reported-1", "alice@example.com")
    hold = take(billing, request_for(billing, "alice@example.com"))
    with billing.db.raw_write() as cur:
        holds.settle(cur, hold, 100, 50, utcnow(), estimated=True)
    page = client.get("/usage").get_data(as_text=True)
    assert "<td>laptop</td>" in page and "<td>API</td>" in page
    assert "estimated</span></td>" in page and "<td>charged</td>" in page
    rows = list(csv.DictReader(io.StringIO(client.get("/usage.csv").get_data(as_text=True))))
    assert [(r["source"], r["status"], r["credits_charged"]) for r in rows] == [
        ("laptop", "estimated", "0.45"),
        ("API", "charged", "4.5"),
    ]
