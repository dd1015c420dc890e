"""Signing and posting webhook events.

Each POST carries ``Creditline-Signature: t=<unix>,v1=<hex>`` where ``<hex>``
is the HMAC-SHA256, keyed with the webhook secret, of ``"<t>.<body>"``.
A receiver recomputes it over the raw body and compares in constant time,
and refuses a ``t`` far from its own clock (a replay).
"""

from __future__ import annotations

import hashlib
import hmac
import time

import httpx

from core.errors import WebhookRefused

SIGNATURE_HEADER = "Creditline-Signature"


def sign(secret: str, body: bytes, timestamp: int) -> str:
    digest = hmac.new(
        secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: str, body: bytes, header: str, tolerance: int = 300) -> bool:
    """The receiver's check: a valid signature made within ``tolerance`` seconds."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


def post(client: httpx.Client, url: str, secret: str, body: str) -> None:
    """POST one event; raises ``WebhookRefused`` unless the receiver answers 2xx."""
    raw = body.encode()
    response = client.post(
        url,
        content=raw,
        headers={
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(secret, raw, int(time.time())),
            "User-Agent": "Creditline-Webhooks",
        },
    )
    if not 200 <= response.status_code < 300:
        raise WebhookRefused(f"the receiver answered HTTP {response.status_code}")
