"""Users' gateway keys through the pages: create (shown once), revoke after a
confirmation; the admin user page lists them and revokes one, audited."""

from __future__ import annotations

import re
from datetime import datetime

from flask.testing import FlaskClient
from sqlalchemy import select

from core import user_keys
from core.accounts import find_user
from core.audit import CLI
from core.gateway.models import UserApiKey
from core.models import AuditEntry
from tests.conftest import AuthActions, Billing, post_form

CR = 1_000_000
KEY = re.compile(r"clk_[A-Za-z0-9_-]{8}_[A-Za-z0-9_-]{43}")


def keys(billing: Billing, email: str) -> list[UserApiKey]:
    with billing.db.read_session() as s:
        user = find_user(s, email)
        return list(s.scalars(select(UserApiKey).where(UserApiKey.user_id == user.id)))


def audit_actions(billing: Billing) -> list[tuple[str, str]]:
    with billing.db.read_session() as s:
        return [(e.action, e.actor_label) for e in s.scalars(select(AuditEntry))]


def signed_in(auth: AuthActions, billing: Billing, email: str = "kim@example.com") -> None:
    billing.user(email, 10 * CR)
    auth.login(email)


def test_new_key_is_shown_once_with_its_limit_and_expiry(
    client: FlaskClient, auth: AuthActions, billing: Billing
) -> None:
    signed_in(auth, billing)
    response = post_form(
        client, "/settings/api-keys", name="laptop", limit="1,000.5", expires="2099-01-31"
    )
    assert response.status_code == 200
    (shown,) = KEY.findall(response.get_data(as_text=True))
    (row,) = keys(billing, "kim@example.com")
    assert (row.name, row.limit_ucr, row.expires_at) == (
        "laptop",
        1_000_500_000,
        datetime(2099, 1, 31),
    )
    assert row.prefix == shown[:12] and row.key_hash == user_keys.digest(shown)
    again = client.get("/settings/api-keys").get_data(as_text=True)
    assert shown not in again and f"<code>{row.prefix}…</code>" in again
    assert "1,000.50" in again and "2099-01-31" in again
    assert ("user_key.create", "kim@example.com") in audit_actions(billing)


def test_key_form_errors_land_on_their_fields(
    client: FlaskClient, auth: AuthActions, billing: Billing
) -> None:
    signed_in(auth, billing)
    response = post_form(client, "/settings/api-keys", name="old", expires="2001-01-01")
    assert response.status_code == 400
    assert "must be in the future" in response.get_data(as_text=True)
    response = post_form(client, "/settings/api-keys", name="x", limit="0")
    assert response.status_code == 400
    assert "more than 0" in response.get_data(as_text=True)
    assert keys(billing, "kim@example.com") == []


def test_revoke_asks_first_then_revokes_only_my_own_key(
    client: FlaskClient, auth: AuthActions, billing: Billing
) -> None:
    signed_in(auth, billing)
    billing.user("other@example.com")
    with billing.db.write() as s:
        mine, _ = user_keys.create(s, CLI, find_user(s, "kim@example.com").id, "laptop")
        theirs, _ = user_keys.create(s, CLI, find_user(s, "other@example.com").id, "server")
    confirm = client.get(f"/settings/api-keys/{mine.id}/revoke")
    assert confirm.status_code == 200 and "Revoke key laptop?" in confirm.get_data(as_text=True)
    assert keys(billing, "kim@example.com")[0].revoked_at is None  # asking changes nothing

    url = f"/settings/api-keys/{theirs.id}/revoke"
    assert client.get(url).status_code == 404
    token_page = f"/settings/api-keys/{mine.id}/revoke"
    assert post_form(client, url, csrf_page=token_page).status_code == 404
    assert keys(billing, "other@example.com")[0].revoked_at is None

    response = post_form(client, token_page)
    assert response.status_code == 302
    assert keys(billing, "kim@example.com")[0].revoked_at is not None
    assert ("user_key.revoke", "kim@example.com") in audit_actions(billing)
    assert client.get(token_page).status_code == 404  # nothing left to revoke


def test_admin_user_page_lists_keys_and_revokes_one(client: FlaskClient, admin: Billing) -> None:
    admin.user("kim@example.com")
    with admin.db.write() as s:
        user_id = find_user(s, "kim@example.com").id
        key, _ = user_keys.create(s, CLI, user_id, "laptop", limit_ucr=5 * CR)
    page = client.get(f"/admin/users/{user_id}").get_data(as_text=True)
    assert f"<code>{key.prefix}…</code>" in page and "laptop" in page
    url = f"/admin/users/{user_id}/keys/{key.id}/revoke"
    assert f'href="{url}"' in page  # a link to the confirmation
    confirm = client.get(url)
    assert confirm.status_code == 200 and "Revoke API key laptop?" in confirm.text
    assert keys(admin, "kim@example.com")[0].revoked_at is None  # asking changes nothing
    response = post_form(client, url, csrf_page=url)
    assert response.status_code == 302
    assert keys(admin, "kim@example.com")[0].revoked_at is not None
    assert ("user_key.revoke", "boss@example.com") in audit_actions(admin)
