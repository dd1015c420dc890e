"""Irreversible admin actions ask first, without script: the first POST
answers with a confirmation page carrying the form's fields and changes
nothing; only the confirmed POST acts. (Access changes and hold releases are
proven in test_admin_users.py and test_admin_gateway.py.)"""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from core.dify_models import DifyApp
from core.gateway.models import Upstream
from core.models import AuditEntry
from tests.conftest import Billing, post_form

OLD, NEW = "sk-old-secret-123", "sk-new-secret-456"


def _open(app: Flask, sealed: str | None) -> str:
    return app.extensions["creditline.gateway"].box.open(sealed)


def _audits(billing: Billing, action: str) -> int:
    with billing.db.read_session() as s:
        return len(s.scalars(select(AuditEntry).where(AuditEntry.action == action)).all())


def _asks(html: str, heading: str, action: str) -> None:
    assert heading in html
    assert f'<form method="post" action="{action}">' in html
    assert '<input type="hidden" name="confirmed" value="yes">' in html


def test_replacing_an_upstream_secret_asks_first(
    app: Flask, client: FlaskClient, admin: Billing
) -> None:
    fields = {"base_url": "https://api.example.com/v1", "enabled": "y"}
    assert (
        post_form(client, "/admin/upstreams", name="openai", secret=OLD, **fields).status_code
        == 302
    )
    with admin.db.read_session() as s:
        upstream_id = s.scalars(select(Upstream.id)).one()
    url = f"/admin/upstreams/{upstream_id}"
    # Leaving the secret blank replaces nothing: no question.
    assert post_form(client, url, secret="", **fields).status_code == 302
    audited = _audits(admin, "upstream.update")
    response = post_form(client, url, secret=NEW, **fields)
    assert response.status_code == 200
    _asks(response.get_data(as_text=True), "Replace the secret of upstream openai?", url)
    assert response.headers["Cache-Control"] == "no-store"
    with admin.db.read_session() as s:
        assert _open(app, s.get(Upstream, upstream_id).secret_sealed) == OLD
    assert _audits(admin, "upstream.update") == audited
    response = post_form(client, url, csrf_page=url, secret=NEW, confirmed="yes", **fields)
    assert response.status_code == 302
    with admin.db.read_session() as s:
        assert _open(app, s.get(Upstream, upstream_id).secret_sealed) == NEW
    assert _audits(admin, "upstream.update") == audited + 1


def test_replacing_a_dify_key_asks_first(app: Flask, client: FlaskClient, admin: Billing) -> None:
    fields = {
        "name": "Support bot",
        "base_url": "https://dify.example.com/v1",
        "billing_model": "gpt-4o-mini",
        "max_input_tokens": "8000",
        "max_output_tokens": "2000",
        "enabled": "y",
    }
    response = post_form(client, "/admin/dify-apps", slug="support", api_key=OLD, **fields)
    assert response.status_code == 302
    with admin.db.read_session() as s:
        app_id = s.scalars(select(DifyApp.id)).one()
    url = f"/admin/dify-apps/{app_id}"
    # Disabling can be undone: no question.
    assert post_form(client, url, api_key="", **{**fields, "enabled": ""}).status_code == 302
    response = post_form(client, url, api_key=NEW, **fields)
    assert response.status_code == 200
    _asks(response.get_data(as_text=True), "Replace the API key of Support bot?", url)
    with admin.db.read_session() as s:
        row = s.get(DifyApp, app_id)
        assert _open(app, row.key_sealed) == OLD and not row.enabled
    response = post_form(client, url, csrf_page=url, api_key=NEW, confirmed="yes", **fields)
    assert response.status_code == 302
    with admin.db.read_session() as s:
        row = s.get(DifyApp, app_id)
        assert _open(app, row.key_sealed) == NEW and row.enabled


def test_replacing_the_webhook_secret_asks_first(client: FlaskClient, admin: Billing) -> None:
    fields = {
        "topup_options": "5, 10, 25, 50, 100",
        "max_tokens": "10000000",
        "max_credits": "1000000",
        "overdraft": "0",
        "threshold": "5000",
        "registration": "open",
        "webhook_url": "https://hooks.example.com/in",
    }
    # The first secret replaces none: saved at once.
    response = post_form(client, "/admin/settings", webhook_secret=OLD, reason="first", **fields)
    assert response.status_code == 302
    assert _audits(admin, "settings.update") == 1
    response = post_form(
        client, "/admin/settings", webhook_secret=NEW, reason='new "one" <b>', **fields
    )
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    _asks(html, "Replace the webhook secret?", "/admin/settings")
    # The carried fields are escaped.
    assert 'name="reason" value="new &#34;one&#34; &lt;b&gt;"' in html
    assert _audits(admin, "settings.update") == 1
    response = post_form(
        client,
        "/admin/settings",
        webhook_secret=NEW,
        reason="rotate",
        confirmed="yes",
        **fields,
    )
    assert response.status_code == 302
    assert _audits(admin, "settings.update") == 2
