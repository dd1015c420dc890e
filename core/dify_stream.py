"""Reading a Dify chat app's answer stream (Service API, ``response_mode: streaming``).

Dify sends server-sent events whose ``data`` is a JSON object with an
``event`` field (and bare ``event: ping`` keep-alives). The ones a chat, agent
or chatflow app sends, and what :class:`DifyReader` does with each:

``message`` / ``agent_message``
    a piece of the answer (``answer``): appended and passed on as a delta.
    An agent that streamed ``agent_message`` pieces may close with one
    ``message`` carrying the whole answer: that one replaces, not appends.
``message_replace``
    the whole answer replaced (content moderation): passed on as a replace.
``agent_thought``
    an agent's step: the tool it uses (``tool``), shown as the step's name.
``message_end``
    the end, with ``metadata.usage`` (``prompt_tokens``,
    ``completion_tokens``, ``total_price``). Its ``id`` may differ from the
    ``message_id`` of the other events; the latter identifies the message.
``error``
    Dify failed; the stream ends there. Its text is kept for the operator's
    log, never shown to users.
``ping``, workflow and node events, files, TTS
    ignored.

The events are cut by ``core.gateway.sse_relay`` (``EventSplitter``,
``event_data``), the same WHATWG rules the gateway relays with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from core.gateway.sse_relay import Usage, event_data, usage_of

# What the reader passes on: ("delta", piece), ("replace", whole), ("step", name).
Out = tuple[str, str]


def _text(value: Any, limit: int = 100) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


@dataclass
class DifyReader:
    """Follows one Dify answer: its text, ids, usage and how it ended."""

    parts: list[str] = field(default_factory=list)
    message_id: str | None = None
    task_id: str | None = None
    conversation_id: str | None = None
    usage: Usage | None = None
    total_price: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    ended: bool = False
    events: int = 0
    _agent_pieces: bool = False

    @property
    def answer(self) -> str:
        return "".join(self.parts)

    def feed(self, event: bytes) -> list[Out]:
        """What one SSE event of Dify's stream shows the user."""
        data = event_data(event)
        if data is None:
            return []  # ``event: ping`` and comments
        try:
            body = json.loads(data)
        except ValueError:
            return []
        if not isinstance(body, dict):
            return []
        self.events += 1
        kind = body.get("event")
        self.task_id = self.task_id or _text(body.get("task_id"))
        self.conversation_id = self.conversation_id or _text(body.get("conversation_id"))
        if kind in ("message", "agent_message", "agent_thought", "message_replace"):
            self.message_id = self.message_id or _text(body.get("message_id"))
        if kind in ("message", "agent_message"):
            return self._piece(kind, body.get("answer"))
        if kind == "message_replace":
            answer = body.get("answer")
            self.parts = [answer] if isinstance(answer, str) else []
            return [("replace", self.answer)]
        if kind == "agent_thought":
            tool = _text(body.get("tool"), 200)
            step = f"Using {tool.replace(';', ', ')}" if tool else "Thinking"
            return [("step", step)]
        if kind == "message_end":
            self.message_id = (
                self.message_id or _text(body.get("message_id")) or _text(body.get("id"))
            )
            metadata = body.get("metadata")
            raw_usage = metadata.get("usage") if isinstance(metadata, dict) else None
            self.usage = usage_of(raw_usage)
            if isinstance(raw_usage, dict) and raw_usage.get("total_price") is not None:
                self.total_price = str(raw_usage["total_price"])[:40]
            self.ended = True
            return []
        if kind == "error":
            self.error_code = _text(body.get("code"), 40) or "error"
            self.error_message = _text(body.get("message"), 300)
            self.ended = True
        return []

    def _piece(self, kind: str, answer: Any) -> list[Out]:
        if not isinstance(answer, str) or not answer:
            return []
        if kind == "agent_message":
            self._agent_pieces = True
        elif self._agent_pieces:
            self.parts = [answer]
            return [("replace", answer)]
        self.parts.append(answer)
        return [("delta", answer)]


def sse(event: str, text: str) -> bytes:
    """One SSE event for the browser; a line of ``text`` per ``data:`` line."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return (f"event: {event}\n" + "".join(f"data: {line}\n" for line in lines) + "\n").encode()
