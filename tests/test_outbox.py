"""Emails and webhooks through the outbox: written with their cause, delivered
afterwards to a loopback SMTP server and a loopback HTTP receiver."""

from __future__ import annotations

import json
import logging
import ssl
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme
from flask import Flask
from sqlalchemy import func, select

from core import audit, holds, ledger, setting_values
from core.clock import utcnow
from core.errors import InsufficientCredits, ValidationError
from core.mailer import MailServer
from core.outbox_models import OutboxMessage
from core.outbox_worker import LEASE, MAX_ATTEMPTS, OutboxDeliverer, OutboxThread, backoff
from core.pricing import MICRO
from core.secret_box import SecretBox
from core.webhook_signing import SIGNATURE_HEADER, verify
from tests.conftest import Billing, make_test_app
from tests.hold_helpers import request_for, take
from tests.mail_catcher import MailCatcher
from tests.webhook_receiver import WebhookReceiver

SECRET = "whsec-0123456789abcdef"


@pytest.fixture
def catcher() -> Iterator[MailCatcher]:
    server = MailCatcher().start()
    yield server
    server.stop()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver(statuses=[500]).start()
    yield server
    server.stop()


@pytest.fixture
def mail_app(db_config: dict[str, Any], catcher: MailCatcher) -> Iterator[Flask]:
    app = make_test_app(db_config, MAIL_URL=catcher.url, MAIL_FROM="billing@creditline.test")
    yield app
    app.extensions["creditline.db"].dispose()


def drain(app: Flask, **kw: Any) -> Any:
    deliverer: OutboxDeliverer = app.extensions["creditline.outbox"]
    return deliverer.drain_once(**kw)


def rows(app: Flask) -> list[OutboxMessage]:
    with app.extensions["creditline.db"].read_session() as s:
        return list(s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def set_webhook(app: Flask, url: str) -> None:
    box = SecretBox(app.config["ENCRYPTION_KEY"] or _key(app))
    with app.extensions["creditline.db"].write() as s:
        setting_values.set_from_text(s, audit.CLI, "webhook_url", url, "hooks", box)
        setting_values.set_from_text(s, audit.CLI, "webhook_secret", SECRET, "hooks", box)


def _key(app: Flask) -> str:
    from core.secret_box import load_or_create_encryption_key

    return load_or_create_encryption_key(app.instance_path)


def low_mails(catcher: MailCatcher, email: str) -> int:
    return sum("balance is low" in (m["Subject"] or "") for m in catcher.to(email))


def spend_below(billing: Billing, email: str, floor_ucr: int, prefix: str) -> None:
    """Charge usage events until the balance is below ``floor_ucr``."""
    n = 0
    while billing.balance(email) >= floor_ucr:
        n += 1
        result = billing.debit(f"{prefix}-{n}", email, input_tokens=1_000_000, output_tokens=0)
        assert result.status == "charged"


def test_low_balance_email_once_per_crossing(mail_app: Flask, catcher: MailCatcher) -> None:
    billing = Billing(mail_app)
    threshold = 5_000 * MICRO  # the default alert level
    billing.user("low@example.com", threshold + 3_000 * MICRO)
    spend_below(billing, "low@example.com", threshold, "a")
    billing.debit("a-more", "low@example.com", input_tokens=1_000_000, output_tokens=0)
    drain(mail_app)
    assert low_mails(catcher, "low@example.com") == 1  # not again while still low

    with billing.db.write() as s:  # back above: the alert re-arms
        ledger.adjust(s, audit.CLI, "low@example.com", 10_000 * MICRO, "top up")
    drain(mail_app)
    assert low_mails(catcher, "low@example.com") == 1
    spend_below(billing, "low@example.com", threshold, "b")
    drain(mail_app)
    assert low_mails(catcher, "low@example.com") == 2
    mail = catcher.to("low@example.com")[-1]
    assert mail["From"] == "billing@creditline.test"
    assert "below your alert level of 5,000.00 credits" in mail.get_payload(decode=True).decode()


def test_a_rolled_back_change_leaves_no_message(mail_app: Flask) -> None:
    billing = Billing(mail_app)
    billing.user("rb@example.com", 6_000 * MICRO)

    seen: list[str] = []

    class Boom(Exception):
        pass

    def cross_then_fail() -> None:
        with billing.db.write() as s:
            ledger.adjust(s, audit.CLI, "rb@example.com", -2_000 * MICRO, "crossing")
            seen.extend(r.event_type for r in _rows_in(s))
            raise Boom

    with pytest.raises(Boom):
        cross_then_fail()
    assert seen == ["balance.low"]  # written inside the transaction...
    assert rows(mail_app) == []  # ...and gone with it
    with billing.db.write() as s:  # the same change, committed, leaves its message
        ledger.adjust(s, audit.CLI, "rb@example.com", -2_000 * MICRO, "crossing")
    assert [r.event_type for r in rows(mail_app)] == ["balance.low"]


def _rows_in(session: Any) -> list[OutboxMessage]:
    return list(session.scalars(select(OutboxMessage)))


def test_refused_usage_mails_the_user_and_posts_a_signed_webhook(
    mail_app: Flask, catcher: MailCatcher, receiver: WebhookReceiver
) -> None:
    billing = Billing(mail_app)
    set_webhook(mail_app, receiver.url)
    billing.user("poor@example.com")
    with pytest.raises(InsufficientCredits):
        billing.debit("e1", "poor@example.com")

    first = drain(mail_app)
    assert (first.sent, first.retrying) == (1, 1)  # the email; the webhook got a 500
    assert "refused" in catcher.to("poor@example.com")[0]["Subject"]
    headers, body, status = receiver.received[0]
    assert status == 500
    assert verify(SECRET, body, headers[SIGNATURE_HEADER])
    assert not verify("another-secret-value", body, headers[SIGNATURE_HEADER])
    event = json.loads(body)
    assert event["type"] == "usage.rejected"
    assert set(event) == {"id", "type", "created", "data"}
    assert event["data"]["email"] == "poor@example.com"
    assert event["data"]["event_id"] == "e1"

    assert drain(mail_app).sent == 0  # not due yet: backing off
    webhook = next(r for r in rows(mail_app) if r.channel == "webhook")
    assert (webhook.status, webhook.attempts) == ("pending", 1)
    assert "500" in (webhook.last_error or "")

    # A new app on the same database (a restart) delivers the pending row.
    restarted = make_test_app(
        {k: mail_app.config[k] for k in ("DATABASE_URL", "DATABASE_SCHEMA")},
        ENCRYPTION_KEY=mail_app.config["ENCRYPTION_KEY"] or _key(mail_app),
    )
    try:
        later = drain(restarted, now=utcnow() + backoff(1) + timedelta(seconds=1))
    finally:
        restarted.extensions["creditline.db"].dispose()
    assert later.sent == 1
    headers, body, status = receiver.received[1]
    assert status == 200 and json.loads(body)["id"] == event["id"]
    assert verify(SECRET, body, headers[SIGNATURE_HEADER])
    assert [r.status for r in rows(mail_app)] == ["sent", "sent"]
    assert len(receiver.received) == 2


def test_a_row_is_claimed_by_one_deliverer_until_its_lease_runs_out(app: Flask) -> None:
    billing = Billing(app)
    billing.user("lease@example.com", 6_000 * MICRO)
    with billing.db.write() as s:
        ledger.adjust(s, audit.CLI, "lease@example.com", -2_000 * MICRO, "crossing")
    first: OutboxDeliverer = app.extensions["creditline.outbox"]
    second = OutboxDeliverer(billing.db, first.box, None)
    now = utcnow()
    assert len(first._claim(now)) == 1
    assert second._claim(now) == []
    assert second.drain_once(now=now).skipped == 0
    reclaimed = second._claim(now + LEASE + timedelta(seconds=1))
    assert [r.attempts for r in reclaimed] == [2]


def test_an_unconfigured_channel_is_skipped_and_a_dead_row_gives_up(app: Flask) -> None:
    billing = Billing(app)
    billing.user("skip@example.com", 6_000 * MICRO)
    with billing.db.write() as s:
        ledger.adjust(s, audit.CLI, "skip@example.com", -2_000 * MICRO, "crossing")
    assert drain(app).skipped == 1  # no MAIL_URL
    assert [r.status for r in rows(app)] == ["skipped"]

    dead = OutboxDeliverer(
        billing.db,
        app.extensions["creditline.outbox"].box,
        MailServer.from_url("smtp://127.0.0.1:9", "x@creditline.test", timeout=5),
    )
    with billing.db.write() as s:
        ledger.adjust(s, audit.CLI, "skip@example.com", 10_000 * MICRO, "up")
        ledger.adjust(s, audit.CLI, "skip@example.com", -10_000 * MICRO, "down")
    moment = utcnow()
    for attempt in range(1, MAX_ATTEMPTS + 1):
        result = dead.drain_once(now=moment)
        assert (result.retrying, result.failed) == ((1, 0) if attempt < MAX_ATTEMPTS else (0, 1))
        moment += backoff(attempt) + timedelta(seconds=1)
    assert rows(app)[-1].status == "failed"


def test_expired_holds_post_a_webhook(app: Flask, receiver: WebhookReceiver) -> None:
    receiver.statuses.clear()
    billing = Billing(app)
    set_webhook(app, receiver.url)
    billing.user("hold@example.com", 10_000 * MICRO)
    hold = take(billing, request_for(billing, "hold@example.com", ttl=timedelta(seconds=1)))
    with billing.db.raw_write() as cur:
        assert holds.expire_overdue(cur, utcnow() + timedelta(minutes=1)) == [hold.id]
    assert drain(app).sent == 1
    event = json.loads(receiver.received[0][1])
    assert event["type"] == "hold.expired"
    assert event["data"]["hold_id"] == hold.id
    assert event["data"]["amount_ucr"] == hold.amount_ucr


def test_no_webhook_rows_without_a_url(app: Flask) -> None:
    billing = Billing(app)
    billing.user("nohook@example.com")
    with pytest.raises(InsufficientCredits):
        billing.debit("e1", "nohook@example.com")
    with billing.db.read_session() as s:
        channels = list(s.scalars(select(OutboxMessage.channel)))
        assert channels == ["email"]
        assert s.scalar(select(func.count()).select_from(OutboxMessage)) == 1


def test_starttls_is_used_and_the_certificate_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    catcher = MailCatcher(tls_context=server_context).start()
    try:
        mail = MailServer.from_url(catcher.url, "billing@creditline.test", timeout=10)
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
        with pytest.raises(ssl.SSLCertVerificationError):
            mail.send("tls@example.com", "hello", "body")  # an unknown CA is refused
        ca_file = tmp_path / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
        mail.send("tls@example.com", "hello", "body")
    finally:
        catcher.stop()
    assert [m["Subject"] for m in catcher.to("tls@example.com")] == ["hello"]
    assert catcher.inbox.tls_seen == [True]


def test_mail_url_is_checked() -> None:
    with pytest.raises(ValidationError):
        MailServer.from_url("http://mail.example.com", "a@b.test")
    server = MailServer.from_url("smtps://us%40er:p%3Ass@mail.example.com", "a@b.test")
    assert (server.port, server.implicit_tls, server.user, server.password) == (
        465,
        True,
        "us@er",
        "p:ss",
    )


def test_the_background_thread_delivers_after_a_request(
    db_config: dict[str, Any], catcher: MailCatcher
) -> None:
    app = make_test_app(
        db_config,
        OUTBOX_WORKER=True,
        MAIL_URL=catcher.url,
        MAIL_FROM="billing@creditline.test",
    )
    thread = app.extensions["creditline.outbox_thread"]
    try:
        billing = Billing(app)
        billing.user("bg@example.com")
        with pytest.raises(InsufficientCredits):
            billing.debit("e1", "bg@example.com")
        app.test_client().get("/auth/login")  # the first request starts the thread
        assert catcher.inbox.arrived.wait(60), "the thread delivered nothing"
        assert "refused" in catcher.to("bg@example.com")[0]["Subject"]
    finally:
        thread.stop()
        app.extensions["creditline.db"].dispose()


def test_the_thread_is_woken_only_by_commits_that_add_messages(
    db_config: dict[str, Any], catcher: MailCatcher
) -> None:
    """A debit that writes no message does not wake the delivery thread (it
    would read the outbox after every debit); one that refuses usage does,
    and its email arrives long before the next poll."""
    app = make_test_app(
        db_config,
        OUTBOX_WORKER=True,
        OUTBOX_POLL_SECONDS=3600,
        MAIL_URL=catcher.url,
        MAIL_FROM="billing@creditline.test",
    )
    thread = app.extensions["creditline.outbox_thread"]
    try:
        billing = Billing(app)
        billing.user("quiet@example.com", 1_000 * MICRO)
        app.test_client().get("/auth/login")  # the first request starts the thread
        before = thread.nudges
        for n in range(3):
            billing.debit(f"q{n}", "quiet@example.com")
        assert thread.nudges == before
        billing.user("loud@example.com")
        before = thread.nudges
        with pytest.raises(InsufficientCredits):
            billing.debit("l1", "loud@example.com")
        assert thread.nudges == before + 1
        deadline = time.monotonic() + 60
        while not catcher.to("loud@example.com") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "refused" in catcher.to("loud@example.com")[0]["Subject"]
    finally:
        thread.stop()
        app.extensions["creditline.db"].dispose()


def test_an_outage_logs_one_traceback_then_one_line_a_round(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    """While the outbox cannot be read (here its table is renamed away, a real
    failure of the database), the first failed round logs its traceback, later
    ones a line each, and the first good round says the drains work again."""
    thread = OutboxThread(app.extensions["creditline.outbox"], poll_seconds=10)
    db = app.extensions["creditline.db"]

    def rename(old: str, new: str) -> None:
        with db.raw_write() as cur:
            cur.execute(f"ALTER TABLE {old} RENAME TO {new}")

    caplog.set_level(logging.INFO, logger="core.outbox_worker")
    rename("outbox_messages", "outbox_messages_away")
    try:
        for _ in range(3):
            thread.drain_round()
    finally:
        rename("outbox_messages_away", "outbox_messages")
    thread.drain_round()
    thread.drain_round()

    records = [r for r in caplog.records if r.name == "core.outbox_worker"]
    assert [r.exc_info is not None for r in records] == [True, False, False, False]
    first, again, third, back = (r.getMessage() for r in records)
    assert first == "outbox drain failed; retrying every 10s"
    assert again.startswith("outbox drain failed again (2 rounds in a row): ")
    assert "outbox_messages" in again and "\n" not in again
    assert third.startswith("outbox drain failed again (3 rounds in a row): ")
    assert back == "outbox drain works again after 3 failed rounds"
    assert thread.failures == 0
