"""Stripe webhooks: signature verified on the raw body, then ``core.stripe_events``.

A delivery whose signature does not verify is answered 400 and counted
(``core.signature_failures``), so a wrong secret shows on the admin page.

Answers 200 only once the event is applied (or known to be a duplicate, or
ignored, or recorded as an anomaly). If Stripe cannot be reached, or the
event could not be applied, the answer is 5xx so that Stripe sends it again.
"""

from __future__ import annotations

import stripe
from flask import current_app, jsonify, request
from werkzeug.wrappers import Response

from blueprints.errors import error_response
from blueprints.extensions import database, signature_failures, stripe_gateway
from blueprints.webhooks import bp
from core import stripe_events
from core.errors import DomainError


@bp.post("/stripe")
def stripe_webhook() -> Response:
    """A signed Stripe event, applied once (any order, any repeat)."""
    secret = current_app.config["STRIPE_WEBHOOK_SECRET"]
    if not secret:
        return error_response("invalid_request", "Stripe webhooks are not configured.")
    payload = request.get_data(cache=False)  # the exact bytes Stripe signed
    try:
        event = stripe.Webhook.construct_event(
            payload, request.headers.get("Stripe-Signature"), secret
        )
    except stripe.SignatureVerificationError:
        # A missing, wrong or stale (> 5 min) signature: counted for the admins
        # (a wrong STRIPE_WEBHOOK_SECRET shows on the settings page).
        signature_failures().failed()
        return error_response("invalid_request", "Invalid Stripe signature or payload.")
    except ValueError:  # signed, but not JSON
        return error_response("invalid_request", "Invalid Stripe signature or payload.")
    try:
        outcome = stripe_events.handle_event(database(), stripe_gateway(), event.to_dict())
    except DomainError as exc:
        current_app.logger.error("stripe event %s %s not applied: %r", event.id, event.type, exc)
        return error_response(
            "unavailable", "The event could not be applied now; send it again later."
        )
    current_app.logger.info("stripe event %s %s: %s", event.id, event.type, outcome)
    return jsonify({"received": True, "outcome": outcome})
