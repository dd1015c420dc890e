"""A Dify app registered against the stand-in, as the chat's tests set it up."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient

from core import audit, dify_apps
from tests.conftest import Billing, post_form
from tests.dify_standin import API_KEY

SLUG = "support"
# The hold of one message: 8,000 in + 2,000 out at gpt-4o-mini ($0.15 / $0.60
# per 1M) and the default rate of 10,000 credits per USD.
HOLD_UCR = (8_000 * 150_000 + 2_000 * 600_000) * 10_000 // 10**6


def register_app(app: Flask, billing: Billing, url: str, **changes: object) -> int:
    """ "Support bot" at ``url``, billed as gpt-4o-mini, default hold."""
    box = app.extensions["creditline.gateway"].box
    with billing.db.write() as s:
        row = dify_apps.create_app(
            s,
            audit.CLI,
            box,
            slug=SLUG,
            name="Support bot",
            base_url=url,
            api_key=API_KEY,
            billing_model="gpt-4o-mini",
            **changes,  # type: ignore[arg-type]
        )
        return row.id


def cost_ucr(prompt: int, completion: int) -> int:
    """Exact cost at gpt-4o-mini and 10,000 credits per USD (ceil)."""
    return -(-(prompt * 150_000 + completion * 600_000) * 10_000 // 10**6)


def send(client: FlaskClient, query: str, conversation_id: int | str = "") -> tuple[int, str]:
    """Send a message from the app's page, as its form does; (status, fragment)."""
    page = f"/chat/{SLUG}" + (f"?c={conversation_id}" if conversation_id else "")
    response = post_form(
        client,
        f"/chat/{SLUG}/turns",
        csrf_page=page,
        query=query,
        conversation_id=str(conversation_id),
    )
    return response.status_code, response.get_data(as_text=True)


def events_url(fragment: str) -> str:
    match = re.search(r'data-events-url="([^"]+)"', fragment)
    assert match, fragment
    return match.group(1)


def read_events(client: FlaskClient, url: str) -> list[tuple[str, str]]:
    """Every (event, data) of a turn's stream, read to its end."""
    return parse_events(client.get(url).get_data(as_text=True))


def parse_events(text: str) -> list[tuple[str, str]]:
    found = []
    for block in text.split("\n\n"):
        lines = block.split("\n")
        names = [line[7:] for line in lines if line.startswith("event: ")]
        data = [line[6:] for line in lines if line.startswith("data: ")]
        if names:
            found.append((names[0], "\n".join(data)))
    return found
