"""The usage CSV export arrives whole or visibly fails: refused up front over
``CSV_EXPORT_MAX_ROWS``, its row count announced in ``X-Row-Count``, and
sent chunked by gunicorn so a cut is an error for any HTTP client."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from core.pricing import MICRO as CR
from tests.conftest import PASSWORD, AuthActions, Billing, make_test_app
from tests.gunicorn_server import Gunicorn


@pytest.fixture
def alice(app: Flask, auth: AuthActions, billing: Billing) -> Billing:
    billing.user("alice@example.com", 1_000 * CR)
    auth.login("alice@example.com")
    return billing


def _rows(body: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body)))


def test_an_export_over_the_maximum_is_refused_with_a_way_forward(
    app: Flask, client: FlaskClient, alice: Billing
) -> None:
    app.config["CSV_EXPORT_MAX_ROWS"] = 3
    for n in range(4):
        alice.debit(f"e{n}", "alice@example.com")
    with alice.db.write() as s:  # e0 happened long ago
        s.execute(text("UPDATE usage_events SET received_at = '2020-01-01' WHERE event_id = 'e0'"))

    refused = client.get("/usage.csv")
    assert refused.status_code == 400
    assert refused.mimetype == "text/html"
    page = refused.get_data(as_text=True)
    assert "more than 3 rows" in page and "shorter period" in page
    assert 'id="usage-filters"' in page  # the usage page, to narrow the dates right there

    narrowed = client.get("/usage.csv?since=2021-01-01")
    assert narrowed.status_code == 200 and narrowed.mimetype == "text/csv"
    assert narrowed.headers["X-Row-Count"] == "3"
    assert [row[1] for row in _rows(narrowed.get_data(as_text=True))[1:]] == ["e3", "e2", "e1"]


def test_the_row_count_header_matches_the_rows(client: FlaskClient, alice: Billing) -> None:
    alice.set(max_tokens_per_event=10**9)
    for n in range(1203):
        alice.debit(f"e{n}", "alice@example.com", input_tokens=1, output_tokens=0)
    response = client.get("/usage.csv")
    assert response.headers["X-Row-Count"] == "1203"
    assert len(_rows(response.get_data(as_text=True))) == 1 + 1203
    empty = client.get("/usage.csv?model=nothing-like-this")
    assert empty.headers["X-Row-Count"] == "0"
    assert _rows(empty.get_data(as_text=True))[0][0] == "time_utc"


@pytest.mark.slow
def test_the_export_is_sent_chunked_by_the_server(
    db_config: dict[str, Any], tmp_path: Path
) -> None:
    """No Content-Length, chunked: only a complete response ends with the
    last chunk, so a cut export is an error (requests: ChunkedEncodingError)."""
    app = make_test_app(db_config)
    billing = Billing(app)
    billing.user("alice@example.com", 10_000 * CR)
    for n in range(700):
        billing.debit(f"e{n}", "alice@example.com")
    app.extensions["creditline.db"].dispose()
    with Gunicorn(db_config, tmp_path) as server:
        browser = requests.Session()
        page = browser.get(server.url + "/auth/login", timeout=10).text
        token = re.search(r'name="csrf-token" content="([^"]+)"', page)[1]  # type: ignore[index]
        form = {"email": "alice@example.com", "password": PASSWORD, "csrf_token": token}
        assert browser.post(server.url + "/auth/login", data=form, timeout=10).ok
        response = browser.get(server.url + "/usage.csv", timeout=30)
    assert response.status_code == 200
    assert response.headers["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in response.headers
    assert len(_rows(response.text)) == 1 + 700 == 1 + int(response.headers["X-Row-Count"])
