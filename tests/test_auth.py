"""Registration, sign-in, sign-out, and the protections around them."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from blueprints.extensions import database
from core.models import User
from tests.conftest import PASSWORD, AuthActions, Billing, csrf_token


def test_register_login_logout(client: FlaskClient, auth: AuthActions) -> None:
    response = auth.register("Alice@Example.com")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert client.get("/dashboard").status_code == 200  # signed in by registering

    assert auth.logout().headers["Location"] == "/auth/login"
    assert client.get("/dashboard").headers["Location"].startswith("/auth/login")

    response = auth.login("alice@example.com")
    assert response.status_code == 302
    page = client.get("/dashboard").get_data(as_text=True)
    assert "alice@example.com" in page


def test_registration_creates_user_with_hashed_password_and_empty_wallet(
    app, auth: AuthActions
) -> None:
    auth.register("bob@example.com")
    with app.app_context(), database().read_session() as s:
        user = s.scalar(select(User))
        assert user.email == "bob@example.com"
        assert user.role == "user"
        assert user.password_hash.startswith("$argon2id$")
        assert PASSWORD not in user.password_hash
        assert user.wallet.balance_ucr == 0


def test_wrong_password_is_refused(
    client: FlaskClient, auth: AuthActions, billing: Billing
) -> None:
    billing.user("carol@example.com")
    response = auth.login("carol@example.com", "not the password")
    assert response.status_code == 200
    assert "Wrong email or password" in response.get_data(as_text=True)
    assert client.get("/dashboard").status_code == 302


def test_unknown_email_gets_the_same_answer(auth: AuthActions) -> None:
    response = auth.login("nobody@example.com")
    assert response.status_code == 200
    assert "Wrong email or password" in response.get_data(as_text=True)


def test_duplicate_email_is_a_field_error(auth: AuthActions, billing: Billing) -> None:
    billing.user("dave@example.com")
    response = auth.register("DAVE@example.com")
    assert response.status_code == 200
    assert "already exists" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("email", "password", "confirm", "message"),
    [
        ("not-an-email", PASSWORD, PASSWORD, "valid email"),
        ("erin@example.com", "short", "short", "at least 8 characters"),
        ("erin@example.com", PASSWORD, "different!!", "Passwords differ"),
        ("", PASSWORD, PASSWORD, "This field is required"),
    ],
)
def test_bad_registration_rerenders_with_field_errors(
    app, auth: AuthActions, email: str, password: str, confirm: str, message: str
) -> None:
    response = auth.register(email, password, confirm)
    assert response.status_code == 200
    assert message in response.get_data(as_text=True)
    with app.app_context(), database().read_session() as s:
        assert s.scalar(select(User)) is None


def test_post_without_csrf_token_is_400(client: FlaskClient, billing: Billing) -> None:
    billing.user("frank@example.com")
    response = client.post("/auth/login", data={"email": "frank@example.com", "password": PASSWORD})
    assert response.status_code == 400
    assert "security token" in response.get_data(as_text=True)
    assert client.get("/dashboard").status_code == 302


def test_csrf_token_accepted_from_htmx_header(client: FlaskClient, billing: Billing) -> None:
    billing.user("gina@example.com")
    token = csrf_token(client)
    response = client.post(
        "/auth/login",
        data={"email": "gina@example.com", "password": PASSWORD},
        headers={"X-CSRFToken": token, "HX-Request": "true"},
    )
    assert response.status_code == 302


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "\\\\evil.example",
        "http:/evil.example",
        "/%09/evil.example",
        "javascript:alert(1)",
        "evil.example",
    ],
)
def test_open_redirects_via_next_are_blocked(
    auth: AuthActions, billing: Billing, target: str
) -> None:
    billing.user("hank@example.com")
    response = auth.login("hank@example.com", next=target)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location == "/", location


def test_local_next_is_followed(auth: AuthActions, billing: Billing) -> None:
    billing.user("ivy@example.com")
    response = auth.login("ivy@example.com", next="/dashboard?tab=usage")
    assert response.headers["Location"] == "/dashboard?tab=usage"


def test_disabled_user_cannot_log_in(
    app, client: FlaskClient, auth: AuthActions, billing: Billing
) -> None:
    user = billing.user("jack@example.com")
    with app.app_context(), database().write() as s:
        s.get(User, user.id).is_disabled = True
    response = auth.login("jack@example.com")
    assert response.status_code == 200
    assert client.get("/dashboard").status_code == 302


def test_disabling_ends_an_existing_session(
    app, client: FlaskClient, auth: AuthActions, billing: Billing
) -> None:
    user = billing.user("kim@example.com")
    auth.login("kim@example.com")
    assert client.get("/dashboard").status_code == 200
    with app.app_context(), database().write() as s:
        s.get(User, user.id).is_disabled = True
    assert client.get("/dashboard").status_code == 302


def test_login_is_rate_limited_per_email(auth: AuthActions, billing: Billing) -> None:
    billing.user("lee@example.com")
    codes = [auth.login("lee@example.com", "wrong password").status_code for _ in range(6)]
    assert codes[:5] == [200] * 5
    assert codes[5] == 429
    # The limit holds even with the right password: no brute-force by retrying.
    response = auth.login("lee@example.com")
    assert response.status_code == 429
    assert "Retry-After" in response.headers


def test_login_is_rate_limited_per_ip(auth: AuthActions) -> None:
    codes = [auth.login(f"nobody{i}@example.com", "wrong password").status_code for i in range(21)]
    assert codes[:20] == [200] * 20
    assert codes[20] == 429


def test_logout_get_only_asks_for_confirmation(
    client: FlaskClient, auth: AuthActions, billing: Billing
) -> None:
    billing.user("max@example.com")
    auth.login("max@example.com")
    assert client.get("/auth/logout").status_code == 200
    assert client.get("/dashboard").status_code == 200  # still signed in


def test_session_is_renewed_at_login(
    client: FlaskClient, auth: AuthActions, billing: Billing
) -> None:
    billing.user("ned@example.com")
    with client.session_transaction() as sess:
        sess["planted"] = "by an attacker"
    auth.login("ned@example.com")
    with client.session_transaction() as sess:
        assert "planted" not in sess
        assert sess["_user_id"]


def test_session_cookie_flags(client: FlaskClient, auth: AuthActions) -> None:
    response = auth.register("olga@example.com")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain http in tests


def test_session_cookie_secure_over_https(db_config) -> None:
    from tests.conftest import make_test_app

    app = make_test_app(db_config, PREFERRED_URL_SCHEME="https")
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["REMEMBER_COOKIE_SECURE"] is True
    app.extensions["creditline.db"].dispose()


def test_form_fields_render_clean_attributes(client: FlaskClient, auth: AuthActions) -> None:
    page = client.get("/auth/login").get_data(as_text=True)
    assert '="None"' not in page
    assert 'autocomplete="email"' in page
    page = auth.login("nobody@example.com", "x").get_data(as_text=True)
    assert 'aria-invalid="true"' in page
    assert 'aria-describedby="password-error"' in page
