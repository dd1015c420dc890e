"""CSRF is required on every state-changing route, found by walking the URL
map, except the two that authenticate otherwise: the bearer-key API and the
signed Stripe webhook."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import AuthActions, Billing, sign_in_admin

EXEMPT_PREFIXES = ("/api/", "/webhooks/stripe")
STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}


def state_changing_routes(app: Flask) -> list[tuple[str, str]]:
    adapter = app.url_map.bind("localhost")
    found = []
    for rule in app.url_map.iter_rules():
        url = adapter.build(rule.endpoint, {arg: 1 for arg in rule.arguments})
        if url.startswith(EXEMPT_PREFIXES):
            continue
        found += [(m, url) for m in sorted(rule.methods & STATE_CHANGING)]
    return found


def test_every_form_route_refuses_a_post_without_token(
    app: Flask, client: FlaskClient, auth: AuthActions, billing: Billing
) -> None:
    sign_in_admin(auth, billing, "root@example.com")
    routes = state_changing_routes(app)
    assert ("POST", "/pricing/checkout") in routes
    assert ("POST", "/admin/rate") in routes
    assert len(routes) >= 15
    for method, url in routes:
        response = client.open(url, method=method, data={"reason": "x", "amount_usd": "25"})
        assert response.status_code == 400, (method, url, response.status_code)
        assert "security token" in response.get_data(as_text=True), (method, url)
