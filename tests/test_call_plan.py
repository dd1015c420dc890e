"""The gateway's call plan: worst-case bounds and the body sent upstream (spec §6)."""

from __future__ import annotations

import json

import pytest

from core.errors import ValidationError
from core.gateway.call_plan import (
    RouteLimits,
    estimated_tokens,
    plan_chat,
    plan_embeddings,
)

LIMITS = RouteLimits(context_window=128_000, max_output=16_384, default_output_cap=4_096)


def chat(body: dict) -> tuple[dict, int]:
    raw = json.dumps(body).encode()
    return body, len(raw)


def plan(body: dict, limits: RouteLimits = LIMITS):
    parsed, size = chat(body)
    return plan_chat(parsed, size, limits, upstream_model="up-model", user_tag="creditline-7")


MESSAGES = [{"role": "user", "content": "Hello there"}]


def test_no_cap_injects_the_default_and_bounds_input_by_bytes_plus_overhead() -> None:
    body, size = chat({"model": "gpt-4o-mini", "messages": MESSAGES})
    p = plan_chat(body, size, LIMITS, upstream_model="up-model", user_tag="creditline-7")
    assert p.max_input_tokens == size + 256
    assert p.max_output_tokens == 4_096
    assert p.upstream_body["max_completion_tokens"] == 4_096
    assert "max_tokens" not in p.upstream_body
    assert p.upstream_body["model"] == "up-model"
    assert p.upstream_body["user"] == "creditline-7"
    assert body["model"] == "gpt-4o-mini" and "user" not in body  # the client's body is untouched


def test_client_cap_is_kept_when_lower_and_clamped_when_above_max_output() -> None:
    low = plan({"model": "m", "messages": MESSAGES, "max_tokens": 100})
    assert low.max_output_tokens == 100
    assert low.upstream_body["max_tokens"] == 100
    assert "max_completion_tokens" not in low.upstream_body
    high = plan({"model": "m", "messages": MESSAGES, "max_completion_tokens": 1_000_000})
    assert high.max_output_tokens == 16_384
    assert high.upstream_body["max_completion_tokens"] == 16_384


def test_both_caps_take_the_smaller_in_both_fields() -> None:
    p = plan({"model": "m", "messages": MESSAGES, "max_tokens": 900, "max_completion_tokens": 300})
    assert p.max_output_tokens == 300
    assert p.upstream_body["max_tokens"] == 300
    assert p.upstream_body["max_completion_tokens"] == 300


def test_n_multiplies_the_output_bound() -> None:
    assert (
        plan({"model": "m", "messages": MESSAGES, "n": 3, "max_tokens": 50}).max_output_tokens
        == 150
    )


def test_input_bound_is_capped_by_the_context_window() -> None:
    small = RouteLimits(context_window=100, max_output=50, default_output_cap=10)
    assert (
        plan(
            {"model": "m", "messages": [{"role": "user", "content": "x" * 500}]}, small
        ).max_input_tokens
        == 100
    )


@pytest.mark.parametrize(
    "part",
    [
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
        {"type": "file", "file": {"file_id": "f1"}},
    ],
)
def test_a_non_text_part_makes_the_input_bound_the_context_window(part: dict) -> None:
    content = [{"type": "text", "text": "what is this?"}, part]
    p = plan({"model": "m", "messages": [{"role": "user", "content": content}]})
    assert p.max_input_tokens == LIMITS.context_window


def test_text_parts_only_stay_bounded_by_bytes() -> None:
    content = [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]
    body = {"model": "m", "messages": [{"role": "user", "content": content}]}
    assert plan(body).max_input_tokens == len(json.dumps(body).encode()) + 256


def test_stream_always_asks_for_usage_and_remembers_whether_the_client_did() -> None:
    silent = plan({"model": "m", "messages": MESSAGES, "stream": True})
    assert silent.stream and not silent.client_wants_usage
    assert silent.upstream_body["stream_options"] == {"include_usage": True}
    asked = plan(
        {
            "model": "m",
            "messages": MESSAGES,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    )
    assert asked.client_wants_usage
    refused = plan(
        {
            "model": "m",
            "messages": MESSAGES,
            "stream": True,
            "stream_options": {"include_usage": False},
        }
    )
    assert not refused.client_wants_usage
    assert refused.upstream_body["stream_options"]["include_usage"] is True


def test_non_stream_sends_no_stream_options() -> None:
    p = plan({"model": "m", "messages": MESSAGES, "stream_options": {"include_usage": True}})
    assert "stream_options" not in p.upstream_body and not p.stream


def test_the_clients_user_field_is_replaced() -> None:
    assert (
        plan({"model": "m", "messages": MESSAGES, "user": "alice@example.com"}).upstream_body[
            "user"
        ]
        == "creditline-7"
    )


@pytest.mark.parametrize(
    "extra",
    [
        {"max_tokens": 0},
        {"max_tokens": -5},
        {"max_tokens": 1.5},
        {"max_completion_tokens": "100"},
        {"max_tokens": True},
        {"n": 0},
        {"n": 129},
        {"n": "2"},
        {"stream": "yes"},
        {"stream_options": "include"},
        {"messages": []},
        {"messages": "hi"},
    ],
)
def test_malformed_fields_are_refused_with_the_field_named(extra: dict) -> None:
    with pytest.raises(ValidationError) as caught:
        plan({"model": "m", "messages": MESSAGES, **extra})
    assert caught.value.details["param"] in extra


def test_embeddings_have_no_output_and_no_chat_fields() -> None:
    body = {"model": "emb", "input": ["a", "b"]}
    raw = len(json.dumps(body).encode())
    p = plan_embeddings(body, raw, LIMITS, upstream_model="up-emb", user_tag="creditline-7")
    assert p.max_output_tokens == 0
    assert p.max_input_tokens == raw + 256
    assert p.upstream_body == {"model": "up-emb", "input": ["a", "b"], "user": "creditline-7"}


def test_embeddings_need_input() -> None:
    with pytest.raises(ValidationError):
        plan_embeddings({"model": "emb"}, 20, LIMITS, upstream_model="e", user_tag="creditline-1")


def test_estimate_is_a_quarter_of_the_bytes_rounded_up() -> None:
    assert estimated_tokens(401, 9) == (101, 3)
    assert estimated_tokens(0, 0) == (0, 0)
