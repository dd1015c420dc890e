"""Sign-up control and one-time links: registration closed / by invitation,
invitation and password-reset links single-use and expiring, forgot password."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import func, select, update

from core import audit, ledger
from core.clock import utcnow
from core.models import AuditEntry, Setting, User
from core.outbox_models import AccountToken, OutboxMessage
from core.outbox_worker import OutboxDeliverer
from tests.conftest import PASSWORD, AuthActions, Billing, make_test_app, post_form, sign_in_admin
from tests.mail_catcher import MailCatcher

NEW_PASSWORD = "a brand new passphrase"
_LINK = re.compile(r'<code id="issued-link">([^<]+)</code>')


def users(app: Flask) -> list[str]:
    with app.extensions["creditline.db"].read_session() as s:
        return list(s.scalars(select(User.email).order_by(User.id)))


def actions(app: Flask) -> list[str]:
    with app.extensions["creditline.db"].read_session() as s:
        return list(s.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


def issued_link(response: Any) -> str:
    assert response.status_code == 200
    match = _LINK.search(response.get_data(as_text=True))
    assert match, "no link on the page"
    return match.group(1).replace("&amp;", "&").removeprefix("http://localhost")


def set_registration(runner: FlaskCliRunner, mode: str) -> None:
    result = runner.invoke(args=["set-setting", "registration", mode, "--reason", "policy"])
    assert result.exit_code == 0, result.output


def expire_all(app: Flask) -> None:
    with app.extensions["creditline.db"].write() as s:
        s.execute(update(AccountToken).values(expires_at=utcnow() - timedelta(seconds=1)))


def sign_up(client: FlaskClient, url: str, email: str) -> Any:
    data = {"email": email, "password": PASSWORD, "confirm": PASSWORD}
    return post_form(client, url, csrf_page="/auth/login", **data)


def test_closed_registration_refuses_sign_up(
    app: Flask, client: FlaskClient, runner: FlaskCliRunner
) -> None:
    set_registration(runner, "closed")
    assert client.get("/auth/register").status_code == 403
    assert sign_up(client, "/auth/register", "new@example.com").status_code == 403
    assert users(app) == []
    set_registration(runner, "open")
    assert sign_up(client, "/auth/register", "new@example.com").status_code == 302
    assert users(app) == ["new@example.com"]


def test_invitation_links_work_once_and_expire(
    app: Flask, client: FlaskClient, admin: Billing, runner: FlaskCliRunner
) -> None:
    set_registration(runner, "invite")
    visitor = app.test_client()
    assert visitor.get("/auth/register").status_code == 403
    assert sign_up(visitor, "/auth/register", "x@example.com").status_code == 403

    refused = post_form(client, "/admin/invitations", csrf_page="/admin/settings", **{})
    assert refused.status_code == 400  # a reason is required
    link = issued_link(
        post_form(
            client,
            "/admin/invitations",
            csrf_page="/admin/settings",
            **{"invite-reason": "new hire"},
        )
    )
    assert link.startswith("/auth/register?invite=")
    assert visitor.get(link).status_code == 200
    assert sign_up(visitor, link, "first@example.com").status_code == 302
    other = app.test_client()
    assert sign_up(other, link, "second@example.com").status_code == 403  # used
    assert users(app) == ["boss@example.com", "first@example.com"]

    late = issued_link(
        post_form(
            client, "/admin/invitations", csrf_page="/admin/settings", **{"invite-reason": "x"}
        )
    )
    expire_all(app)
    assert sign_up(app.test_client(), late, "late@example.com").status_code == 403
    assert "late@example.com" not in users(app)
    assert actions(app).count("invitation.create") == 2
    with app.extensions["creditline.db"].read_session() as s:  # only digests are stored
        token = late.split("invite=")[1]
        assert s.scalar(select(func.count()).where(AccountToken.token_hash == token)) == 0


@pytest.fixture
def catcher() -> Iterator[MailCatcher]:
    server = MailCatcher().start()
    yield server
    server.stop()


@pytest.fixture
def mail_app(db_config: dict[str, Any], catcher: MailCatcher) -> Iterator[Flask]:
    app = make_test_app(db_config, MAIL_URL=catcher.url, MAIL_FROM="billing@creditline.test")
    yield app
    app.extensions["creditline.db"].dispose()


def drain(app: Flask) -> None:
    deliverer: OutboxDeliverer = app.extensions["creditline.outbox"]
    deliverer.drain_once()


def test_admin_reset_link_is_shown_emailed_and_single_use(
    mail_app: Flask, catcher: MailCatcher
) -> None:
    client = mail_app.test_client()
    billing = Billing(mail_app)
    sign_in_admin(AuthActions(client), billing, "boss@example.com")
    user = billing.user("forgetful@example.com")
    page = f"/admin/users/{user.id}"
    link = issued_link(
        post_form(
            client, f"{page}/reset-link", csrf_page=page, **{"reset-reason": "asked by phone"}
        )
    )
    assert "password_reset.issue" in actions(mail_app)
    drain(mail_app)
    (mail,) = catcher.to("forgetful@example.com")
    assert link in mail.get_payload(decode=True).decode()

    user_client = mail_app.test_client()
    assert user_client.get(link).status_code == 200
    data = {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    assert post_form(user_client, link, **data).status_code == 302
    assert AuthActions(user_client).login("forgetful@example.com", NEW_PASSWORD).status_code == 302
    assert user_client.get(link).status_code == 400  # used
    assert (
        post_form(mail_app.test_client(), link, csrf_page="/auth/login", **data).status_code == 400
    )

    second = issued_link(
        post_form(client, f"{page}/reset-link", csrf_page=page, **{"reset-reason": "again"})
    )
    expire_all(mail_app)
    assert mail_app.test_client().get(second).status_code == 400


def test_forgot_password_needs_mail_and_never_tells(mail_app: Flask, catcher: MailCatcher) -> None:
    billing = Billing(mail_app)
    billing.user("known@example.com")
    client = mail_app.test_client()
    assert "Forgot your password?" in client.get("/auth/login").get_data(as_text=True)
    unknown = post_form(client, "/auth/forgot", email="nobody@example.com")
    known = post_form(client, "/auth/forgot", email="known@example.com")
    assert unknown.status_code == known.status_code == 302
    assert unknown.headers["Location"] == known.headers["Location"]
    with mail_app.extensions["creditline.db"].read_session() as s:
        assert list(s.scalars(select(OutboxMessage.recipient))) == ["known@example.com"]
    drain(mail_app)
    body = catcher.to("known@example.com")[0].get_payload(decode=True).decode()
    link = re.search(r"http://localhost(/auth/reset/\S+)", body)
    assert link
    reset = mail_app.test_client()
    data = {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    assert post_form(reset, link.group(1), **data).status_code == 302
    assert AuthActions(reset).login("known@example.com", NEW_PASSWORD).status_code == 302


def test_no_forgot_password_without_mail(app: Flask, client: FlaskClient) -> None:
    assert client.get("/auth/forgot").status_code == 404
    assert "Forgot your password?" not in client.get("/auth/login").get_data(as_text=True)


def test_set_setting_covers_the_new_settings(app: Flask, runner: FlaskCliRunner) -> None:
    ok = runner.invoke(
        args=["set-setting", "webhook_url", "https://hooks.example.com/in", "--reason", "r"]
    )
    assert ok.exit_code == 0, ok.output
    secret = "a-long-webhook-secret-value"
    ok = runner.invoke(args=["set-setting", "webhook_secret", secret, "--reason", "r"])
    assert ok.exit_code == 0 and secret not in ok.output
    with app.extensions["creditline.db"].read_session() as s:
        stored = s.get(Setting, "webhook_secret")
        assert stored is not None and secret not in stored.value  # sealed at rest
        audit_text = " ".join(str(e.after) for e in s.scalars(select(AuditEntry)))
        assert secret not in audit_text
    for bad in (
        ["registration", "sometimes"],
        ["webhook_url", "ftp://x.example.com"],
        ["webhook_secret", "short"],
        ["no_such_setting", "1"],
    ):
        result = runner.invoke(args=["set-setting", *bad, "--reason", "r"])
        assert result.exit_code == 1 and "Error:" in result.output, bad
    assert (
        runner.invoke(args=["set-setting", "overdraft_limit", "12.5", "--reason", "r"]).exit_code
        == 0
    )
    delivered = runner.invoke(args=["deliver-outbox"])
    assert delivered.exit_code == 0 and "sent 0" in delivered.output


def test_delivery_log_and_audited_retry(app: Flask, client: FlaskClient, admin: Billing) -> None:
    admin.user("low@example.com", 6_000_000_000)
    with admin.db.write() as s:
        ledger.adjust(s, audit.CLI, "low@example.com", -2_000_000_000, "crossing")
    drain(app)  # no MAIL_URL: skipped
    page = client.get("/admin/webhooks").get_data(as_text=True)
    assert "balance.low" in page and "skipped" in page
    with admin.db.read_session() as s:
        row_id = s.scalar(select(OutboxMessage.id))
    response = post_form(
        client,
        f"/admin/outbox/{row_id}/retry",
        csrf_page="/admin/webhooks",
        **{"retry-reason": "mail is up"},
    )
    assert response.status_code == 302
    with admin.db.read_session() as s:
        assert s.get(OutboxMessage, row_id).status == "pending"
    assert "outbox.retry" in actions(app)
