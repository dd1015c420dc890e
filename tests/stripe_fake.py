"""A Stripe stand-in behind the official SDK's HTTPClient interface.

The app talks to it through the real ``stripe`` package (request encoding,
idempotency headers, response parsing are all the SDK's own); only the last
hop, the HTTP call, lands here instead of api.stripe.com. Tests read the
captured requests and drive sessions to paid, and sign webhook payloads with
the SDK's ``WebhookSignature.generate_signature_header``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import stripe

WEBHOOK_SECRET = "whsec_test_creditline"


@dataclass
class Captured:
    method: str
    path: str
    headers: Mapping[str, str]
    form: dict[str, str]
    query: dict[str, str]


@dataclass
class FakeStripe(stripe.HTTPClient):
    name = "creditline-fake-stripe"
    requests: list[Captured] = field(default_factory=list)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    _seq: int = 0
    down: bool = False  # answer every request with a 500, as during an outage
    accepted_key: str | None = None  # set: any other secret key is refused with a 401

    def __post_init__(self) -> None:
        super().__init__()

    # --- the SDK side -------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[str, int, Mapping[str, str]]:
        parts = urlsplit(url)
        form = dict(parse_qsl(post_data or "", keep_blank_values=True))
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        self.requests.append(Captured(method.upper(), parts.path, dict(headers or {}), form, query))
        given = dict(headers or {}).get("Authorization", "")
        if self.accepted_key is not None and given != f"Bearer {self.accepted_key}":
            status, body = (
                401,
                {
                    "error": {
                        "type": "invalid_request_error",
                        "message": "Invalid API Key provided.",
                    }
                },
            )
        elif self.down:
            status, body = 500, {"error": {"type": "api_error", "message": "Stripe is down"}}
        else:
            status, body = self._route(method.upper(), parts.path, form, query)
        return json.dumps(body), status, {"request-id": f"req_{len(self.requests)}"}

    def request_stream(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def _route(self, method: str, path: str, form: dict[str, str], query: dict[str, str]):
        if method == "POST" and path == "/v1/checkout/sessions":
            return 200, self._create_session(form)
        if method == "GET" and path == "/v1/checkout/sessions":
            intent = query.get("payment_intent")
            found = [s for s in self.sessions.values() if intent and s["payment_intent"] == intent]
            return 200, {"object": "list", "data": found[:1], "has_more": False, "url": path}
        if method == "GET" and path.startswith("/v1/checkout/sessions/"):
            session = self.sessions.get(path.rsplit("/", 1)[1])
            if session is None:
                return 404, {
                    "error": {"type": "invalid_request_error", "message": "No such session"}
                }
            return 200, session
        return 404, {"error": {"type": "invalid_request_error", "message": f"no route {path}"}}

    def _create_session(self, form: dict[str, str]) -> dict[str, Any]:
        self._seq += 1
        session_id = f"cs_test_{self._seq:04d}"
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": form.get("mode"),
            "status": "open",
            "payment_status": "unpaid",
            "payment_intent": None,
            "amount_total": int(form.get("line_items[0][price_data][unit_amount]", 0)),
            "currency": form.get("line_items[0][price_data][currency]"),
            "client_reference_id": form.get("client_reference_id"),
            "metadata": {"topup_id": form.get("metadata[topup_id]")},
            "success_url": form.get("success_url"),
            "url": f"https://checkout.stripe.test/c/pay/{session_id}",
        }
        self.sessions[session_id] = session
        return session

    # --- the test side ----------------------------------------------------------------

    def add_session(
        self,
        topup_id: int | str,
        *,
        amount_total: int,
        currency: str = "usd",
        client_reference_id: str | None = None,
    ) -> str:
        """A session made outside Creditline's checkout (as anyone holding the
        account's keys, or a bug, could): it claims ``topup_id`` in its metadata."""
        form = {
            "mode": "payment",
            "line_items[0][price_data][unit_amount]": str(amount_total),
            "line_items[0][price_data][currency]": currency,
            "metadata[topup_id]": str(topup_id),
        }
        if client_reference_id is not None:
            form["client_reference_id"] = client_reference_id
        return self._create_session(form)["id"]

    def last_session_id(self) -> str:
        return list(self.sessions)[-1]

    def complete(self, session_id: str, *, paid: bool = True) -> None:
        """The customer finished Checkout; paid now, or (async methods) later."""
        session = self.sessions[session_id]
        session["status"] = "complete"
        session["payment_intent"] = "pi_" + session_id.removeprefix("cs_")
        session["payment_status"] = "paid" if paid else "unpaid"

    def settle(self, session_id: str) -> None:
        """An async payment (bank debit) succeeded."""
        self.sessions[session_id]["payment_status"] = "paid"

    def expire(self, session_id: str) -> None:
        self.sessions[session_id]["status"] = "expired"


def event(event_id: str, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "type": kind,
        "created": int(time.time()),
        "data": {"object": obj},
    }


def session_event(event_id: str, kind: str, session_id: str) -> dict[str, Any]:
    return event(event_id, kind, {"id": session_id, "object": "checkout.session"})


def refund_event(event_id: str, session_id: str, amount: int, refunded: int) -> dict[str, Any]:
    intent = "pi_" + session_id.removeprefix("cs_")
    charge = {
        "id": "ch_" + session_id.removeprefix("cs_"),
        "object": "charge",
        "amount": amount,
        "amount_refunded": refunded,
        "payment_intent": intent,
        "refunded": refunded >= amount,
    }
    return event(event_id, "charge.refunded", charge)


def dispute_event(
    event_id: str, kind: str, session_id: str, dispute_id: str, amount: int, status: str
) -> dict[str, Any]:
    dispute = {
        "id": dispute_id,
        "object": "dispute",
        "amount": amount,
        "status": status,
        "charge": "ch_" + session_id.removeprefix("cs_"),
        "payment_intent": "pi_" + session_id.removeprefix("cs_"),
    }
    return event(event_id, kind, dispute)


def signed(payload: dict[str, Any], secret: str = WEBHOOK_SECRET, timestamp: int | None = None):
    """(body, headers) as Stripe would POST them."""
    body = json.dumps(payload)
    header = stripe.WebhookSignature.generate_signature_header(body, secret, timestamp)
    return body, {"Stripe-Signature": header, "Content-Type": "application/json"}


def webhook(client: Any, payload: dict[str, Any], **sign: Any) -> Any:
    """POST a signed event to the app's webhook (a Flask test client)."""
    body, headers = signed(payload, **sign)
    return client.post("/webhooks/stripe", data=body, headers=headers)
