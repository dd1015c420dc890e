"""A gateway in front of the stand-in upstream, as the gateway's tests set it up."""

from __future__ import annotations

from flask import Flask

from core import audit
from core.gateway import routing
from tests.conftest import Billing

UPSTREAM_SECRET = "sk-upstream-secret-123"


def route_to_standin(app: Flask, billing: Billing, upstream_url: str) -> None:
    """The stand-in as upstream "stand-in"; gpt-4o-mini routed to its "upstream-mini"
    with a 100,000-token context, 2,000 max output and a default cap of 1,000."""
    box = app.extensions["creditline.gateway"].box
    with billing.db.write() as s:
        routing.create_upstream(s, audit.CLI, box, "stand-in", upstream_url, UPSTREAM_SECRET)
    with billing.db.write() as s:
        routing.set_route(
            s,
            audit.CLI,
            "gpt-4o-mini",
            "stand-in",
            upstream_model="upstream-mini",
            context_window=100_000,
            max_output=2_000,
            default_output_cap=1_000,
        )
