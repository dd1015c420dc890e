"""Every web form, found by walking the URL map, fed hostile values: the app
answers with form errors or a redirect, never a 5xx, and the books stay exact."""

from __future__ import annotations

import logging

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import AuthActions, Billing, csrf_token, sign_in_admin, state_changing_routes

HOSTILE = [
    "",
    " ",
    "x" * 100_000,
    "-1",
    "-99999999999999999999999",
    "1e308",
    "NaN",
    "0x10",
    "٣",  # an Arabic-Indic digit
    "Ω≈ç√∫˜µ≤≥÷ 🙂 \u202e",
    "<script>alert(1)</script>",
    "'; DROP TABLE users; --",
    "\x00\x01",
]
FIELDS = [
    "email", "password", "confirm", "current", "new", "threshold", "amount_usd", "name",
    "display_name", "input_usd", "output_usd", "enabled", "reason", "credits_per_usd",
    "topup_options", "max_tokens", "max_credits", "overdraft", "adjust-amount", "adjust-reason",
    "access-role", "access-disabled", "access-reason", "flag-reason",
]  # fmt: skip


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_no_form_answers_5xx(
    app: Flask, client: FlaskClient, auth: AuthActions, billing: Billing, value: str
) -> None:
    sign_in_admin(auth, billing, "root@example.com", 10_000_000)
    token = csrf_token(client, "/dashboard")
    for method, url in state_changing_routes(app):
        if url in ("/auth/logout",):
            continue  # would end the session the walk needs
        response = client.open(
            url, method=method, data={**dict.fromkeys(FIELDS, value), "csrf_token": token}
        )
        assert response.status_code < 500, (url, value[:20], response.status_code)
    assert billing.problems() == []
    assert client.get("/admin/").status_code == 200  # still an admin, still signed in


def test_integration_keys_never_reach_the_logs(
    app: Flask, client: FlaskClient, billing: Billing, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    billing.user("alice@example.com", 10_000_000)
    key = billing.api_key("secret-keeper")
    headers = {"Authorization": f"Bearer {key}"}
    client.post("/api/v1/usage", json={"event_id": "x"}, headers=headers)
    client.get("/api/v1/balance?user=alice@example.com", headers=headers)
    client.get(
        "/api/v1/balance?user=alice@example.com", headers={"Authorization": f"Bearer {key}x"}
    )
    assert key not in caplog.text
    assert key[12:] not in caplog.text  # not even the secret part


@pytest.mark.parametrize(
    "path", ["/usage?model=%00", "/auth/login?next=/%00", "/admin/users?q=a%00b"]
)
@pytest.mark.usefixtures("admin")
def test_nul_in_query_strings_is_400(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 400
    assert "NUL" in response.get_data(as_text=True)
