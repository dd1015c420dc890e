"""Admin: upstreams (secret never shown), routes and holds (release with a reason)."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from core import holds
from core.accounts import find_user
from core.clock import utcnow
from core.gateway.models import GatewayRoute, Upstream
from core.gateway.models import Hold as HoldRow
from core.holds import HoldRequest, Snapshot
from core.models import AuditEntry
from tests.conftest import Billing, post_form

CR = 1_000_000

SECRET = "sk-upstream-very-secret-123"


def take(billing: Billing, email: str) -> holds.Hold:
    """A hold of kim's for 1,000 in + 500 out tokens of gpt-4o-mini, taken in core."""
    with billing.db.read_session() as s:
        user = find_user(s, email)
        model = billing.prices.get(s).models["gpt-4o-mini"]
        request = HoldRequest(
            user_id=user.id,
            user_email=user.email,
            wallet_id=user.wallet.id,
            user_key_id=None,
            source="laptop",
            snapshot=Snapshot(model.id, model.name, 10_000, 150_000, 600_000, None, None),
            max_input_tokens=1000,
            max_output_tokens=500,
            overdraft_ucr=0,
            ttl=timedelta(minutes=5),
        )
    with billing.db.raw_write() as cur:
        return holds.take(cur, request, utcnow())


def wallet(billing: Billing, email: str) -> tuple[int, int]:
    with billing.db.read_session() as s:
        w = find_user(s, email).wallet
        return w.balance_ucr, w.reserved_ucr


def add_upstream(client: FlaskClient, name: str = "openai") -> None:
    response = post_form(
        client,
        "/admin/upstreams",
        name=name,
        base_url="https://api.example.com/v1/",
        secret=SECRET,
        enabled="y",
    )
    assert response.status_code == 302


def audit_rows(billing: Billing, action: str) -> list[AuditEntry]:
    with billing.db.read_session() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def test_upstream_added_listed_without_its_secret_and_audited(
    app: Flask, client: FlaskClient, admin: Billing
) -> None:
    add_upstream(client)
    page = client.get("/admin/upstreams").get_data(as_text=True)
    assert "<code>https://api.example.com/v1</code>" in page
    assert "<td>set</td>" in page
    assert SECRET not in page
    with admin.db.read_session() as s:
        row = s.scalars(select(Upstream)).one()
        assert app.extensions["creditline.gateway"].box.open(row.secret_sealed) == SECRET
    (entry,) = audit_rows(admin, "upstream.create")
    assert entry.actor_label == "boss@example.com" and SECRET not in (entry.after or "")


def test_upstream_edit_keeps_a_blank_secret_and_can_disable(
    client: FlaskClient, admin: Billing
) -> None:
    add_upstream(client)
    with admin.db.read_session() as s:
        row = s.scalars(select(Upstream)).one()
    url = f"/admin/upstreams/{row.id}"
    edit_page = client.get(url).get_data(as_text=True)
    assert SECRET not in edit_page and "Secret: set" in edit_page
    response = post_form(client, url, base_url="https://other.example.com/v1", secret="")
    assert response.status_code == 302  # "enabled" unticked: disables
    with admin.db.read_session() as s:
        after = s.get(Upstream, row.id)
        assert after.base_url == "https://other.example.com/v1"
        assert not after.enabled and after.secret_sealed == row.secret_sealed
    assert len(audit_rows(admin, "upstream.update")) == 1


def test_upstream_bad_url_is_a_field_error(client: FlaskClient, admin: Billing) -> None:
    response = post_form(client, "/admin/upstreams", name="x", base_url="ftp://host", secret="")
    assert response.status_code == 400
    assert "must start with https://" in response.get_data(as_text=True)
    with admin.db.read_session() as s:
        assert s.scalars(select(Upstream)).all() == []


def test_route_created_then_updated_from_the_form(client: FlaskClient, admin: Billing) -> None:
    add_upstream(client)
    response = post_form(
        client,
        "/admin/routes",
        model="gpt-4o-mini",
        upstream="openai",
        upstream_model="gpt-4o-mini-2024",
        context_window="64000",
        max_output="8000",
        default_output_cap="2000",
        overhead="100",
        enabled="y",
    )
    assert response.status_code == 302
    page = client.get("/admin/routes").get_data(as_text=True)
    assert "<code>gpt-4o-mini-2024</code>" in page and "64,000" in page
    response = post_form(
        client, "/admin/routes", model="gpt-4o-mini", upstream="openai", max_output="9000"
    )
    assert response.status_code == 302
    with admin.db.read_session() as s:
        route = s.scalars(select(GatewayRoute)).one()
        assert (route.context_window, route.max_output, route.default_output_cap) == (
            64_000,
            9_000,
            2_000,
        )
        assert route.upstream_model == "gpt-4o-mini-2024" and not route.enabled
    assert len(audit_rows(admin, "route.set")) == 2


def test_route_refuses_an_unknown_upstream_and_a_cap_above_max(
    client: FlaskClient, admin: Billing
) -> None:
    add_upstream(client)
    response = post_form(client, "/admin/routes", model="gpt-4o-mini", upstream="nowhere")
    assert response.status_code == 400  # not one of the choices
    response = post_form(
        client,
        "/admin/routes",
        model="gpt-4o-mini",
        upstream="openai",
        max_output="100",
        default_output_cap="200",
    )
    assert response.status_code == 400
    assert "cannot be above the max output" in response.get_data(as_text=True)
    with admin.db.read_session() as s:
        assert s.scalars(select(GatewayRoute)).all() == []


def test_holds_listed_and_released_with_a_reason(client: FlaskClient, admin: Billing) -> None:
    admin.user("kim@example.com", 10 * CR)
    hold = take(admin, "kim@example.com")
    page = client.get("/admin/holds").get_data(as_text=True)
    assert "kim@example.com" in page and f"/admin/holds/{hold.id}/release" in page
    assert wallet(admin, "kim@example.com") == (10 * CR, hold.amount_ucr)

    response = post_form(
        client, f"/admin/holds/{hold.id}/release", csrf_page="/admin/holds", reason=""
    )
    assert response.status_code == 302
    assert wallet(admin, "kim@example.com") == (10 * CR, hold.amount_ucr)  # no reason: kept

    response = post_form(
        client, f"/admin/holds/{hold.id}/release", csrf_page="/admin/holds", reason="call gone"
    )
    assert response.status_code == 200  # asks first; nothing released yet
    assert f"Release hold {hold.id}?" in response.get_data(as_text=True)
    assert wallet(admin, "kim@example.com") == (10 * CR, hold.amount_ucr)
    assert audit_rows(admin, "hold.release") == []

    response = post_form(
        client,
        f"/admin/holds/{hold.id}/release",
        csrf_page="/admin/holds",
        reason="call gone",
        confirmed="yes",
    )
    assert response.status_code == 302
    assert wallet(admin, "kim@example.com") == (10 * CR, 0)
    with admin.db.read_session() as s:
        assert s.get(HoldRow, hold.id).status == "released"
    (entry,) = audit_rows(admin, "hold.release")
    assert (entry.reason, entry.object_id, entry.actor_label) == (
        "call gone",
        str(hold.id),
        "boss@example.com",
    )
    assert "kim@example.com" not in client.get("/admin/holds").get_data(as_text=True)
    assert "kim@example.com" in client.get("/admin/holds?state=ended").get_data(as_text=True)

    # A second release changes nothing and is not audited again.
    post_form(
        client,
        f"/admin/holds/{hold.id}/release",
        csrf_page="/admin/holds",
        reason="again",
        confirmed="yes",
    )
    assert wallet(admin, "kim@example.com") == (10 * CR, 0)
    assert len(audit_rows(admin, "hold.release")) == 1


def test_holds_are_paged_newest_first(client: FlaskClient, admin: Billing) -> None:
    admin.user("kim@example.com", 1000 * CR)
    ids = [take(admin, "kim@example.com").id for _ in range(52)]
    first = client.get("/admin/holds").get_data(as_text=True)
    assert f"<td>{ids[-1]}</td>" in first and f"<td>{ids[1]}</td>" not in first
    assert f"before={ids[2]}" in first
    second = client.get(f"/admin/holds?before={ids[2]}").get_data(as_text=True)
    assert f"<td>{ids[1]}</td>" in second and f"<td>{ids[0]}</td>" in second
    assert f"<td>{ids[2]}</td>" not in second
