"""What the gateway sends upstream for one call, and the worst case it can cost.

A hold must cover the most a call can cost before the call is made, without
downloading a tokenizer. The bounds (one per call, in tokens):

- **input** ≤ ``min(bytes of the request body as received + route overhead,
  route context window)``. A byte-level BPE token is never shorter than one
  byte, so the body's length bounds the prompt's tokens; the overhead covers
  the chat template's own tokens. Any part that is not text (image, audio,
  file) can cost more than its bytes, so it makes the bound the context window.
  Embeddings given as token arrays take at least two bytes a token (``1,``).
- **output** ≤ ``n × min(cap, route max output)``, where cap is the client's
  ``max_completion_tokens`` / ``max_tokens`` (the smaller if both) or, if it
  gave none, the route's default output cap. The cap the bound assumed is the
  cap the upstream receives: a missing cap is injected as
  ``max_completion_tokens`` (OpenAI's current field), a cap above the route's
  max output is clamped in whichever field(s) the client used.
  Embeddings produce no output tokens, and none of these fields is added.

The plan also rewrites what the upstream must see: the route's model name,
``user: "creditline-<user id>"`` (never the client's own ``user`` value or
anything that names the person), and for streams
``stream_options.include_usage: true`` so the usage always comes back; whether
the *client* asked for the usage chunk is remembered so the relay can drop it
for clients that did not.

Nothing here touches the database or the network: these are pure functions
of the parsed body, its byte length and the route's limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from core.errors import ValidationError

MAX_CHOICES = 128  # OpenAI's own limit on ``n``
CAP_FIELDS = ("max_completion_tokens", "max_tokens")


class Endpoint(StrEnum):
    """The upstream endpoints the gateway meters."""

    CHAT = "chat/completions"
    EMBEDDINGS = "embeddings"


@dataclass(frozen=True)
class RouteLimits:
    """A route's token limits, as the admin set them."""

    context_window: int
    max_output: int
    default_output_cap: int
    overhead: int = 256


@dataclass(frozen=True)
class CallPlan:
    """One upstream call: the body to send and the token bounds of its cost."""

    endpoint: Endpoint
    upstream_body: dict[str, Any]
    max_input_tokens: int
    max_output_tokens: int
    stream: bool
    client_wants_usage: bool
    request_bytes: int


def _token_count(body: dict[str, Any], field: str) -> int | None:
    value = body.get(field)
    if value is None:
        return None
    if type(value) is not int or value < 1:
        raise ValidationError(f"'{field}' must be a positive integer.", param=field)
    return value


def _has_non_text_part(messages: Any) -> bool:
    """True when any message carries a part that is not plain text."""
    if not isinstance(messages, list):
        return False
    for message in messages:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, list) and any(
            not isinstance(part, dict) or part.get("type") not in ("text", "refusal")
            for part in content
        ):
            return True
        if message.get("audio") is not None:
            return True
    return False


def input_bound(request_bytes: int, limits: RouteLimits, *, non_text: bool) -> int:
    """The most input tokens a request of ``request_bytes`` can be billed for."""
    if non_text:
        return limits.context_window
    return min(request_bytes + limits.overhead, limits.context_window)


def plan_chat(
    body: dict[str, Any],
    request_bytes: int,
    limits: RouteLimits,
    *,
    upstream_model: str,
    user_tag: str,
) -> CallPlan:
    """The upstream body and worst case of a ``/v1/chat/completions`` call.

    ``body`` is the client's parsed JSON object (not modified);
    ``request_bytes`` the length of the body as received.
    """
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        raise ValidationError("'messages' must be a non-empty array.", param="messages")
    n = body.get("n", 1)
    if n is None:
        n = 1
    if type(n) is not int or not 1 <= n <= MAX_CHOICES:
        raise ValidationError(f"'n' must be an integer from 1 to {MAX_CHOICES}.", param="n")
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise ValidationError("'stream' must be true or false.", param="stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise ValidationError("'stream_options' must be an object.", param="stream_options")

    caps = {field: _token_count(body, field) for field in CAP_FIELDS}
    given = [cap for cap in caps.values() if cap is not None]
    cap = min([*given, limits.max_output]) if given else limits.default_output_cap
    cap = min(cap, limits.max_output)

    upstream = dict(body)
    upstream["model"] = upstream_model
    upstream["user"] = user_tag
    if given:
        for field, value in caps.items():
            if value is not None:
                upstream[field] = min(value, cap)
    else:
        upstream["max_completion_tokens"] = cap
    wants_usage = False
    if stream:
        wants_usage = bool(options and options.get("include_usage") is True)
        upstream["stream_options"] = {**(options or {}), "include_usage": True}
    else:
        upstream.pop("stream_options", None)

    return CallPlan(
        endpoint=Endpoint.CHAT,
        upstream_body=upstream,
        max_input_tokens=input_bound(
            request_bytes, limits, non_text=_has_non_text_part(body["messages"])
        ),
        max_output_tokens=n * cap,
        stream=stream,
        client_wants_usage=wants_usage,
        request_bytes=request_bytes,
    )


def plan_embeddings(
    body: dict[str, Any],
    request_bytes: int,
    limits: RouteLimits,
    *,
    upstream_model: str,
    user_tag: str,
) -> CallPlan:
    """The upstream body and worst case of a ``/v1/embeddings`` call (no output)."""
    value = body.get("input")
    if value is None or value == "" or value == []:
        raise ValidationError("'input' is required.", param="input")
    upstream = dict(body)
    upstream["model"] = upstream_model
    upstream["user"] = user_tag
    return CallPlan(
        endpoint=Endpoint.EMBEDDINGS,
        upstream_body=upstream,
        max_input_tokens=input_bound(request_bytes, limits, non_text=False),
        max_output_tokens=0,
        stream=False,
        client_wants_usage=False,
        request_bytes=request_bytes,
    )


def estimated_tokens(request_bytes: int, relayed_text_bytes: int) -> tuple[int, int]:
    """(input, output) tokens charged when no usage was reported but output was
    relayed: a quarter of the request's bytes and of the relayed text's UTF-8 bytes,
    rounded up (the caller caps the cost at the hold)."""
    return -(-request_bytes // 4), -(-relayed_text_bytes // 4)
