"""Admin routes deny by default. The walk reads app.url_map, so every admin
route added later is covered without touching this file."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import AuthActions, Billing, csrf_token

SKIP_METHODS = {"HEAD", "OPTIONS"}


def admin_requests(app: Flask) -> list[tuple[str, str]]:
    """(method, url) for every route under /admin, placeholders filled with 1."""
    adapter = app.url_map.bind("localhost")
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/admin"):
            continue
        url = adapter.build(rule.endpoint, {arg: 1 for arg in rule.arguments})
        found += [(method, url) for method in sorted(rule.methods - SKIP_METHODS)]
    return found


def send(client: FlaskClient, method: str, url: str, token: str):
    return client.open(url, method=method, headers={"X-CSRFToken": token})


def test_walk_finds_admin_routes(app: Flask) -> None:
    found = admin_requests(app)
    assert ("GET", "/admin/") in found
    for route in ("/admin/upstreams", "/admin/upstreams/1", "/admin/routes"):
        assert ("POST", route) in found
    assert ("POST", "/admin/holds/1/release") in found
    assert ("POST", "/admin/users/1/keys/1/revoke") in found


def test_anonymous_is_sent_to_login_everywhere_under_admin(app: Flask, client: FlaskClient) -> None:
    token = csrf_token(client)
    for method, url in admin_requests(app):
        response = send(client, method, url, token)
        assert response.status_code == 302, (method, url)
        assert response.headers["Location"].startswith("/auth/login?next="), (method, url)


def test_plain_user_gets_403_everywhere_under_admin(
    app: Flask, client: FlaskClient, auth: AuthActions, billing: Billing
) -> None:
    billing.user("plain@example.com")
    auth.login("plain@example.com")
    token = csrf_token(client, "/dashboard")
    for method, url in admin_requests(app):
        assert send(client, method, url, token).status_code == 403, (method, url)


def test_admin_gets_in(client: FlaskClient, auth: AuthActions, billing: Billing) -> None:
    billing.user("root@example.com", role="admin")
    auth.login("root@example.com")
    assert client.get("/admin/").status_code == 200
    assert "Admin" in client.get("/dashboard").get_data(as_text=True)


def test_admin_link_hidden_from_users(
    client: FlaskClient, auth: AuthActions, billing: Billing
) -> None:
    billing.user("plain@example.com")
    auth.login("plain@example.com")
    assert 'href="/admin/"' not in client.get("/dashboard").get_data(as_text=True)


def test_root_redirects_by_sign_in_state(
    client: FlaskClient, auth: AuthActions, billing: Billing
) -> None:
    assert client.get("/").headers["Location"] == "/auth/login"
    billing.user("u@example.com")
    auth.login("u@example.com")
    assert client.get("/").headers["Location"] == "/dashboard"
