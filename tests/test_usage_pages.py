"""Usage totals, history (filters, keyset pages), CSV export, user settings."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import text

from core.clock import utcnow
from core.pricing import MICRO as CR
from tests.conftest import PASSWORD, AuthActions, Billing, post_form


@pytest.fixture
def alice(client: FlaskClient, auth: AuthActions, billing: Billing) -> Billing:
    billing.user("alice@example.com", 1_000 * CR)
    billing.set_price("gpt-4o", 2_500_000, 10_000_000)
    auth.login("alice@example.com")
    return billing


def _age_event(billing: Billing, event_id: str, days: int) -> None:
    """Move an event (and its rollup) into the past, as if charged then."""
    when = utcnow() - timedelta(days=days)
    with billing.db.write() as s:
        s.execute(
            text("UPDATE usage_events SET received_at = :t WHERE event_id = :e"),
            {"t": when, "e": event_id},
        )
        s.execute(text("DELETE FROM usage_daily"))
        s.execute(
            text(
                "INSERT INTO usage_daily (user_id, day, model_id, events, input_tokens,"
                " output_tokens, cost_ucr) SELECT user_id, :day, model_id, 1, input_tokens,"
                " output_tokens, cost_ucr FROM usage_events WHERE event_id = :e"
            ),
            {"day": when.date(), "e": event_id},
        )


def test_dashboard_totals_come_from_rollups(client: FlaskClient, alice: Billing) -> None:
    alice.debit("a", "alice@example.com")  # 4.5 credits
    alice.debit("b", "alice@example.com", model="gpt-4o", input_tokens=200, output_tokens=80)  # 13
    page = client.get("/dashboard").get_data(as_text=True)
    assert page.count("<strong>17.50</strong> <small>credits</small>") == 3  # today, month, 30 days
    assert "2 requests · 1,780 tokens" in page
    assert 'id="recent-usage-table"' in page
    assert "<title>" in page and "17.50 credits</title>" in page  # today's bar in the chart


def test_totals_split_by_period(client: FlaskClient, alice: Billing) -> None:
    alice.debit("old", "alice@example.com")
    _age_event(alice, "old", 40)  # outside every window
    page = client.get("/dashboard").get_data(as_text=True)
    assert page.count("<strong>0.00</strong> <small>credits</small>") == 3


def test_history_filters_and_pages(client: FlaskClient, alice: Billing) -> None:
    for n in range(7):
        alice.debit(
            f"m{n}",
            "alice@example.com",
            model="gpt-4o-mini" if n % 2 else "gpt-4o",
            input_tokens=10,
        )
    page = client.get("/usage?model=gpt-4o").get_data(as_text=True)
    assert page.count("<td>gpt-4o</td>") == 4
    assert "<td>gpt-4o-mini</td>" not in page

    from core import usage

    with alice.db.read_session() as s:
        user_id = s.execute(text("SELECT id FROM users WHERE email = 'alice@example.com'")).scalar()
        first, cursor = usage.history_page(s, user_id, usage.Filters(), None, per_page=3)
        second, cursor2 = usage.history_page(s, user_id, usage.Filters(), cursor, per_page=3)
        third, cursor3 = usage.history_page(s, user_id, usage.Filters(), cursor2, per_page=3)
    ids = [e.event_id for e in first + second + third]
    assert ids == [f"m{n}" for n in range(6, -1, -1)]
    assert cursor3 is None


def test_history_link_to_older_page(client: FlaskClient, alice: Billing) -> None:
    for n in range(55):
        alice.debit(f"m{n}", "alice@example.com", input_tokens=1, output_tokens=0)
    page = client.get("/usage").get_data(as_text=True)
    assert page.count("<tr>") == 51  # header + 50 rows
    assert 'id="older"' in page
    older = page.split('id="older"')[0].rsplit('href="', 1)[1].split('"')[0].replace("&amp;", "&")
    rest = client.get(older).get_data(as_text=True)
    assert rest.count("<tr>") == 6
    assert 'id="older"' not in rest


def test_history_date_filter_and_bad_dates(client: FlaskClient, alice: Billing) -> None:
    alice.debit("old", "alice@example.com")
    alice.debit("new", "alice@example.com")
    _age_event(alice, "old", 10)
    today = utcnow().date()
    page = client.get(f"/usage?since={today.isoformat()}").get_data(as_text=True)
    assert page.count("<td>gpt-4o-mini</td>") == 1
    response = client.get("/usage?since=yesterday&until=<script>")
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert "is not a date" in body
    assert "<script>" not in body.split("<main")[1]


@pytest.mark.parametrize(
    ("query", "status", "rows"),
    [
        ("since=0001-01-01&until=9999-12-31", 200, 2),
        ("until=9999-12-31", 200, 2),
        ("since=9999-12-31", 200, 0),
        ("since=0001-01-01&until=0001-01-01", 200, 0),
        ("since=0000-01-01", 400, 2),
        ("until=10000-01-01", 400, 2),
        ("until=9999-12-32", 400, 2),
        ("since=9999-12-31&until=0001-01-01", 400, 2),
        ("since=%F0%9F%92%A5&until=-1", 400, 2),
    ],
)
def test_history_filters_at_the_ends_of_the_calendar(
    client: FlaskClient, alice: Billing, query: str, status: int, rows: int
) -> None:
    alice.debit("a", "alice@example.com")
    alice.debit("b", "alice@example.com")
    page = client.get(f"/usage?{query}")
    assert page.status_code == status
    assert page.get_data(as_text=True).count("<td>gpt-4o-mini</td>") == rows
    export = client.get(f"/usage.csv?{query}")
    assert export.status_code == 200  # a bad filter is ignored by the export
    assert len(list(csv.reader(io.StringIO(export.get_data(as_text=True))))) == 1 + rows


def test_csv_export_streams_every_row(client: FlaskClient, alice: Billing) -> None:
    alice.set(max_tokens_per_event=10**9)
    for n in range(1203):
        alice.debit(f"e{n}", "alice@example.com", input_tokens=1, output_tokens=0)
    response = client.get("/usage.csv")
    assert response.mimetype == "text/csv"
    assert response.is_streamed
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0][:3] == ["time_utc", "event_id", "model"]
    assert len(rows) == 1 + 1203
    assert rows[1][1] == "e1202"  # newest first
    assert rows[1][5] == "0.0015"


def test_csv_neutralises_formulas(client: FlaskClient, alice: Billing) -> None:
    alice.debit('=HYPERLINK("http://evil")', "alice@example.com", conversation_id="+1")
    rows = list(csv.reader(io.StringIO(client.get("/usage.csv").get_data(as_text=True))))
    assert rows[1][1].startswith("'=")
    assert rows[1][8] == "'+1"


def test_other_users_usage_is_not_visible(client: FlaskClient, alice: Billing) -> None:
    alice.user("bob@example.com", 100 * CR)
    alice.debit("bobs-secret-event", "bob@example.com")
    assert "bobs-secret-event" not in client.get("/usage.csv").get_data(as_text=True)


def test_user_sets_own_threshold(client: FlaskClient, alice: Billing) -> None:
    assert "Your balance is low" in client.get("/dashboard").get_data(as_text=True)  # 1,000 < 5,000
    response = post_form(client, "/settings/threshold", csrf_page="/settings", threshold="500")
    assert response.status_code == 302
    assert "Your balance is low" not in client.get("/dashboard").get_data(as_text=True)
    for bad in ("-1", "abc", "0.0000001", "1e5"):
        response = post_form(client, "/settings/threshold", csrf_page="/settings", threshold=bad)
        assert response.status_code == 400, bad
        assert 'aria-invalid="true"' in response.get_data(as_text=True)
    post_form(client, "/settings/threshold", csrf_page="/settings", threshold="")  # back to default
    assert "Your balance is low" in client.get("/dashboard").get_data(as_text=True)


def test_password_change(client: FlaskClient, auth: AuthActions, alice: Billing) -> None:
    wrong = auth.change_password("nope", "brand new pass")
    assert wrong.status_code == 400
    assert "current password is wrong" in wrong.get_data(as_text=True)
    ok = auth.change_password(PASSWORD, "brand new pass")
    assert ok.status_code == 302
    auth.logout()
    assert auth.login("alice@example.com").status_code == 200  # old password refused
    assert auth.login("alice@example.com", "brand new pass").status_code == 302
