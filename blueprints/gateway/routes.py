"""``/v1``: the OpenAI-compatible endpoints. Parse, one call into ``core.gateway``,
respond; every refusal is a ``DomainError`` answered by one handler."""

from __future__ import annotations

from dataclasses import replace

from flask import Response, current_app, g, jsonify, request

from blueprints.extensions import database, gateway, recent_holders
from blueprints.gateway import bp
from blueprints.gateway.responses import domain_error_response
from blueprints.rate_limits import rate_limits
from core import integration_keys, user_keys
from core.clock import utcnow
from core.errors import DomainError, RateLimited, RequestTooLarge, Unauthenticated, UserDisabled
from core.gateway.call_plan import Endpoint
from core.gateway.routing import callable_models
from core.pricing import format_credits

bp.register_error_handler(DomainError, domain_error_response)


def _bearer() -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


# A call's hold checks its key and account again (core.holds.take), so these
# endpoints may trust a key this process has seen (core.recent_keys).
HELD_ENDPOINTS = {"gateway.chat_completions", "gateway.embeddings"}


@bp.before_request
def authenticate() -> None:
    """A working user key, an enabled account, and the key's rate limit."""
    presented = _bearer()
    holder = recent_holders().get(presented) if request.endpoint in HELD_ENDPOINTS else None
    if holder is None:
        with database().raw_read() as cursor:
            holder = user_keys.authenticate(cursor, presented)
        if holder is None:
            raise Unauthenticated(
                "A valid Creditline API key is required (Authorization: Bearer clk_…)."
            )
        if holder.user_disabled:
            raise UserDisabled("This account is disabled.")
        recent_holders().remember(presented, holder.key_id, holder)
    limit = current_app.config["GATEWAY_RATE_LIMIT"]
    verdict = rate_limits().hit(limit, "user-key", str(holder.key_id))
    if not verdict.allowed:
        raise RateLimited(
            f"Rate limit of {verdict.limit} requests exceeded; retry later.",
            retry_after=verdict.retry_after,
        )
    g.key_holder = holder
    if integration_keys.needs_touch(holder.last_used_at):
        with database().write() as s:
            user_keys.touch(s, holder.key_id)
        recent_holders().remember(presented, holder.key_id, replace(holder, last_used_at=utcnow()))


@bp.errorhandler(Unauthenticated)
@bp.errorhandler(UserDisabled)
def _key_refused(error: DomainError) -> Response:
    """Refused at the door or, for a remembered key, by its hold: forget it."""
    holder = g.get("key_holder")
    if holder is not None:
        recent_holders().forget(holder.key_id)
    return domain_error_response(error)


def _body() -> bytes:
    """The request body as received, refused above ``GATEWAY_MAX_BODY_BYTES``."""
    limit = current_app.config["GATEWAY_MAX_BODY_BYTES"]
    if (request.content_length or 0) > limit:
        raise RequestTooLarge(f"The request body is larger than {limit:,} bytes.")
    raw = request.stream.read(limit + 1)
    if len(raw) > limit:
        raise RequestTooLarge(f"The request body is larger than {limit:,} bytes.")
    return raw


@bp.get("/models")
def models() -> Response:
    """The models this key can call, in OpenAI's list shape."""
    with database().read_session() as session:
        rows = callable_models(session)
    data = [
        {"id": name, "object": "model", "created": created, "owned_by": "creditline"}
        for name, created in rows
    ]
    return jsonify({"object": "list", "data": data})


def _call(endpoint: Endpoint) -> Response:
    service = gateway()
    call = service.begin(g.key_holder, endpoint, _body())
    if call.plan.stream:
        stream = service.open_stream(call)
        response = Response(service.relay(call, stream), mimetype="text/event-stream")
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Accel-Buffering"] = "no"
        return response
    raw, outcome = service.complete(call)
    response = Response(raw, mimetype="application/json")
    response.headers["x-creditline-credits-charged"] = format_credits(outcome.charged_ucr)
    if outcome.balance_ucr is not None:
        response.headers["x-creditline-balance"] = format_credits(outcome.balance_ucr)
    return response


@bp.post("/chat/completions")
def chat_completions() -> Response:
    """A metered chat completion, streamed or not."""
    return _call(Endpoint.CHAT)


@bp.post("/embeddings")
def embeddings() -> Response:
    """Metered embeddings."""
    return _call(Endpoint.EMBEDDINGS)
