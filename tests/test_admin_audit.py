"""Admin: every admin action leaves an audit row that the audit page shows."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from tests.conftest import Billing, post_form


@pytest.mark.usefixtures("admin")
def test_admin_actions_appear_in_the_audit_page(client: FlaskClient, billing: Billing) -> None:
    post_form(client, "/admin/rate", credits_per_usd="11000", reason="rate reason")
    post_form(client, "/admin/keys", name="gateway")
    post_form(
        client,
        "/admin/models",
        name="m1",
        input_usd="1",
        output_usd="2",
        enabled="y",
        reason="model reason",
    )
    page = client.get("/admin/audit").get_data(as_text=True)
    for action in ("rate.change", "api_key.create", "model.create"):
        assert f"<code>{action}</code>" in page
    assert "rate reason" in page and "model reason" in page

    only_rates = client.get("/admin/audit?action=rate.").get_data(as_text=True)
    assert "<code>rate.change</code>" in only_rates
    assert "<code>model.create</code>" not in only_rates
    assert "<code>rate.change</code>" not in client.get("/admin/audit?actor=cli").get_data(
        as_text=True
    )


@pytest.mark.usefixtures("admin")
def test_audit_pages_by_cursor(client: FlaskClient, billing: Billing) -> None:
    for n in range(55):
        billing.set_rate(10_000 + n)  # audited as "cli"
    first = client.get("/admin/audit").get_data(as_text=True)
    assert first.count("<code>rate.change</code>") == 50
    older = first.split('href="/admin/audit?before=')[1].split('"')[0]
    rest = client.get(f"/admin/audit?before={older}").get_data(as_text=True)
    assert rest.count("<code>rate.change</code>") == 5


def test_a_model_with_the_longest_name_is_audited_under_its_name(billing: Billing) -> None:
    """Model names may have 100 characters; the audit row names the model in
    full (PostgreSQL refused a name past 64 characters with an error)."""
    from sqlalchemy import select

    from core.models import AuditEntry

    name = "m" * 100
    billing.set_price(name, 150_000, 600_000)
    with billing.db.read_session() as s:
        logged = s.scalars(select(AuditEntry.object_id).where(AuditEntry.action == "model.create"))
        assert name in list(logged)
