"""Sign-up: limited per IP, and one account per email however it is spelled."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from blueprints.extensions import database
from core.emails import check_email, normalise_email
from core.errors import ValidationError
from core.models import UsageEvent, User
from core.pricing import MICRO as CR
from tests.conftest import AuthActions, Billing, make_test_app


def emails(app: Flask) -> list[str]:
    with app.app_context(), database().read_session() as s:
        return list(s.scalars(select(User.email).order_by(User.id)))


# The per-IP limit


def test_the_sixth_sign_up_from_one_ip_in_an_hour_is_refused(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    assert app.config["REGISTER_RATE_LIMIT"] == "5/hour"
    for n in range(5):
        assert auth.register(f"user{n}@example.com").status_code == 302
    response = auth.register("user5@example.com")
    assert response.status_code == 429
    assert 3000 < int(response.headers["Retry-After"]) <= 3601
    page = response.get_data(as_text=True)
    assert "Too many accounts were created from your network recently." in page
    assert "Please try again in 60 minutes." in page
    assert 'name="email"' in page and "user5@example.com" in page  # the form, kept
    assert "user5@example.com" not in emails(app)
    assert len(emails(app)) == 5

    other_ip = app.test_client()
    other_ip.environ_base["REMOTE_ADDR"] = "203.0.113.9"
    assert AuthActions(other_ip).register("user6@example.com").status_code == 302


def test_form_errors_do_not_use_up_the_allowance(
    db_config: dict[str, Any],
) -> None:
    app = make_test_app(db_config, REGISTER_RATE_LIMIT="2/hour")
    try:
        auth = AuthActions(app.test_client())
        for bad in ("not-an-email", "bad@example.com."):
            assert auth.register(bad).status_code == 200
        assert auth.register("bad@example.com", "short").status_code == 200
        assert auth.register("one@example.com").status_code == 302
        assert auth.register("two@example.com").status_code == 302
        assert auth.register("three@example.com").status_code == 429
        assert emails(app) == ["one@example.com", "two@example.com"]
    finally:
        app.extensions["creditline.db"].dispose()


# One spelling per address


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("ａｌｉｃｅ@ｅｘａｍｐｌｅ.ｃｏｍ", "alice@example.com"),  # full-width
        ("ALICE@Example.COM", "alice@example.com"),
        ("  alice@example.com\u3000", "alice@example.com"),  # ideographic space
        ("ﬁona@example.com", "fiona@example.com"),  # the fi ligature
        ("jürgen@example.de", "jürgen@example.de"),
    ],
)
def test_compatibility_spellings_become_the_plain_address(
    app: Flask, auth: AuthActions, typed: str, stored: str
) -> None:
    assert auth.register(typed).status_code == 302
    assert emails(app) == [stored]


@pytest.mark.parametrize(
    "look_alike",
    ["ａｌｉｃｅ@example.com", "ALICE@example.com", "alice@ｅｘａｍｐｌｅ.com"],
)
def test_a_look_alike_of_an_existing_address_is_that_address(
    app: Flask, auth: AuthActions, billing: Billing, look_alike: str
) -> None:
    billing.user("alice@example.com")
    response = auth.register(look_alike)
    assert response.status_code == 200
    assert "An account with this email already exists." in response.get_data(as_text=True)
    assert emails(app) == ["alice@example.com"]
    assert AuthActions(app.test_client()).login(look_alike).status_code == 302


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("al\u200bice@example.com", "invisible"),  # zero-width space
        ("ali\u200dce@example.com", "invisible"),  # zero-width joiner
        ("\u2060alice@example.com", "invisible"),  # word joiner
        ("alice@exam\u00adple.com", "invisible"),  # soft hyphen
        ("\u202eelcia@example.com", "invisible"),  # right-to-left override
        ("\ufeffalice@example.com", "invisible"),  # byte order mark
        ("ali ce@example.com", "spaces"),
        ("alice\u00a0@example.com", "spaces"),  # no-break space (NFKC: a space)
        ("alice@example.com.", "Remove the dot at the end"),
        ("alice@example..com", "valid email address"),
        ("alice@.example.com", "valid email address"),
        ("alice@example", "valid email address"),
        ("alice@@example.com", "valid email address"),
        ("alice@exa_mple.com", "valid email address"),
        ("alice@-example.com", "valid email address"),
        ("@example.com", "valid email address"),
    ],
)
def test_invisible_and_malformed_addresses_are_refused_with_a_clear_error(
    app: Flask, auth: AuthActions, typed: str, message: str
) -> None:
    response = auth.register(typed)
    assert response.status_code == 200
    assert message in response.get_data(as_text=True)
    assert emails(app) == []


@given(st.text(max_size=40))
def test_normalising_is_idempotent_and_accepted_addresses_are_canonical(text: str) -> None:
    once = normalise_email(text)
    assert normalise_email(once) == once
    try:
        check_email(once)
    except ValidationError:
        return
    assert "@" in once


@given(st.text(alphabet=st.characters(codec="ascii"), max_size=30))
def test_ascii_addresses_stored_before_keep_their_spelling(text: str) -> None:
    """Stored emails were ``strip().lower()``-ed: the same string today."""
    stored = text.strip().lower()
    assert normalise_email(stored) == stored


# The API and the rate limits look users up through the same spelling


def test_api_maps_a_look_alike_to_the_account_and_refuses_invisible_ones(
    client: FlaskClient, billing: Billing
) -> None:
    billing.user("alice@example.com", 100 * CR)
    headers = {"Authorization": f"Bearer {billing.api_key()}"}
    usage = {"model": "gpt-4o-mini", "input_tokens": 1000, "output_tokens": 500}

    full_width = {"event_id": "e1", "user": "ａｌｉｃｅ@example.com", **usage}
    response = client.post("/api/v1/usage", json=full_width, headers=headers)
    assert response.status_code == 201
    assert billing.balance("alice@example.com") == 95_500_000
    # The same event under the plain spelling is the same event: a replay.
    plain = {**full_width, "user": "alice@example.com"}
    assert client.post("/api/v1/usage", json=plain, headers=headers).status_code == 200

    zero_width = {"event_id": "e2", "user": "ali\u200bce@example.com", **usage}
    response = client.post("/api/v1/usage", json=zero_width, headers=headers)
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "unknown_user"
    with billing.db.read_session() as s:
        stored = s.scalars(select(UsageEvent).where(UsageEvent.event_id == "e2")).one()
        assert (stored.status, stored.reason_code) == ("rejected", "unknown_user")
        assert s.scalar(select(func.count()).select_from(UsageEvent)) == 2
    assert billing.balance("alice@example.com") == 95_500_000

    response = client.get(
        "/api/v1/balance", query_string={"user": "ＡＬＩＣＥ@example.com"}, headers=headers
    )
    assert response.get_json()["user"] == "alice@example.com"


def test_look_alikes_share_one_sign_in_allowance(auth: AuthActions, billing: Billing) -> None:
    billing.user("lee@example.com")
    spellings = ["lee@example.com", "ｌｅｅ@example.com", "LEE@example.com", "ｌee@example.com"]
    codes = [auth.login(spellings[n % 4], "wrong password").status_code for n in range(6)]
    assert codes == [200] * 5 + [429]
