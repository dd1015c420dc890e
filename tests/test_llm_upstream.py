"""The loopback LLM upstream stand-in, checked with the real clients.

The official ``openai`` SDK (pinned in requirements-dev) parses what the
stand-in sends, so its shapes are the ones an OpenAI client accepts; httpx reads
the raw bytes for what the SDK smooths over (``usage: null`` fields, broken
bodies, frames after the usage chunk, connection reuse). Scenarios that wait are
ended by ``release()`` or ``stop()``, never by a clock.
"""

from __future__ import annotations

import base64
import json
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.llm_upstream import LLMUpstream, Scenario, Usage, frames_of

MESSAGES: list[Any] = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def upstream() -> Iterator[LLMUpstream]:
    with LLMUpstream() as server:
        yield server


@pytest.fixture
def sdk(upstream: LLMUpstream) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(base_url=upstream.url, api_key="sk-client-key", max_retries=0)
    yield client
    client.close()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def raw_stream(http: httpx.Client, upstream: LLMUpstream, **body: Any) -> list[str]:
    """The data payloads of one streamed chat answer, read to its end."""
    payload = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True, **body}
    response = http.post(upstream.url + "/chat/completions", json=payload)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    return list(frames_of(response.content))


# --- through the openai SDK ------------------------------------------------------


def test_non_stream_chat_reports_the_configured_usage(upstream, sdk):
    upstream.next(Scenario(text="Hi there", usage=Usage(40, 25, reasoning_tokens=9)))
    answer = sdk.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, max_completion_tokens=64, user="creditline-7"
    )
    assert answer.object == "chat.completion"
    assert answer.model == "gpt-4o-mini"
    assert answer.choices[0].message.content == "Hi there"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (40, 25)
    assert answer.usage.total_tokens == 65
    assert answer.usage.completion_tokens_details is not None
    assert answer.usage.completion_tokens_details.reasoning_tokens == 9
    received = upstream.last_request
    assert (received.method, received.path) == ("POST", "/v1/chat/completions")
    assert received.body["max_completion_tokens"] == 64
    assert received.body["user"] == "creditline-7"
    assert received.header("Authorization") == "Bearer sk-client-key"
    assert json.loads(received.raw) == received.body


def test_stream_with_include_usage_ends_with_a_usage_only_chunk(upstream, sdk):
    scenario = Scenario(text="one two three", usage=Usage(11, 3))
    upstream.next(scenario)
    chunks = list(
        sdk.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == scenario.content() == "one two three"
    assert [c.choices[0].finish_reason for c in chunks[:-1]][-1] == "stop"
    *others, last = chunks
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (11, 3)
    assert all(c.usage is None for c in others)
    assert len({c.id for c in chunks}) == 1
    assert upstream.last_request.body["stream_options"] == {"include_usage": True}


def test_stream_without_stream_options_sends_no_usage(upstream, sdk):
    chunks = list(sdk.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)
    assert "stream_options" not in upstream.last_request.body


def test_raw_stream_frames_are_openai_chunks_then_done(upstream, http):
    frames = raw_stream(http, upstream, stream_options={"include_usage": True})
    assert frames[-1] == "[DONE]"
    chunks = [json.loads(f) for f in frames[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    # With include_usage every chunk but the last carries an explicit null.
    assert all("usage" in c and c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["total_tokens"] == 19
    without = raw_stream(http, upstream)
    assert all("usage" not in json.loads(f) for f in without[:-1])


def test_embeddings_in_base64_and_float(upstream, sdk):
    upstream.next(Scenario(usage=Usage(prompt_tokens=6)), Scenario())
    answer = sdk.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert [d.index for d in answer.data] == [0, 1]
    assert answer.data[1].embedding == [0.25, 0.5, 0.75]
    assert (answer.usage.prompt_tokens, answer.usage.total_tokens) == (6, 6)
    # The SDK asks for base64 unless told otherwise; the stand-in honours both.
    assert upstream.last_request.body["encoding_format"] == "base64"
    floats = sdk.embeddings.create(
        model="text-embedding-3-small", input="a", encoding_format="float", dimensions=2
    )
    assert floats.data[0].embedding == [0.125, 0.25]


def test_base64_embedding_is_little_endian_float32(upstream, http):
    body = {"model": "e", "input": "a", "encoding_format": "base64"}
    encoded = http.post(upstream.url + "/embeddings", json=body).json()["data"][0]["embedding"]
    assert struct.unpack("<3f", base64.b64decode(encoded)) == (0.125, 0.25, 0.375)


def test_models_list(upstream, sdk):
    upstream.next(Scenario(status=500))
    assert [m.id for m in sdk.models.list()] == ["gpt-4o-mini", "text-embedding-3-small"]
    assert upstream.last_request.method == "GET"
    with pytest.raises(openai.InternalServerError):  # the models call left it queued
        sdk.chat.completions.create(model="m", messages=MESSAGES)


@pytest.mark.parametrize(
    ("status", "error_class", "error_type"),
    [
        (400, openai.BadRequestError, "invalid_request_error"),
        (429, openai.RateLimitError, "requests"),
        (500, openai.InternalServerError, "server_error"),
    ],
)
def test_error_statuses_raise_the_sdk_classes(upstream, sdk, status, error_class, error_type):
    upstream.next(Scenario(status=status), Scenario(status=status))
    with pytest.raises(error_class) as raised:
        sdk.chat.completions.create(model="m", messages=MESSAGES)
    assert raised.value.status_code == status
    assert raised.value.type == error_type
    with pytest.raises(error_class):
        sdk.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    assert upstream.request_count == 2  # max_retries=0: no retry


def test_api_key_is_checked_when_set(upstream):
    upstream.api_key = "sk-route-secret"
    wrong = openai.OpenAI(base_url=upstream.url, api_key="clk_user", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as raised:
        wrong.models.list()
    assert raised.value.code == "invalid_api_key"
    right = openai.OpenAI(base_url=upstream.url, api_key="sk-route-secret", max_retries=0)
    assert right.models.list().data


# --- raw behaviours through httpx ------------------------------------------------


def test_mid_stream_failure_breaks_the_body_after_n_frames(upstream, http):
    upstream.next(Scenario(fail_after_chunks=3))
    payload = {"model": "m", "messages": MESSAGES, "stream": True}
    received: list[str] = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        http.stream("POST", upstream.url + "/chat/completions", json=payload) as response,
    ):
        received.extend(line for line in response.iter_lines() if line)
    assert len(received) == 3
    assert json.loads(received[-1][len("data: ") :])["choices"][0]["delta"]["content"]


def test_non_stream_failure_cuts_the_body(upstream, http):
    upstream.next(Scenario(fail_after_chunks=0))
    with pytest.raises(httpx.RemoteProtocolError):
        http.post(upstream.url + "/chat/completions", json={"model": "m", "messages": MESSAGES})


def test_no_done_ends_the_body_cleanly_and_closes(upstream, http):
    upstream.next(Scenario(no_done=True))
    payload = {"model": "m", "messages": MESSAGES, "stream": True}
    response = http.post(
        upstream.url + "/chat/completions", json={**payload, "stream_options": {"include_usage": 1}}
    )
    frames = list(frames_of(response.content))
    assert "[DONE]" not in frames
    assert json.loads(frames[-1])["usage"]["completion_tokens"] == 7
    assert response.headers["connection"] == "close"


def test_appended_frame_comes_after_the_usage_chunk(upstream, http):
    extra = {"choices": [], "x_upstream_note": "late"}
    upstream.next(Scenario(append_frame=extra))
    frames = raw_stream(http, upstream, stream_options={"include_usage": True})
    usage_chunk, appended, done = json.loads(frames[-3]), json.loads(frames[-2]), frames[-1]
    assert usage_chunk["usage"]["prompt_tokens"] == 12
    assert appended["x_upstream_note"] == "late"
    assert appended["id"] == usage_chunk["id"]
    assert done == "[DONE]"


@pytest.mark.parametrize("usage_on", ["content_chunk", "finish_chunk"])
def test_usage_on_a_choice_chunk_instead_of_a_usage_only_chunk(upstream, http, usage_on):
    upstream.next(Scenario(text="a b", usage=Usage(5, 2), usage_on=usage_on))
    chunks = [
        json.loads(f) for f in raw_stream(http, upstream, stream_options={"include_usage": 1})[:-1]
    ]
    assert all(c["choices"] for c in chunks)
    carriers = [c for c in chunks if c["usage"] is not None]
    assert len(carriers) == 1
    assert carriers[0]["usage"]["total_tokens"] == 7
    choice = carriers[0]["choices"][0]
    if usage_on == "content_chunk":
        assert choice["delta"]["content"] == " b"
    else:
        assert choice["finish_reason"] == "stop"


def test_omitted_usage_and_unasked_usage(upstream, sdk, http):
    upstream.next(Scenario(usage=None), Scenario(usage=None))
    assert sdk.chat.completions.create(model="m", messages=MESSAGES).usage is None
    frames = raw_stream(http, upstream, stream_options={"include_usage": True})
    assert all(json.loads(f)["usage"] is None for f in frames[:-1])
    upstream.next(Scenario(usage_unasked=True))
    assert json.loads(raw_stream(http, upstream)[-2])["usage"]["total_tokens"] == 19


def test_chunk_count_slow_stream_and_n_choices(upstream, http):
    scenario = Scenario(text="tick tock", chunks=5, chunk_delay=0.01, first_chunk_delay=0.01)
    upstream.next(scenario)
    chunks = [json.loads(f) for f in raw_stream(http, upstream, n=2)[:-1]]
    for index in (0, 1):
        choices = [c["choices"][0] for c in chunks if c["choices"][0]["index"] == index]
        text = "".join(ch["delta"].get("content") or "" for ch in choices)
        assert text == scenario.content() == "tick tock tick tock tick"
        assert len(choices) == 1 + 5 + 1  # role, five pieces, finish


def test_silent_pause_sends_headers_before_any_frame(upstream, http):
    upstream.next(Scenario(stall_after_chunks=0))
    payload = {"model": "m", "messages": MESSAGES, "stream": True}
    with http.stream("POST", upstream.url + "/chat/completions", json=payload) as response:
        assert response.status_code == 200
        upstream.wait_for_hung(1)
        assert upstream.open_streams == 1
        upstream.release()
        assert list(frames_of(response.read()))[-1] == "[DONE]"


def test_hang_is_recorded_then_answers_when_released(upstream, http):
    upstream.next(Scenario(hang=True))
    answers: list[httpx.Response] = []
    url = upstream.url + "/embeddings"
    caller = threading.Thread(target=lambda: answers.append(http.post(url, json={"input": "x"})))
    caller.start()
    upstream.wait_for_hung(1)
    assert upstream.last_request.body == {"input": "x"}
    assert (upstream.in_flight, answers) == (1, [])
    upstream.release()
    caller.join()
    assert answers[0].json()["object"] == "list"
    # The client may have the whole answer before the server thread counts it done.
    upstream.wait_until(lambda up: up.in_flight == 0)
    assert upstream.hung == 0


def test_release_covers_requests_that_arrived_before_it(upstream, http):
    upstream.next(Scenario(hang=True, stall_after_chunks=1))
    payload = {"model": "m", "messages": MESSAGES, "stream": True}
    frames: list[str] = []
    url = upstream.url + "/chat/completions"
    caller = threading.Thread(
        target=lambda: frames.extend(frames_of(http.post(url, json=payload).content))
    )
    caller.start()
    upstream.wait_for_hung(1)
    upstream.release()  # one release: past the hang and the stall it has not reached
    caller.join()
    assert frames[-1] == "[DONE]"


def test_stop_releases_hung_requests_and_leaves_no_thread():
    before = set(threading.enumerate())
    upstream = LLMUpstream(default=Scenario(hang=True)).start()
    errors: list[Exception] = []

    def call(stream: bool) -> None:
        payload = {"model": "m", "messages": MESSAGES, "stream": stream}
        try:
            httpx.post(upstream.url + "/chat/completions", json=payload, timeout=10)
        except httpx.HTTPError as exc:
            errors.append(exc)

    callers = [threading.Thread(target=call, args=(s,)) for s in (False, True)]
    idle = httpx.Client()
    idle.get(upstream.url + "/models")  # a kept-alive idle connection
    for caller in callers:
        caller.start()
    upstream.wait_for_hung(2)
    stopper = threading.Thread(target=upstream.stop, daemon=True)
    stopper.start()
    stopper.join(timeout=30)  # a safety net: a stop() that hangs fails here
    assert not stopper.is_alive()
    for caller in callers:
        caller.join()
    idle.close()
    assert len(errors) == 2
    assert set(threading.enumerate()) - {stopper} <= before


def test_open_streams_are_counted_and_awaited(upstream):
    upstream.default = Scenario(stall_after_chunks=1)
    payload = {"model": "m", "messages": MESSAGES, "stream": True}
    url = upstream.url + "/chat/completions"
    callers = [
        threading.Thread(target=lambda: httpx.post(url, json=payload, timeout=10)) for _ in range(3)
    ]
    for caller in callers:
        caller.start()
    upstream.wait_for_open_streams(3)
    assert (upstream.open_streams, upstream.in_flight, upstream.request_count) == (3, 3, 3)
    upstream.release()
    for caller in callers:
        caller.join()
    upstream.wait_until(lambda up: up.open_streams == 0)
    assert upstream.peak_open_streams == 3


def test_completed_streams_and_client_disconnects_are_counted(upstream, http):
    raw_stream(http, upstream)
    # The client may have read the last byte before the server thread counts it.
    upstream.wait_until(lambda up: up.completed_streams == 1)
    assert upstream.client_disconnects == 0
    upstream.next(Scenario(chunks=10_000, chunk_delay=0.001))
    payload = {"model": "m", "messages": MESSAGES, "stream": True}
    with http.stream("POST", upstream.url + "/chat/completions", json=payload) as response:
        next(response.iter_lines())
    # Leaving the block closes the connection mid-stream; the next writes fail.
    upstream.wait_until(lambda up: up.client_disconnects == 1)
    assert (upstream.completed_streams, upstream.open_streams) == (1, 0)


def http_chunks(upstream: LLMUpstream, body: dict[str, Any]) -> list[bytes]:
    """The HTTP/1.1 chunks of one answer, read off a raw socket."""
    payload = json.dumps(body).encode()
    with socket.create_connection(("127.0.0.1", int(upstream.origin.rsplit(":", 1)[1]))) as conn:
        conn.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (len(payload), payload)
        )
        reader = conn.makefile("rb")
        while reader.readline() not in (b"\r\n", b""):
            pass
        chunks = []
        while size := int(reader.readline(), 16):
            chunks.append(reader.read(size))
            assert reader.readline() == b"\r\n"
        return chunks


def test_one_http_chunk_per_frame_or_split_frames(upstream):
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    whole = http_chunks(upstream, body)
    assert all(c.startswith(b"data: ") and c.endswith(b"\n\n") for c in whole)
    upstream.next(Scenario(split_frames=True, text="naïve café"))
    halves = http_chunks(upstream, body)
    frames = list(frames_of(b"".join(halves)))
    assert len(halves) == 2 * len(frames)
    assert not any(c.endswith(b"\n\n") for c in halves[::2])
    content = "".join(
        json.loads(f)["choices"][0]["delta"].get("content") or "" for f in frames[:-1]
    )
    assert content == "naïve café"
    assert "café".encode() in b"".join(halves)  # raw UTF-8, not \u escapes


def test_one_kept_alive_connection_serves_json_and_streams(upstream, http):
    http.get(upstream.url + "/models")
    raw_stream(http, upstream, stream_options={"include_usage": True})
    http.post(upstream.url + "/chat/completions", json={"model": "m", "messages": MESSAGES})
    raw_stream(http, upstream)
    assert len({r.client_port for r in upstream.requests}) == 1


def test_scenarios_queue_in_order_then_the_default(upstream, sdk):
    upstream.default = Scenario(text="default")
    upstream.next(Scenario(text="first"), Scenario(text="second"))
    said = [
        sdk.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content
        for _ in range(3)
    ]
    assert said == ["first", "second", "default"]


def test_chunked_request_bodies_and_rewritten_model_are_recorded(upstream, http):
    body = json.dumps({"model": "upstream-model-x", "messages": MESSAGES}).encode()
    response = http.post(
        upstream.url + "/chat/completions",
        content=iter([body[:10], body[10:]]),
        headers={"content-type": "application/json"},
    )
    assert response.json()["model"] == "upstream-model-x"
    assert upstream.last_request.header("transfer-encoding") == "chunked"
    assert upstream.last_request.body["model"] == "upstream-model-x"
