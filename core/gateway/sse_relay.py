"""Relaying an upstream's server-sent events byte for byte, and metering them.

The upstream's stream is cut into whole SSE events (blocks ending in a blank
line) without decoding or re-encoding them, so what the client receives is
exactly what the upstream sent, with one exception: the usage-only chunk
(``"choices": []`` with a ``usage`` object), which the gateway always asks
for, is dropped for a client that did not ask for it itself.

Why not an SSE library: the libraries parse events into fields and would
re-serialise them, which changes the bytes; the parts used here are the
WHATWG rules for splitting events and joining ``data:`` lines, a few lines
each.

While relaying, :class:`StreamMeter` records what a charge needs:

- the usage (``prompt_tokens``, ``completion_tokens``) of whichever chunk
  carries it; the last one reported wins. Reasoning tokens are inside
  ``completion_tokens`` and never added again;
- the UTF-8 bytes of the output text relayed (``content``, ``refusal``,
  ``reasoning_content`` and tool-call ``arguments``), for the estimate when
  no usage ever arrives; error objects are never counted as output;
- whether ``data: [DONE]`` was seen.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

# A line terminator (CRLF, lone CR, LF) followed by another: the end of an event.
_EVENT_END = re.compile(rb"(?:\r\n|\r(?!\n)|\n)(?:\r\n|\r(?!\n)|\n)")
_LINE = re.compile(rb"\r\n|\r|\n")
DONE = "[DONE]"


@dataclass(frozen=True)
class Usage:
    """Tokens an upstream reported for one call."""

    input_tokens: int
    output_tokens: int


def usage_of(value: Any) -> Usage | None:
    """The usage in an OpenAI ``usage`` object, or None if absent or malformed."""
    if not isinstance(value, dict):
        return None
    prompt, completion = value.get("prompt_tokens"), value.get("completion_tokens", 0)
    if completion is None:
        completion = 0
    if type(prompt) is not int or type(completion) is not int or prompt < 0 or completion < 0:
        return None
    return Usage(prompt, completion)


def output_text_bytes(choices: Any, part: str) -> int:
    """UTF-8 bytes of the output text in ``choices`` (``part`` is "delta" or "message")."""
    total = 0
    if not isinstance(choices, list):
        return 0
    for choice in choices:
        body = choice.get(part) if isinstance(choice, dict) else None
        if not isinstance(body, dict):
            continue
        for key in ("content", "refusal", "reasoning_content"):
            text = body.get(key)
            if isinstance(text, str):
                total += len(text.encode())
        calls = body.get("tool_calls")
        if isinstance(calls, list):
            for call in calls:
                function = call.get("function") if isinstance(call, dict) else None
                arguments = function.get("arguments") if isinstance(function, dict) else None
                if isinstance(arguments, str):
                    total += len(arguments.encode())
    return total


class EventSplitter:
    """Cuts a byte stream into whole SSE events, each with its terminating blank line."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        """The events completed by ``data``, exactly as received."""
        self._buffer += data
        events: list[bytes] = []
        start = 0
        # A CR at the very end may be the first half of a CRLF: wait for more.
        limit = len(self._buffer) - (1 if self._buffer.endswith(b"\r") else 0)
        while True:
            match = _EVENT_END.search(self._buffer, start, limit)
            if not match:
                break
            events.append(self._buffer[start : match.end()])
            start = match.end()
        self._buffer = self._buffer[start:]
        return events

    def rest(self) -> bytes:
        """What is left unterminated when the stream ends."""
        rest, self._buffer = self._buffer, b""
        return rest


def event_data(event: bytes) -> str | None:
    """The event's data (``data:`` lines joined by newlines), or None if it has none."""
    lines: list[str] = []
    for raw in _LINE.split(event):
        if not raw.startswith(b"data"):
            continue
        name, colon, value = raw.partition(b":")
        if name != b"data":
            continue
        if not colon:
            value = b""
        elif value.startswith(b" "):
            value = value[1:]
        lines.append(value.decode("utf-8", "replace"))
    return "\n".join(lines) if lines else None


@dataclass
class StreamMeter:
    """Follows one relayed stream: what to forward and what it will cost."""

    client_wants_usage: bool
    usage: Usage | None = None
    text_bytes: int = 0
    done: bool = False
    events: int = field(default=0)

    def process(self, event: bytes) -> bytes | None:
        """The bytes to forward for one upstream event (None: drop it)."""
        self.events += 1
        data = event_data(event)
        if data is None:
            return event  # comments, pings and fields the gateway does not read
        if data.strip() == DONE:
            self.done = True
            return event
        try:
            chunk = json.loads(data)
        except ValueError:
            return event
        if not isinstance(chunk, dict):
            return event
        usage = usage_of(chunk.get("usage"))
        if usage is not None:
            self.usage = usage
        choices = chunk.get("choices")
        self.text_bytes += output_text_bytes(choices, "delta")
        if usage is not None and choices == [] and not self.client_wants_usage:
            return None
        return event

    @property
    def relayed_output(self) -> bool:
        """True once any output text has been forwarded."""
        return self.text_bytes > 0


def meter_response(body: Any) -> tuple[Usage | None, int]:
    """Usage and output-text bytes of a non-stream chat or embeddings answer."""
    if not isinstance(body, dict):
        return None, 0
    return usage_of(body.get("usage")), output_text_bytes(body.get("choices"), "message")
