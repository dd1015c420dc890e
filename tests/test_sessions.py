"""Sessions end for real: sign-out, password change and access changes end
them server-side (a saved cookie replayed later is refused), and a signed-out
htmx request is sent to the login page as a whole-window redirect."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from flask_login.utils import encode_cookie

from blueprints.extensions import database, passwords
from core import accounts, audit
from core.audit import Actor
from core.models import User
from tests.conftest import PASSWORD, AuthActions, Billing

NEW_PASSWORD = "a brand new passphrase"


def signed_in(client: FlaskClient) -> bool:
    return client.get("/dashboard").status_code == 200


def session_cookie(client: FlaskClient) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None
    return cookie.value


def replay(app: Flask, cookie: str) -> FlaskClient:
    """A new browser that carries nothing but a copy of a saved session cookie."""
    thief = app.test_client()
    thief.set_cookie("session", cookie)
    return thief


def second_device(app: Flask, email: str) -> FlaskClient:
    other = app.test_client()
    AuthActions(other).login(email)
    assert signed_in(other)
    return other


def test_a_cookie_saved_before_sign_out_is_dead_after_it(
    app: Flask, client: FlaskClient, auth: AuthActions, billing: Billing
) -> None:
    billing.user("ann@example.com")
    auth.login("ann@example.com")
    saved = session_cookie(client)
    assert signed_in(replay(app, saved))  # a copy works while the session lives

    auth.logout()
    assert not signed_in(client)
    assert not signed_in(replay(app, saved))


def test_sign_out_ends_the_users_other_sessions_too(
    app: Flask, client: FlaskClient, auth: AuthActions, billing: Billing
) -> None:
    billing.user("bea@example.com")
    auth.login("bea@example.com")
    other = second_device(app, "bea@example.com")
    auth.logout()
    assert not signed_in(other)
    auth.login("bea@example.com")  # and signing in again works
    assert signed_in(client)


def test_a_remember_cookie_dies_with_the_session(
    app: Flask, auth: AuthActions, billing: Billing
) -> None:
    user = billing.user("cat@example.com")
    with app.test_request_context():
        remember = encode_cookie(user.get_id())
    browser = app.test_client()
    browser.set_cookie("remember_token", remember)
    assert signed_in(browser)  # Flask-Login signs a remember cookie's holder in

    auth.login("cat@example.com")
    auth.logout()
    stale = app.test_client()
    stale.set_cookie("remember_token", remember)
    assert not signed_in(stale)


def test_sessions_from_before_generations_are_refused(
    app: Flask, client: FlaskClient, auth: AuthActions, billing: Billing
) -> None:
    user = billing.user("dee@example.com")
    auth.login("dee@example.com")
    assert signed_in(client)
    with client.session_transaction() as sess:
        sess["_user_id"] = str(user.id)  # what a session signed before looked like
    assert not signed_in(client)


def test_password_change_ends_other_sessions_and_keeps_this_one(
    app: Flask, client: FlaskClient, auth: AuthActions, billing: Billing
) -> None:
    billing.user("eve@example.com")
    auth.login("eve@example.com")
    saved = session_cookie(client)
    other = second_device(app, "eve@example.com")

    response = auth.change_password(PASSWORD, NEW_PASSWORD)
    assert response.status_code == 302
    assert signed_in(client)  # re-signed with the new generation
    assert not signed_in(other)
    assert not signed_in(replay(app, saved))
    assert AuthActions(other).login("eve@example.com", NEW_PASSWORD).status_code == 302
    assert signed_in(other)


def test_wrong_current_password_changes_nothing(
    app: Flask, client: FlaskClient, auth: AuthActions, billing: Billing
) -> None:
    billing.user("fay@example.com")
    auth.login("fay@example.com")
    other = second_device(app, "fay@example.com")
    response = auth.change_password("not my password", NEW_PASSWORD)
    assert response.status_code == 400
    assert "The current password is wrong." in response.get_data(as_text=True)
    assert signed_in(client)
    assert signed_in(other)


def test_cli_password_reset_ends_sessions(
    app: Flask, client: FlaskClient, auth: AuthActions, billing: Billing
) -> None:
    billing.user("gil@example.com", role="admin")
    auth.login("gil@example.com")
    with app.app_context(), database().write() as s:
        accounts.ensure_admin(s, "gil@example.com", None, passwords())  # already one
    assert signed_in(client)
    with app.app_context(), database().write() as s:
        accounts.ensure_admin(s, "gil@example.com", NEW_PASSWORD, passwords())
    assert not signed_in(client)


def test_disabling_and_re_enabling_does_not_revive_old_sessions(
    app: Flask, client: FlaskClient, auth: AuthActions, billing: Billing
) -> None:
    admin = billing.user("root@example.com", role="admin")
    user = billing.user("hal@example.com")
    auth.login("hal@example.com")
    saved = session_cookie(client)
    actor = Actor(admin.email, admin.id, None)
    with app.app_context(), database().write() as s:
        accounts.set_access(s, actor, user.id, role="user", disabled=True, reason="abuse")
    with app.app_context(), database().write() as s:
        accounts.set_access(s, actor, user.id, role="user", disabled=False, reason="cleared")
    assert not signed_in(replay(app, saved))
    assert not signed_in(client)


def test_a_role_change_ends_the_users_sessions(
    app: Flask, client: FlaskClient, auth: AuthActions, billing: Billing
) -> None:
    billing.user("ida@example.com")
    auth.login("ida@example.com")
    with app.app_context(), database().write() as s:
        accounts.set_role(s, "ida@example.com", "admin")
    assert not signed_in(client)


def test_an_unchanged_access_form_keeps_sessions(
    app: Flask, client: FlaskClient, auth: AuthActions, billing: Billing
) -> None:
    user = billing.user("jon@example.com")
    auth.login("jon@example.com")
    with app.app_context(), database().write() as s:
        accounts.set_access(s, audit.CLI, user.id, role="user", disabled=False, reason="ok")
        assert s.get(User, user.id).session_generation == user.session_generation
    assert signed_in(client)


# Signed-out htmx requests


def test_signed_out_balance_poll_gets_a_client_redirect_not_the_login_page(
    client: FlaskClient, auth: AuthActions, billing: Billing
) -> None:
    billing.user("kit@example.com")
    auth.login("kit@example.com")
    poll = {"HX-Request": "true", "HX-Current-URL": "http://localhost/usage?model=gpt-4o"}
    assert client.get("/dashboard/balance", headers=poll).status_code == 200
    auth.logout()

    response = client.get("/dashboard/balance", headers=poll)
    assert response.status_code == 204
    assert response.headers["HX-Redirect"] == "/auth/login?next=%2Fusage%3Fmodel%3Dgpt-4o"
    assert "Location" not in response.headers
    assert response.get_data() == b""


def test_the_client_redirect_applies_to_every_login_required_endpoint(
    client: FlaskClient,
) -> None:
    htmx = {"HX-Request": "true", "HX-Current-URL": "http://localhost/admin/users"}
    for url in ("/dashboard", "/usage", "/settings", "/admin/", "/admin/users"):
        response = client.get(url, headers=htmx)
        assert response.status_code == 204, url
        assert response.headers["HX-Redirect"] == "/auth/login?next=%2Fadmin%2Fusers", url


def test_the_client_redirect_never_points_off_site(client: FlaskClient) -> None:
    for current in ("https://evil.example/steal", "", "not a url", "http://localhost//evil"):
        htmx = {"HX-Request": "true", "HX-Current-URL": current}
        response = client.get("/dashboard/balance", headers=htmx)
        assert response.status_code == 204, current
        assert response.headers["HX-Redirect"] == "/auth/login", current


def test_plain_requests_still_get_a_redirect(client: FlaskClient) -> None:
    response = client.get("/dashboard/balance")
    assert response.status_code == 302
    assert response.headers["Location"] == "/auth/login?next=%2Fdashboard%2Fbalance"
