"""CSRF is required on every state-changing route, found by walking the URL
map, except the two that authenticate otherwise: the bearer-key API and the
signed Stripe webhook."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import state_changing_routes


@pytest.mark.usefixtures("admin")
def test_every_form_route_refuses_a_post_without_token(app: Flask, client: FlaskClient) -> None:
    routes = state_changing_routes(app)
    assert ("POST", "/pricing/checkout") in routes
    assert ("POST", "/admin/rate") in routes
    assert ("POST", "/admin/holds/1/release") in routes
    assert ("POST", "/settings/api-keys/1/revoke") in routes
    assert len(routes) >= 15
    for method, url in routes:
        response = client.open(url, method=method, data={"reason": "x", "amount_usd": "25"})
        assert response.status_code == 400, (method, url, response.status_code)
        assert "security token" in response.get_data(as_text=True), (method, url)
