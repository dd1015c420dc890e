"""Admin: Dify apps (key write-only and sealed, audited) and ``add-dify-app``."""

from __future__ import annotations

import json

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import select

from core.dify_models import DifyApp
from core.models import AuditEntry
from tests.conftest import AuthActions, Billing, post_form

KEY = "app-very-secret-key-123"


def _add(client: FlaskClient, **changes: str) -> tuple[int, str]:
    fields = {
        "name": "Support bot",
        "slug": "support",
        "base_url": "https://dify.example.com/v1/",
        "api_key": KEY,
        "billing_model": "gpt-4o-mini",
        "max_input_tokens": "8000",
        "max_output_tokens": "2000",
        "enabled": "y",
        **changes,
    }
    response = post_form(client, "/admin/dify-apps", **fields)
    return response.status_code, response.get_data(as_text=True)


def _row(billing: Billing) -> DifyApp:
    with billing.db.read_session() as s:
        row = s.scalars(select(DifyApp)).one()
        s.expunge(row)
        return row


def test_an_admin_adds_an_app_whose_key_is_sealed_and_never_shown(
    client: FlaskClient, admin: Billing, app: Flask
) -> None:
    status, _ = _add(client)
    assert status == 302
    row = _row(admin)
    assert row.base_url == "https://dify.example.com/v1"
    assert KEY not in row.key_sealed
    assert app.extensions["creditline.gateway"].box.open(row.key_sealed) == KEY
    page = client.get("/admin/dify-apps").get_data(as_text=True)
    assert "Support bot" in page and "gpt-4o-mini" in page and KEY not in page
    edit = client.get(f"/admin/dify-apps/{row.id}").get_data(as_text=True)
    assert KEY not in edit
    with admin.db.read_session() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "dify_app.create")).one()
    assert KEY not in json.dumps([entry.before, entry.after])
    assert "set" in entry.after


def test_editing_keeps_the_key_when_blank_and_is_audited(
    client: FlaskClient, admin: Billing, app: Flask
) -> None:
    _add(client)
    row = _row(admin)
    response = post_form(
        client,
        f"/admin/dify-apps/{row.id}",
        name="Helpdesk",
        base_url="https://dify.example.com/v1",
        api_key="",
        billing_model="gpt-4o-mini",
        max_input_tokens="4000",
        max_output_tokens="1000",
    )
    assert response.status_code == 302
    edited = _row(admin)
    assert (edited.name, edited.max_input_tokens, edited.enabled) == ("Helpdesk", 4000, False)
    assert app.extensions["creditline.gateway"].box.open(edited.key_sealed) == KEY
    with admin.db.read_session() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "dify_app.update")).one()
    assert entry.actor_label == "boss@example.com"
    assert "Helpdesk" in str(entry.after) and "api_key" not in str(entry.after)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"slug": "Not a slug!"}, "lower-case"),
        ({"base_url": "ftp://dify"}, "base URL"),
        ({"api_key": ""}, "API key is required"),
        ({"max_input_tokens": "0"}, "Number must be"),
    ],
)
def test_bad_input_is_shown_on_the_form(
    client: FlaskClient, admin: Billing, changes: dict[str, str], message: str
) -> None:
    status, page = _add(client, **changes)
    assert status == 400 and message in page
    with admin.db.read_session() as s:
        assert s.scalars(select(DifyApp)).first() is None


def test_a_duplicate_slug_is_refused(client: FlaskClient, admin: Billing) -> None:
    _add(client)
    status, page = _add(client, name="Other")
    assert status == 400 and "slug exists" in page


def test_users_cannot_reach_the_admin_pages(
    client: FlaskClient, billing: Billing, auth: AuthActions
) -> None:
    billing.user("kim@example.com")
    auth.login("kim@example.com")
    assert client.get("/admin/dify-apps").status_code == 403
    assert client.post("/admin/dify-apps/1").status_code in (400, 403)


def _cli(runner: FlaskCliRunner, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = runner.invoke(args=list(args), env=env)
    return result.exit_code, result.output


def test_add_dify_app_from_the_cli(runner: FlaskCliRunner, billing: Billing, app: Flask) -> None:
    code, out = _cli(
        runner,
        "add-dify-app",
        "helpdesk",
        "https://dify.example.com/v1",
        "--key-env",
        "DIFY_KEY",
        "--billing-model",
        "gpt-4o-mini",
        "--name",
        "Helpdesk",
        "--max-output",
        "500",
        "--disable",
        env={"DIFY_KEY": KEY},
    )
    assert code == 0, out
    assert KEY not in out
    row = _row(billing)
    assert (row.slug, row.name, row.max_input_tokens, row.max_output_tokens) == (
        "helpdesk",
        "Helpdesk",
        8000,
        500,
    )
    assert row.enabled is False
    assert app.extensions["creditline.gateway"].box.open(row.key_sealed) == KEY


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("x", "https://h/v1", "--key-env", "NOPE", "--billing-model", "gpt-4o-mini"), {}, "NOPE"),
        (("x", "https://h/v1", "--key-env", "K", "--billing-model", "gpt-9"), {"K": "k"}, "priced"),
    ],
)
def test_add_dify_app_refusals_are_clean(
    runner: FlaskCliRunner, billing: Billing, args: tuple[str, ...], env: dict, message: str
) -> None:
    code, out = _cli(runner, "add-dify-app", *args, env=env)
    assert code == 1 and out.startswith("Error: ") and message in out
