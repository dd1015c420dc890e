"""Top-up receipts and refunds reach the outbox with the ledger entries that
cause them, and go out as emails and signed webhook events."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import select

from core import audit, setting_values
from core.outbox_models import OutboxMessage
from core.outbox_worker import OutboxDeliverer
from core.pricing import MICRO as CR
from core.webhook_signing import SIGNATURE_HEADER, verify
from tests.conftest import checkout
from tests.stripe_fake import FakeStripe, refund_event, session_event, webhook
from tests.webhook_receiver import WebhookReceiver

SECRET = "topup-webhook-secret-0123"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver().start()
    yield server
    server.stop()


def test_topup_and_refund_are_mailed_and_posted(
    shop: Flask, buyer, fake_stripe: FakeStripe, receiver: WebhookReceiver
) -> None:
    client, billing = buyer
    deliverer: OutboxDeliverer = shop.extensions["creditline.outbox"]
    with billing.db.write() as s:
        for name, value in (("webhook_url", receiver.url), ("webhook_secret", SECRET)):
            setting_values.set_from_text(s, audit.CLI, name, value, "hooks", deliverer.box)

    checkout(client, 25)
    session_id = fake_stripe.last_session_id()
    fake_stripe.complete(session_id)
    completed = session_event("evt_paid", "checkout.session.completed", session_id)
    webhook(client, completed)
    webhook(client, completed)  # a duplicate delivery sends nothing twice
    webhook(client, refund_event("evt_r1", session_id, 2500, 1000))

    with billing.db.read_session() as s:
        found = s.execute(
            select(OutboxMessage.channel, OutboxMessage.event_type, OutboxMessage.recipient)
            .where(OutboxMessage.event_type.like("topup.%"))
            .order_by(OutboxMessage.id)
        ).all()
    assert [tuple(r) for r in found] == [
        ("email", "topup.paid", "alice@example.com"),
        ("webhook", "topup.paid", None),
        ("email", "topup.refunded", "alice@example.com"),
        ("webhook", "topup.refunded", None),
    ]
    assert deliverer.drain_once().sent == 2  # the webhooks; no MAIL_URL: emails skipped
    events = []
    for headers, body, _ in receiver.received:
        assert verify(SECRET, body, headers[SIGNATURE_HEADER])
        events.append(json.loads(body))
    assert [e["type"] for e in events] == ["topup.paid", "topup.refunded"]
    assert events[0]["data"]["credits_ucr"] == 250_000 * CR
    assert events[0]["data"]["amount_cents"] == 2500
    assert events[1]["data"]["debited_ucr"] == 100_000 * CR
