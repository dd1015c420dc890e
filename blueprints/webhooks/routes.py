"""Stripe webhooks: signature verified on the raw body, then ``core.payments``."""

from __future__ import annotations

import stripe
from flask import current_app, jsonify, request
from werkzeug.wrappers import Response

from blueprints.errors import api_error
from blueprints.extensions import database, stripe_gateway
from blueprints.webhooks import bp
from core import payments


@bp.post("/stripe")
def stripe_webhook() -> Response:
    secret = current_app.config["STRIPE_WEBHOOK_SECRET"]
    if not secret:
        return api_error(400, "Stripe webhooks are not configured.")
    payload = request.get_data(cache=False)  # the exact bytes Stripe signed
    try:
        event = stripe.Webhook.construct_event(
            payload, request.headers.get("Stripe-Signature"), secret
        )
    except (ValueError, stripe.SignatureVerificationError):
        # Bad JSON, or a missing, wrong or stale (> 5 min) signature.
        return api_error(400, "Invalid Stripe signature or payload.")
    outcome = payments.handle_event(database(), stripe_gateway(), event.to_dict())
    current_app.logger.info("stripe event %s %s: %s", event.id, event.type, outcome)
    return jsonify({"received": True, "outcome": outcome})
