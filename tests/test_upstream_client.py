"""The gateway's upstream client (core.gateway.upstream_client) against the stand-in."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from core.errors import UpstreamRefused, UpstreamTimeout, UpstreamUnreachable
from core.gateway.sse_relay import EventSplitter, StreamMeter
from core.gateway.upstream_client import Timeouts, Upstream, UpstreamClient, UpstreamStream
from tests.llm_upstream import LLMUpstream, Scenario, Usage

SECRET = "sk-upstream-secret"
BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def upstream() -> Iterator[LLMUpstream]:
    with LLMUpstream(api_key=SECRET) as server:
        yield server


@pytest.fixture
def client() -> Iterator[UpstreamClient]:
    c = UpstreamClient(Timeouts(connect=2, write=2, pool=2, first_byte=2))
    yield c
    c.close()


def soon(seconds: float = 5) -> float:
    return time.monotonic() + seconds


def test_a_json_answer_comes_back_whole_with_the_secret_sent(
    upstream: LLMUpstream, client: UpstreamClient
) -> None:
    raw, _ = client.post_json(Upstream(upstream.url, SECRET), "chat/completions", BODY, soon())
    answer = json.loads(raw)
    assert answer["object"] == "chat.completion"
    assert upstream.last_request.header("authorization") == f"Bearer {SECRET}"


def test_connections_are_pooled_across_calls(upstream: LLMUpstream, client: UpstreamClient) -> None:
    for _ in range(3):
        client.post_json(Upstream(upstream.url, SECRET), "chat/completions", BODY, soon())
    assert len({r.client_port for r in upstream.requests}) == 1


def test_an_upstream_cookie_is_never_sent_on_a_later_call(
    upstream: LLMUpstream, client: UpstreamClient
) -> None:
    """One pooled client serves every user's calls: a cookie set by one answer
    must not ride along on the next (another user's) call."""
    upstream.next(Scenario(headers={"Set-Cookie": "upstream_session=abc123; Path=/"}))
    for _ in range(2):
        client.post_json(Upstream(upstream.url, SECRET), "chat/completions", BODY, soon())
    assert [r.header("cookie") for r in upstream.requests] == [None, None]


def test_answers_are_asked_for_uncompressed(upstream: LLMUpstream, client: UpstreamClient) -> None:
    """The answer is relayed byte for byte and metered from its JSON."""
    client.post_json(Upstream(upstream.url, SECRET), "chat/completions", BODY, soon())
    assert upstream.last_request.header("accept-encoding") == "identity"


def test_an_error_before_any_body_is_refused_with_the_secret_and_address_scrubbed(
    upstream: LLMUpstream, client: UpstreamClient
) -> None:
    leak = f"key {SECRET} rejected at {upstream.url} ({upstream.origin})"
    upstream.next(
        Scenario(
            status=429,
            error_body={"error": {"message": leak, "type": "rate_limit", "code": "x"}},
            headers={"retry-after": "7"},
        )
    )
    with pytest.raises(UpstreamRefused) as refused:
        client.post_json(Upstream(upstream.url, SECRET), "chat/completions", BODY, soon())
    error = refused.value
    assert error.status == 429 and error.retry_after == "7"
    text = json.dumps(error.error)
    assert SECRET not in text and upstream.url not in text and "127.0.0.1" not in text
    assert error.error["type"] == "rate_limit"


def test_a_wrong_secret_is_a_refusal_not_a_crash(
    upstream: LLMUpstream, client: UpstreamClient
) -> None:
    with pytest.raises(UpstreamRefused) as refused:
        client.post_json(Upstream(upstream.url, "sk-wrong"), "chat/completions", BODY, soon())
    assert refused.value.status == 401


def test_nobody_listening_is_unreachable(client: UpstreamClient) -> None:
    with LLMUpstream() as gone:
        url = gone.url
    with pytest.raises(UpstreamUnreachable):
        client.post_json(Upstream(url, SECRET), "chat/completions", BODY, soon())


def test_a_hanging_upstream_times_out_at_the_deadline(
    upstream: LLMUpstream, client: UpstreamClient
) -> None:
    upstream.next(Scenario(hang=True))
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        client.post_json(Upstream(upstream.url, SECRET), "chat/completions", BODY, soon(0.5))
    assert time.monotonic() - started < 5  # the deadline, not a default timeout
    upstream.release()


def stream_all(stream: UpstreamStream, ping_every: float = 5) -> tuple[bytes, int]:
    data, pings = b"", 0
    for chunk in stream.chunks(ping_every):
        if chunk is UpstreamStream.PING:
            pings += 1
        else:
            data += chunk
    stream.close()
    return data, pings


def test_a_stream_is_read_to_its_end_and_metered(
    upstream: LLMUpstream, client: UpstreamClient
) -> None:
    upstream.next(Scenario(usage=Usage(11, 5), split_frames=True))
    body = {**BODY, "stream": True, "stream_options": {"include_usage": True}}
    stream = client.open_stream(Upstream(upstream.url, SECRET), "chat/completions", body, soon())
    data, _ = stream_all(stream)
    meter = StreamMeter(client_wants_usage=True)
    for event in EventSplitter().feed(data):
        meter.process(event)
    assert meter.done and meter.usage is not None
    assert (meter.usage.input_tokens, meter.usage.output_tokens) == (11, 5)
    assert not stream.failed and not stream.timed_out


def test_silence_yields_pings_and_the_stream_goes_on(
    upstream: LLMUpstream, client: UpstreamClient
) -> None:
    upstream.next(Scenario(first_chunk_delay=0.35))
    body = {**BODY, "stream": True}
    stream = client.open_stream(Upstream(upstream.url, SECRET), "chat/completions", body, soon())
    data, pings = stream_all(stream, ping_every=0.1)
    assert pings >= 2 and data.endswith(b"data: [DONE]\n\n")


def test_a_broken_stream_is_reported_failed(upstream: LLMUpstream, client: UpstreamClient) -> None:
    upstream.next(Scenario(fail_after_chunks=2))
    stream = client.open_stream(
        Upstream(upstream.url, SECRET), "chat/completions", {**BODY, "stream": True}, soon()
    )
    data, _ = stream_all(stream)
    assert stream.failed and data.count(b"data: ") == 2


def test_a_stalled_stream_is_cut_at_the_deadline(
    upstream: LLMUpstream, client: UpstreamClient
) -> None:
    upstream.next(Scenario(stall_after_chunks=1))
    stream = client.open_stream(
        Upstream(upstream.url, SECRET), "chat/completions", {**BODY, "stream": True}, soon(0.5)
    )
    data, _ = stream_all(stream, ping_every=0.1)
    assert stream.timed_out and data.count(b"data: ") == 1
    upstream.release()


def test_closing_a_stream_early_cuts_the_upstream_connection(
    upstream: LLMUpstream, client: UpstreamClient
) -> None:
    upstream.next(Scenario(chunks=50, chunk_delay=0.05))
    stream = client.open_stream(
        Upstream(upstream.url, SECRET), "chat/completions", {**BODY, "stream": True}, soon()
    )
    next(stream.chunks(5))
    stream.close()
    upstream.wait_until(lambda up: up.client_disconnects == 1)
    assert upstream.completed_streams == 0


def test_closing_a_silent_stream_wakes_its_reader_at_once(
    upstream: LLMUpstream, client: UpstreamClient
) -> None:
    """The reader is blocked in a read of a silent upstream (read timeout 2 s):
    closing must cut the socket, not wait for that read to time out."""
    upstream.next(Scenario(stall_after_chunks=1))
    stream = client.open_stream(
        Upstream(upstream.url, SECRET), "chat/completions", {**BODY, "stream": True}, soon()
    )
    next(stream.chunks(5))
    stream.close()
    assert stream.join_reader(1.0)
    upstream.release()
