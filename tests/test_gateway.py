"""The metering gateway over real HTTP, driven by the real openai SDK, in front of
the loopback stand-in upstream: charges by spec §6's table, errors the SDK knows."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import select

from core import audit, user_keys
from core.accounts import find_user
from core.gateway.call_plan import Endpoint
from core.gateway.models import UserApiKey
from core.pricing import MICRO as CR
from core.rawdb import RawCursor
from tests.gateway_setup import MESSAGES, UPSTREAM_SECRET, World, make_world, post
from tests.llm_upstream import Scenario, Usage


@pytest.fixture
def world(db_config: dict[str, Any]) -> Iterator[World]:
    yield from make_world(db_config)


# gpt-4o-mini: $0.15 in / $0.60 out per 1M at 10,000 credits per USD.
def cost(tokens_in: int, tokens_out: int) -> int:
    return -(-(tokens_in * 150_000 + tokens_out * 600_000) * 10_000 // 1_000_000)


def test_non_stream_chat_is_charged_its_reported_usage(world: World) -> None:
    world.upstream.next(Scenario(usage=Usage(120, 30)))
    raw = world.sdk().chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    )
    answer = raw.parse()
    assert answer.choices[0].message.content == Scenario().content()
    assert raw.headers["x-creditline-credits-charged"] == "0.36"  # 120 in + 30 out
    assert world.balance() == 100 * CR - cost(120, 30)
    assert raw.headers["x-creditline-balance"] == "99.64"
    sent = world.upstream.last_request
    assert sent.header("authorization") == f"Bearer {UPSTREAM_SECRET}"  # never the user's key
    assert world.key not in str(sent.headers)
    assert sent.body["model"] == "upstream-mini"
    assert sent.body["max_completion_tokens"] == 1_000  # the route's default cap, injected
    assert sent.body["user"].startswith("creditline-")
    [event] = world.events()
    assert (event.status, event.cost_ucr, event.source) == ("charged", cost(120, 30), "laptop")
    assert [h.status for h in world.holds()] == ["settled"]
    assert world.billing.problems() == []


def test_stream_without_usage_option_hides_the_usage_chunk_but_charges_it(world: World) -> None:
    world.upstream.next(Scenario(usage=Usage(50, 7)))
    stream = world.sdk().chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == Scenario().content()
    assert all(c.usage is None for c in chunks)
    assert world.upstream.last_request.body["stream_options"] == {"include_usage": True}
    assert world.balance() == 100 * CR - cost(50, 7)
    assert world.billing.problems() == []


def test_stream_with_usage_option_relays_the_usage_chunk(world: World) -> None:
    world.upstream.next(Scenario(usage=Usage(50, 7)))
    chunks = list(
        world.sdk().chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
            max_tokens=64,
        )
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 50
    assert world.upstream.last_request.body["max_tokens"] == 64
    assert world.balance() == 100 * CR - cost(50, 7)


def test_stream_bytes_are_relayed_unchanged(world: World) -> None:
    world.upstream.next(Scenario(usage=Usage(5, 5), split_frames=True))
    body = {
        "model": "gpt-4o-mini",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with httpx.Client() as client:
        got = client.post(
            world.base_url + "/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {world.key}"},
        )
    assert got.headers["content-type"].startswith("text/event-stream")
    direct = httpx.post(
        world.upstream.url + "/chat/completions",
        json={**body, "model": "upstream-mini"},
        headers={"Authorization": f"Bearer {UPSTREAM_SECRET}"},
    )
    strip = lambda b: b.replace(b"upstream-mini", b"").splitlines()  # noqa: E731
    assert len(strip(got.content)) == len(strip(direct.content))
    assert got.content.endswith(b"data: [DONE]\n\n")


def test_embeddings_and_models(world: World) -> None:
    world.upstream.next(Scenario(usage=Usage(8, 0)))
    answer = world.sdk().embeddings.create(model="gpt-4o-mini", input=["a", "b"])
    assert len(answer.data) == 2
    sent = world.upstream.last_request.body
    assert "max_completion_tokens" not in sent and "stream_options" not in sent
    assert world.balance() == 100 * CR - cost(8, 0)
    assert [m.id for m in world.sdk().models.list()] == ["gpt-4o-mini"]


@pytest.mark.parametrize("stream", [False, True])
def test_no_usage_but_output_is_estimated_from_bytes(world: World, stream: bool) -> None:
    scenario = Scenario(usage=None, text="Grüße aus der Ferne")
    world.upstream.next(scenario)
    body = json.dumps({"model": "gpt-4o-mini", "messages": MESSAGES, "stream": stream}).encode()
    assert post(world, body).status_code == 200
    [event] = world.events()
    tokens_in = -(-len(body) // 4)
    tokens_out = -(-len(scenario.content().encode()) // 4)  # UTF-8 bytes, not characters
    assert (event.status, event.input_tokens, event.output_tokens) == (
        "estimated",
        tokens_in,
        tokens_out,
    )
    assert world.balance() == 100 * CR - cost(tokens_in, tokens_out)
    assert world.billing.problems() == []


def test_no_usage_and_no_output_releases_the_hold(world: World) -> None:
    world.upstream.next(Scenario(usage=None, text=""))
    body = json.dumps({"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}).encode()
    post(world, body)
    assert world.events() == [] and world.balance() == 100 * CR
    assert [h.status for h in world.holds()] == ["released"]


@pytest.mark.parametrize(
    ("status", "sdk_error"),
    [(400, openai.BadRequestError), (429, openai.RateLimitError)],
)
def test_an_upstream_4xx_is_relayed_and_nothing_charged(
    world: World, status: int, sdk_error: type[Exception]
) -> None:
    world.upstream.next(Scenario(status=status))
    with pytest.raises(sdk_error):
        world.sdk().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert world.balance() == 100 * CR
    assert [h.status for h in world.holds()] == ["released"]
    assert world.events() == []


def test_an_upstream_5xx_is_a_502_and_a_stream_error_is_json(world: World) -> None:
    world.upstream.next(Scenario(status=500))
    with pytest.raises(openai.InternalServerError) as failed:
        world.sdk().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    assert failed.value.status_code == 502
    assert failed.value.body["code"] == "upstream_error"
    assert world.balance() == 100 * CR


def test_key_problems_are_401_and_402_is_not_retried(world: World) -> None:
    with pytest.raises(openai.AuthenticationError):
        world.sdk("clk_wrong_key").models.list()
    poor = world.billing.user("poor@example.com", 1_000)  # 0.001 credits
    with world.billing.db.write() as s:
        _, poor_key = user_keys.create(s, audit.CLI, poor.id, "k")
    client = openai.OpenAI(base_url=world.base_url, api_key=poor_key, max_retries=3)
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    error = refused.value
    assert error.status_code == 402 and error.response.headers["x-should-retry"] == "false"
    assert error.body["code"] == "insufficient_credits"
    assert set(error.body["details"]) == {"required", "available"}
    assert world.upstream.request_count == 0  # the upstream was never called, nor retried


def test_unknown_and_disabled_models_are_404(world: World) -> None:
    with pytest.raises(openai.NotFoundError) as unknown:
        world.sdk().chat.completions.create(model="gpt-9", messages=MESSAGES)
    assert unknown.value.body["code"] == "unknown_model"
    world.billing.set_price("gpt-4o-mini", 150_000, 600_000, enabled=False)
    with pytest.raises(openai.NotFoundError) as disabled:
        world.sdk().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert disabled.value.body["code"] == "model_disabled"
    assert world.upstream.request_count == 0


def leave_after_first_content(world: World, body: dict) -> None:
    """Read the stream until the first content arrives, then hang up."""
    with (
        httpx.Client(timeout=30) as client,
        client.stream(
            "POST",
            world.base_url + "/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {world.key}"},
        ) as response,
    ):
        for line in response.iter_lines():
            if '"content":"' in line and '"content":""' not in line:
                break


def wait_for(predicate, timeout: float = 10) -> None:

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


SLOW = Scenario(usage=Usage(40, 20), chunks=30, chunk_delay=0.03)
STREAM_BODY = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}


def test_a_client_that_leaves_is_charged_the_drained_usage(world: World) -> None:
    world.upstream.next(SLOW)
    leave_after_first_content(world, STREAM_BODY)
    wait_for(lambda: bool(world.events()))
    [event] = world.events()
    assert (event.status, event.disconnected) == ("charged", True)
    assert (event.input_tokens, event.output_tokens) == (40, 20)
    assert world.upstream.completed_streams == 1  # read to its end
    assert world.billing.problems() == []


def test_usage_received_with_the_last_relayed_event_is_not_lost(world: World) -> None:
    """The whole answer, usage included, arrives in one read; the client is
    gone after the first event. Under ``drain`` the events received but not
    relayed are metered too, so the reported usage is charged, not an
    estimate. Driven the way a WSGI server drives the response: ``next``,
    then ``close`` when a write fails."""
    world.upstream.next(Scenario(usage=Usage(40, 20), chunks=8, one_write=True))
    gateway = world.app.extensions["creditline.gateway"]
    with world.billing.db.read_session() as s:
        holder = user_keys.authenticate(RawCursor.of_session(s), world.key)
    body = json.dumps(STREAM_BODY).encode()
    call = gateway.begin(holder, Endpoint.CHAT, body)
    relay = gateway.relay(call, gateway.open_stream(call))
    world.upstream.wait_until(lambda up: up.completed_streams == 1)  # all of it sent
    assert next(relay).startswith(b"data: ")
    relay.close()
    [event] = world.events()
    assert (event.status, event.disconnected) == ("charged", True)
    assert (event.input_tokens, event.output_tokens) == (40, 20)
    assert event.cost_ucr == cost(40, 20)
    assert world.billing.problems() == []


@pytest.fixture
def cancelling(db_config: dict[str, Any]) -> Iterator[World]:
    yield from make_world(db_config, GATEWAY_ABORT_POLICY="cancel")


def test_under_cancel_a_client_that_leaves_is_charged_an_estimate(cancelling: World) -> None:
    world = cancelling
    world.upstream.next(SLOW)
    leave_after_first_content(world, STREAM_BODY)
    wait_for(lambda: bool(world.events()))
    [event] = world.events()
    assert event.status == "estimated"
    world.upstream.wait_until(lambda up: up.client_disconnects == 1)
    assert world.upstream.completed_streams == 0
    assert 0 < event.cost_ucr <= world.holds()[0].amount_ucr
    assert world.billing.problems() == []


def test_refusals_before_any_hold(world: World) -> None:
    big = json.dumps({"model": "gpt-4o-mini", "messages": MESSAGES, "pad": "x" * 100}).encode()
    world.app.config["GATEWAY_MAX_BODY_BYTES"] = 100
    refused = post(world, big)
    assert (refused.status_code, refused.json()["error"]["code"]) == (413, "request_too_large")
    world.app.config["GATEWAY_MAX_BODY_BYTES"] = 20 * 1024 * 1024
    capped = {"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": 10}
    world.billing.set(max_tokens_per_event=100)
    over = post(world, json.dumps(capped).encode())
    assert (over.status_code, over.json()["error"]["code"]) == (422, "limit_exceeded")
    assert over.json()["error"]["type"] == "invalid_request_error"
    assert world.holds() == [] and world.upstream.request_count == 0


def test_revoked_expired_and_disabled_keys(world: World) -> None:
    ok = json.dumps({"model": "gpt-4o-mini", "messages": MESSAGES}).encode()
    with world.billing.db.write() as s:
        kim = find_user(s, "kim@example.com")
        user_keys.revoke_by_name(s, audit.CLI, kim.id, "laptop")
    assert post(world, ok).status_code == 401
    user = world.billing.user("lee@example.com", 10 * CR)
    with world.billing.db.write() as s:
        _, key = user_keys.create(s, audit.CLI, user.id, "k", limit_ucr=10)
    limited = post(world, ok, key)
    assert (limited.status_code, limited.json()["error"]["code"]) == (403, "key_limit_reached")
    with world.billing.db.write() as s:
        s.get(type(user), user.id).is_disabled = True
    disabled = post(world, ok, key)
    assert (disabled.status_code, disabled.json()["error"]["code"]) == (403, "user_disabled")
    assert world.upstream.request_count == 0


def test_a_call_records_when_the_key_was_last_used(world: World) -> None:
    with world.billing.db.read_session() as s:
        assert s.scalar(select(UserApiKey.last_used_at)) is None
    world.sdk().models.list()
    with world.billing.db.read_session() as s:
        assert s.scalar(select(UserApiKey.last_used_at)) is not None
