"""Relaying SSE byte for byte and metering it (core.gateway.sse_relay)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from core.gateway.sse_relay import (
    EventSplitter,
    StreamMeter,
    Usage,
    event_data,
    meter_response,
)


def frame(obj: object) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def content(text: str) -> dict:
    return {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"content": text}}],
    }


USAGE = {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}
STREAM = (
    frame({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
    + frame(content("Héllo"))
    + b": keep-alive\n\n"
    + frame(content(" world"))
    + frame({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    + frame({"choices": [], "usage": USAGE})
    + b"data: [DONE]\n\n"
)


def test_splitter_returns_whole_events_with_their_exact_bytes() -> None:
    events = EventSplitter().feed(STREAM)
    assert b"".join(events) == STREAM
    assert len(events) == 7


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=20))
def test_splitting_is_the_same_wherever_the_network_cuts_the_stream(cuts: list[int]) -> None:
    splitter, events, last = EventSplitter(), [], 0
    for cut in [*sorted(cuts), len(STREAM)]:
        events += splitter.feed(STREAM[last:cut])
        last = cut
    assert events == EventSplitter().feed(STREAM)
    assert splitter.rest() == b""


@given(st.lists(st.integers(min_value=0, max_value=60), max_size=8))
def test_crlf_and_cr_line_ends_are_understood_even_split_between_reads(cuts: list[int]) -> None:
    stream = b"data: a\r\ndata: b\r\n\r\ndata: c\r\rdata: d\n\ndata: e\r\n\n"
    splitter, events, last = EventSplitter(), [], 0
    for cut in [*sorted(cuts), len(stream)]:
        events += splitter.feed(stream[last:cut])
        last = cut
    assert events == [
        b"data: a\r\ndata: b\r\n\r\n",
        b"data: c\r\r",
        b"data: d\n\n",
        b"data: e\r\n\n",
    ]
    assert [event_data(e) for e in events] == ["a\nb", "c", "d", "e"]


def test_an_unterminated_tail_is_kept_for_the_end() -> None:
    splitter = EventSplitter()
    assert splitter.feed(b'data: {}\n\ndata: {"x"') == [b"data: {}\n\n"]
    assert splitter.rest() == b'data: {"x"'


def test_event_data_follows_the_sse_field_rules() -> None:
    assert event_data(b": comment\n\n") is None
    assert event_data(b"event: x\ndata:no-space\n\n") == "no-space"
    assert event_data(b"data\n\n") == ""
    assert event_data(b"database: nope\n\n") is None


def relay(stream: bytes, wants_usage: bool) -> tuple[bytes, StreamMeter]:
    meter = StreamMeter(client_wants_usage=wants_usage)
    out = [meter.process(e) for e in EventSplitter().feed(stream)]
    return b"".join(o for o in out if o is not None), meter


def test_usage_only_chunk_is_dropped_for_a_client_that_did_not_ask() -> None:
    out, meter = relay(STREAM, wants_usage=False)
    assert out == STREAM.replace(frame({"choices": [], "usage": USAGE}), b"")
    assert meter.usage == Usage(12, 7)
    assert meter.done
    assert meter.text_bytes == len("Héllo world".encode())


def test_everything_is_relayed_byte_for_byte_for_a_client_that_asked() -> None:
    out, meter = relay(STREAM, wants_usage=True)
    assert out == STREAM
    assert meter.usage == Usage(12, 7)


def test_usage_on_a_content_chunk_is_counted_and_the_chunk_kept() -> None:
    chunk = {**content("hi"), "usage": USAGE}
    out, meter = relay(frame(chunk) + b"data: [DONE]\n\n", wants_usage=False)
    assert out == frame(chunk) + b"data: [DONE]\n\n"
    assert meter.usage == Usage(12, 7)


def test_null_usage_fields_are_left_alone_and_do_not_count() -> None:
    chunk = {**content("hi"), "usage": None}
    out, meter = relay(frame(chunk), wants_usage=False)
    assert out == frame(chunk) and meter.usage is None


def test_error_text_is_never_output() -> None:
    error = {"error": {"message": "x" * 400, "type": "server_error"}}
    _, meter = relay(frame(content("ab")) + frame(error), wants_usage=False)
    assert meter.text_bytes == 2 and meter.relayed_output


def test_tool_call_arguments_and_reasoning_count_as_output() -> None:
    chunk = {
        "choices": [
            {
                "index": 0,
                "delta": {
                    "reasoning_content": "abcd",
                    "tool_calls": [{"index": 0, "function": {"arguments": '{"a":1}'}}],
                },
            }
        ]
    }
    _, meter = relay(frame(chunk), wants_usage=False)
    assert meter.text_bytes == 4 + 7


def test_malformed_usage_is_treated_as_none() -> None:
    _, meter = relay(frame({"choices": [], "usage": {"prompt_tokens": -1}}), wants_usage=False)
    assert meter.usage is None
    _, meter = relay(frame({"choices": [], "usage": {"prompt_tokens": 1.5}}), wants_usage=False)
    assert meter.usage is None


def test_non_stream_answers_are_metered() -> None:
    body = {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!"}}],
        "usage": {**USAGE, "completion_tokens_details": {"reasoning_tokens": 5}},
    }
    assert meter_response(body) == (Usage(12, 7), 3)
    assert meter_response({"data": [], "usage": {"prompt_tokens": 4, "total_tokens": 4}}) == (
        Usage(4, 0),
        0,
    )
    assert meter_response([1, 2]) == (None, 0)
