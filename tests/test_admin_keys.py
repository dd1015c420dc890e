"""The admin's integration-key page: create (shown once), list, revoke."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from core.models import AuditEntry, IntegrationKey
from tests.conftest import Billing, post_form


def _report_usage(client: FlaskClient, key: str) -> int:
    event = {"event_id": "k1", "user": "alice@example.com", "model": "gpt-4o-mini"}
    event |= {"input_tokens": 1, "output_tokens": 1}
    headers = {"Authorization": f"Bearer {key}"}
    return client.post("/api/v1/usage", json=event, headers=headers).status_code


@pytest.mark.usefixtures("admin")
def test_create_shows_the_key_once_and_it_works(client: FlaskClient, billing: Billing) -> None:
    billing.user("alice@example.com", 100_000_000)
    page = post_form(client, "/admin/keys", name="dify-prod").get_data(as_text=True)
    key = re.search(r'<code id="new-key-value">([^<]+)</code>', page).group(1)
    assert _report_usage(client, key) == 201

    listing = client.get("/admin/keys").get_data(as_text=True)
    assert key not in listing
    assert key[:11] + "…" in listing
    assert "dify-prod" in listing
    with billing.db.read_session() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "api_key.create")).one()
        assert entry.actor_label == "boss@example.com"
        assert key not in (entry.after or "")


@pytest.mark.usefixtures("admin")
def test_revoke_from_the_page(client: FlaskClient, billing: Billing) -> None:
    billing.user("alice@example.com", 100_000_000)
    key = billing.api_key("gateway")
    with billing.db.read_session() as s:
        key_id = s.scalars(select(IntegrationKey.id).where(IntegrationKey.name == "gateway")).one()
    listing = client.get("/admin/keys").get_data(as_text=True)
    assert f'href="/admin/keys/{key_id}/revoke"' in listing  # a link to the confirmation
    confirm = client.get(f"/admin/keys/{key_id}/revoke")
    assert confirm.status_code == 200 and "Revoke integration key gateway?" in confirm.text
    assert _report_usage(client, key) != 401  # asking changes nothing
    url = f"/admin/keys/{key_id}/revoke"
    response = post_form(client, url, csrf_page=url)
    assert response.status_code == 302
    assert "revoked" in client.get("/admin/keys").get_data(as_text=True)
    assert _report_usage(client, key) == 401


@pytest.mark.usefixtures("admin")
def test_empty_or_hostile_names_rerender_with_errors(client: FlaskClient, billing: Billing) -> None:
    page = post_form(client, "/admin/keys", name="").get_data(as_text=True)
    assert "This field is required" in page
    page = post_form(client, "/admin/keys", name="x" * 101).get_data(as_text=True)
    assert "100 characters" in page
    page = post_form(client, "/admin/keys", name="<script>alert(1)</script>").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
