"""Reading Dify's chat-messages events, and the events the browser gets."""

from __future__ import annotations

import json

from core.dify_stream import DifyReader, sse
from core.gateway.sse_relay import Usage
from tests.dify_setup import parse_events


def _event(body: dict[str, object]) -> bytes:
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def test_pieces_ids_and_usage_of_a_chat_answer() -> None:
    reader = DifyReader()
    base = {"task_id": "t1", "message_id": "m1", "conversation_id": "c1"}
    assert reader.feed(b"event: ping\n\n") == []
    assert reader.feed(_event({"event": "message", "answer": "Hi", **base})) == [("delta", "Hi")]
    assert reader.feed(_event({"event": "workflow_started", **base})) == []
    end = {
        "event": "message_end",
        "task_id": "t1",
        "id": "other",
        "metadata": {"usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_price": "0"}},
    }
    assert reader.feed(_event(end)) == []
    assert (reader.task_id, reader.message_id, reader.conversation_id) == ("t1", "m1", "c1")
    assert reader.usage == Usage(5, 2) and reader.total_price == "0"
    assert reader.ended and reader.error_code is None and reader.answer == "Hi"


def test_an_agent_closing_message_replaces_its_streamed_pieces() -> None:
    reader = DifyReader()
    reader.feed(_event({"event": "agent_message", "answer": "Par", "message_id": "m"}))
    reader.feed(_event({"event": "agent_message", "answer": "tial", "message_id": "m"}))
    shown = reader.feed(_event({"event": "message", "answer": "Partial.", "message_id": "m"}))
    assert shown == [("replace", "Partial.")] and reader.answer == "Partial."


def test_message_end_alone_names_the_message_by_its_id() -> None:
    reader = DifyReader()
    reader.feed(_event({"event": "message_end", "id": "e1", "metadata": {}}))
    assert reader.message_id == "e1" and reader.usage is None and reader.ended


def test_an_error_event_ends_the_answer() -> None:
    reader = DifyReader()
    reader.feed(_event({"event": "error", "code": "quota", "message": "no", "status": 400}))
    assert reader.ended and reader.error_code == "quota"


def test_multi_line_text_survives_the_browser_event() -> None:
    raw = sse("delta", "one\ntwo\r\nthree")
    assert raw == b"event: delta\ndata: one\ndata: two\ndata: three\n\n"
    assert parse_events(raw.decode()) == [("delta", "one\ntwo\nthree")]
