"""Admin: user search, detail, credit adjustments, access changes, flags."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update

from core.models import AuditEntry, User, Wallet
from core.pricing import MICRO as CR
from tests.conftest import Billing, post_form


@pytest.fixture
def admin(admin: Billing) -> Billing:
    """The signed-in admin of conftest, with two customers to manage."""
    admin.user("alice@example.com", 100 * CR)
    admin.user("al_bert@example.com", 5 * CR)
    return admin


def _id(billing: Billing, email: str) -> int:
    with billing.db.read_session() as s:
        return s.scalar(select(User.id).where(User.email == email))


def test_search_by_email_treats_wildcards_literally(client: FlaskClient, admin: Billing) -> None:
    page = client.get("/admin/users?q=ALICE").get_data(as_text=True)
    assert "alice@example.com" in page
    assert "al_bert@example.com" not in page
    page = client.get("/admin/users?q=al_").get_data(as_text=True)
    assert "al_bert@example.com" in page
    assert "alice@example.com" not in page  # "_" is not a wildcard here
    assert "100.00" in client.get("/admin/users").get_data(as_text=True)


def test_adjust_credits_with_reason(client: FlaskClient, admin: Billing) -> None:
    user_id = _id(admin, "alice@example.com")
    response = post_form(
        client,
        f"/admin/users/{user_id}/adjust",
        csrf_page="/admin/users",
        **{"adjust-amount": "-40.5", "adjust-reason": "duplicate grant"},
    )
    assert response.status_code == 302
    assert admin.balance("alice@example.com") == 59_500_000
    page = client.get(f"/admin/users/{user_id}").get_data(as_text=True)
    assert "duplicate grant" in page
    assert "-40.5" in page
    refused = post_form(
        client,
        f"/admin/users/{user_id}/adjust",
        csrf_page="/admin/users",
        **{"adjust-amount": "-1000", "adjust-reason": "x"},
    )
    assert refused.status_code == 400
    assert "below zero" in refused.get_data(as_text=True)
    for bad in ("abc", "1e3", "0.0000001"):
        response = post_form(
            client,
            f"/admin/users/{user_id}/adjust",
            csrf_page="/admin/users",
            **{"adjust-amount": bad, "adjust-reason": "x"},
        )
        assert response.status_code == 400, bad
    assert admin.balance("alice@example.com") == 59_500_000


def test_disable_and_promote_are_audited(client: FlaskClient, admin: Billing) -> None:
    """Disabling ends the user's sessions: the first POST only asks, with the
    form's fields carried; the confirmed POST acts."""
    user_id = _id(admin, "alice@example.com")
    fields = {"access-role": "user", "access-disabled": "y", "access-reason": "abuse"}
    response = post_form(
        client, f"/admin/users/{user_id}/access", csrf_page="/admin/users", **fields
    )
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Change the access of alice@example.com?" in html
    assert "The account will be disabled. Every session of it ends" in html
    assert f'<form method="post" action="/admin/users/{user_id}/access">' in html
    assert '<input type="hidden" name="access-reason" value="abuse">' in html
    assert '<input type="hidden" name="confirmed" value="yes">' in html
    assert response.headers["Cache-Control"] == "no-store"
    with admin.db.read_session() as s:
        assert s.get(User, user_id).is_disabled is False
        assert not s.scalars(select(AuditEntry).where(AuditEntry.action == "user.access")).all()
    response = post_form(
        client,
        f"/admin/users/{user_id}/access",
        csrf_page="/admin/users",
        confirmed="yes",
        **fields,
    )
    assert response.status_code == 302
    with admin.db.read_session() as s:
        assert s.get(User, user_id).is_disabled is True
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "user.access")).one()
    assert (entry.reason, entry.actor_label) == ("abuse", "boss@example.com")


def test_admin_cannot_lock_themselves_out(client: FlaskClient, admin: Billing) -> None:
    me = _id(admin, "boss@example.com")
    response = post_form(
        client,
        f"/admin/users/{me}/access",
        csrf_page="/admin/users",
        **{"access-role": "user", "access-reason": "oops"},
    )
    assert response.status_code == 400
    assert "cannot demote or disable your own account" in response.get_data(as_text=True)
    assert client.get("/admin/").status_code == 200


def test_flagged_wallet_is_shown_and_cleared(client: FlaskClient, admin: Billing) -> None:
    user_id = _id(admin, "alice@example.com")
    with admin.db.write() as s:
        s.execute(update(Wallet).where(Wallet.user_id == user_id).values(flagged=True))
    assert "flagged" in client.get("/admin/users").get_data(as_text=True)
    assert (
        post_form(
            client,
            f"/admin/users/{user_id}/unflag",
            csrf_page="/admin/users",
            **{"flag-reason": "customer paid"},
        ).status_code
        == 302
    )
    assert 'id="wallet-flag"' not in client.get(f"/admin/users/{user_id}").get_data(as_text=True)


def test_unknown_user_is_404(client: FlaskClient, admin: Billing) -> None:
    assert client.get("/admin/users/999999").status_code == 404
