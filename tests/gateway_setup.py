"""A gateway in front of the stand-in upstream, as the gateway's tests set it up."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import openai
from flask import Flask
from sqlalchemy import select

from core import audit, user_keys
from core.accounts import find_user
from core.gateway import routing
from core.gateway.models import Hold
from core.models import UsageEvent
from core.pricing import MICRO as CR
from tests.conftest import Billing, LiveServer, make_test_app
from tests.llm_upstream import LLMUpstream

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


MESSAGES = [{"role": "user", "content": "Say hello"}]
EMAIL = "kim@example.com"  # the world's user, who holds ``key``


class Server(Protocol):
    url: str

    def stop(self) -> None: ...


@dataclass
class World:
    """A gateway (in-process ``LiveServer`` or a real gunicorn) before the stand-in."""

    app: Flask
    server: Server
    upstream: LLMUpstream
    billing: Billing
    key: str

    @property
    def base_url(self) -> str:
        return self.server.url + "/v1"

    @property
    def chat_url(self) -> str:
        return self.base_url + "/chat/completions"

    def wallet(self) -> tuple[int, int]:
        """(balance, reserved) of the world's user."""
        with self.billing.db.read_session() as s:
            wallet = find_user(s, EMAIL).wallet
            return wallet.balance_ucr, wallet.reserved_ucr

    def sdk(self, key: str | None = None) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url, api_key=key or self.key, max_retries=0)

    def balance(self) -> int:
        return self.billing.balance(EMAIL)

    def events(self) -> list[UsageEvent]:
        with self.billing.db.read_session() as s:
            return list(s.scalars(select(UsageEvent).order_by(UsageEvent.id)))

    def holds(self) -> list[Hold]:
        with self.billing.db.read_session() as s:
            return list(s.scalars(select(Hold).order_by(Hold.id)))


@contextlib.contextmanager
def world_with(
    db_config: dict[str, Any],
    serve: Callable[[Flask], Server],
    *,
    funds: int = 100 * CR,
    **config: Any,
) -> Iterator[World]:
    """The stand-in upstream, an app routed to it, the world's user with
    ``funds`` and a key "laptop", and ``serve(app)``: a started server."""
    upstream = LLMUpstream(api_key=UPSTREAM_SECRET).start()
    app = make_test_app(db_config, **config)
    billing = Billing(app)
    route_to_standin(app, billing, upstream.url)
    user = billing.user(EMAIL, funds)
    with billing.db.write() as s:
        _, key = user_keys.create(s, audit.CLI, user.id, "laptop")
    server = serve(app)
    try:
        yield World(app, server, upstream, billing, key)
    finally:
        server.stop()
        upstream.stop()
        app.extensions["creditline.db"].dispose()


def make_world(db_config: dict[str, Any], **config: Any) -> Iterator[World]:
    """A world served in-process (``LiveServer``)."""
    serve = lambda app: LiveServer(app).start()  # noqa: E731
    with world_with(db_config, serve, GATEWAY_PING_SECONDS=0.2, **config) as world:
        yield world


def post(world: World, body: bytes, key: str | None = None) -> httpx.Response:
    return httpx.post(
        world.base_url + "/chat/completions",
        content=body,
        headers={"Authorization": f"Bearer {key or world.key}", "Content-Type": "application/json"},
        timeout=30,
    )
