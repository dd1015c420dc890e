"""A user's time zone: chosen on the settings page (IANA names only), used
for every time on their pages with the zone's abbreviation; CSV stays UTC."""

from __future__ import annotations

from datetime import datetime

import pytest
from flask.testing import FlaskClient
from sqlalchemy import update

from core import time_zones
from core.errors import ValidationError
from core.models import UsageEvent, User
from core.pricing import MICRO as CR
from tests.conftest import AuthActions, Billing, post_form


@pytest.fixture
def alice(client: FlaskClient, auth: AuthActions, billing: Billing) -> Billing:
    billing.user("alice@example.com", 100 * CR)
    auth.login("alice@example.com")
    billing.debit("e1", "alice@example.com")
    with billing.db.write() as s:  # a winter and a summer moment
        s.execute(update(UsageEvent).values(received_at=datetime(2026, 1, 15, 23, 30, 5)))
    billing.debit("e2", "alice@example.com")
    with billing.db.write() as s:
        s.execute(
            update(UsageEvent)
            .where(UsageEvent.event_id == "e2")
            .values(received_at=datetime(2026, 7, 1, 12, 0, 0))
        )
    return billing


def _zone(billing: Billing) -> str:
    with billing.db.read_session() as s:
        return s.query(User).filter_by(email="alice@example.com").one().time_zone


def test_zone_text_carries_the_abbreviation() -> None:
    winter, summer = datetime(2026, 1, 15, 23, 30, 5), datetime(2026, 7, 1, 12, 0)
    assert time_zones.local(winter, "UTC") == "2026-01-15 23:30:05 UTC"
    assert time_zones.local(winter, "Europe/Berlin") == "2026-01-16 00:30:05 CET"
    assert time_zones.local(summer, "Europe/Berlin", "minute") == "2026-07-01 14:00 CEST"
    assert time_zones.local(winter, "Asia/Tehran", "minute") == "2026-01-16 03:00 UTC+03:30"
    assert time_zones.local(summer, "America/Sao_Paulo", "minute") == "2026-07-01 09:00 UTC-03"


@pytest.mark.parametrize("bad", ["Mars/Olympus", "europe/berlin", "../etc/passwd", "x" * 65])
def test_only_known_zone_names(bad: str) -> None:
    with pytest.raises(ValidationError):
        time_zones.clean(bad)
    assert time_zones.clean("  Europe/Berlin ") == "Europe/Berlin"
    assert time_zones.clean("") == "UTC"


def test_pages_default_to_utc(client: FlaskClient, alice: Billing) -> None:
    assert _zone(alice) == "UTC"
    page = client.get("/usage").get_data(as_text=True)
    assert "2026-01-15 23:30:05 UTC" in page
    assert 'datetime="2026-01-15T23:30:05Z"' in page


def test_chosen_zone_shows_on_pages_and_csv_stays_utc(client: FlaskClient, alice: Billing) -> None:
    response = post_form(
        client, "/settings/time-zone", csrf_page="/settings", time_zone="Europe/Berlin"
    )
    assert response.status_code == 302
    assert _zone(alice) == "Europe/Berlin"
    page = client.get("/usage").get_data(as_text=True)
    assert "2026-01-16 00:30:05 CET" in page
    assert "2026-07-01 14:00:00 CEST" in page
    assert 'datetime="2026-01-15T23:30:05Z"' in page  # machine-readable stays UTC
    assert "Europe/Berlin" in client.get("/settings").get_data(as_text=True)
    csv = client.get("/usage.csv").get_data(as_text=True)
    assert "2026-01-15T23:30:05" in csv and "CET" not in csv


def test_unknown_zone_is_a_field_error(client: FlaskClient, alice: Billing) -> None:
    response = post_form(
        client, "/settings/time-zone", csrf_page="/settings", time_zone="Mars/Olympus"
    )
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert 'id="time_zone-error"' in html and "Unknown time zone" in html
    assert 'value="Mars/Olympus"' in html
    assert _zone(alice) == "UTC"
