"""A loopback stand-in for a Dify app's Service API, for tests.

``DifyStandIn`` is a stdlib ``ThreadingHTTPServer`` on 127.0.0.1 (port 0) in a
background thread: ``with DifyStandIn() as dify``; ``dify.url`` is the base URL
an app is registered with (``http://127.0.0.1:PORT/v1``).

Endpoints, with the shapes of Dify's API reference ("Send Chat Message",
streaming mode; "Stop Generate"):

- ``POST /v1/chat-messages`` (``response_mode: streaming``): server-sent
  events, each ``data: {json}\\n\\n`` with an ``event`` field, ``task_id``,
  ``message_id``, ``conversation_id`` and ``created_at``, in this order:
  ``event: ping`` (Dify's bare keep-alive) when ``ping``; an
  ``agent_thought`` per ``thoughts`` entry (``tool``, ``thought``,
  ``position``, ``observation``, ``tool_input``); one ``message`` (or
  ``agent_message`` when ``agent``) per piece of ``pieces`` (``answer``); a
  ``message_replace`` when ``replace_with``; then ``message_end`` with
  ``metadata.usage`` (``prompt_tokens``, ``completion_tokens``,
  ``total_tokens``, ``total_price: "0"``, ``currency``, ``latency``) and an
  ``id`` that differs from the events' ``message_id``, as Dify's own example
  shows; or, with ``error``, an ``error`` event (``status``, ``code``,
  ``message``) instead of the end; with ``cut_after=N``, N pieces and then
  the connection closed with no end.
  ``gated=True``: every piece after the first waits for ``dify.advance()``
  (or a stop). A stop ends the answer at once with ``message_end`` whose
  usage counts the pieces sent (as Dify does on a stop).
  ``status``: that HTTP status and Dify's error body, before any event.
- ``POST /v1/chat-messages/<task_id>/stop`` (``{"user"}``):
  ``{"result": "success"}``; the answer of that task ends.

Each chat request takes the next ``Scenario`` queued with ``dify.next(...)``,
else ``dify.default``. Conversation ids are made up per new conversation and
echoed when the request names one. ``dify.requests`` records every request
(path, headers, JSON body); ``dify.chat_requests`` the chat ones.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API_KEY = "app-standin-key-0123456789"


@dataclass(frozen=True)
class Scenario:
    pieces: tuple[str, ...] = ("Hello", " there", ", how can I help?")
    prompt_tokens: int = 1033
    completion_tokens: int = 135
    agent: bool = False
    thoughts: tuple[str, ...] = ()
    replace_with: str | None = None
    error: tuple[str, str] | None = None
    cut_after: int | None = None
    gated: bool = False
    ping: bool = True
    status: int | None = None


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class _Task:
    stopped: threading.Event = field(default_factory=threading.Event)


class DifyStandIn:
    def __init__(self) -> None:
        self.default = Scenario()
        self.requests: list[Received] = []
        self._queue: deque[Scenario] = deque()
        self._tasks: dict[str, _Task] = {}
        self._gate = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> DifyStandIn:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        for _ in range(100):
            self._gate.release()
        self._server.shutdown()
        self._server.server_close()

    def next(self, scenario: Scenario) -> None:
        self._queue.append(scenario)

    def advance(self, pieces: int = 1) -> None:
        """Let ``pieces`` more gated pieces out."""
        for _ in range(pieces):
            self._gate.release()

    @property
    def chat_requests(self) -> list[Received]:
        return [r for r in self.requests if r.path == "/v1/chat-messages"]

    @property
    def stop_requests(self) -> list[Received]:
        return [r for r in self.requests if r.path.endswith("/stop")]

    def _scenario(self) -> Scenario:
        with self._lock:
            return self._queue.popleft() if self._queue else self.default

    def _task(self, task_id: str) -> _Task:
        with self._lock:
            return self._tasks.setdefault(task_id, _Task())


def _handler(dify: DifyStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # a stream ends when the connection closes

        def log_message(self, *_: Any) -> None:
            pass

        def _json(self, status: int, body: dict[str, Any]) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            headers = {k.lower(): v for k, v in self.headers.items()}
            dify.requests.append(Received(self.path, headers, body))
            if headers.get("authorization") != f"Bearer {API_KEY}":
                self._json(401, {"code": "unauthorized", "message": "Invalid key", "status": 401})
                return
            if self.path.startswith("/v1/chat-messages/") and self.path.endswith("/stop"):
                task_id = self.path.split("/")[3]
                dify._task(task_id).stopped.set()
                dify.advance()  # wake a gated stream
                self._json(200, {"result": "success"})
                return
            if self.path != "/v1/chat-messages":
                self._json(404, {"code": "not_found", "message": "Not found", "status": 404})
                return
            self._stream(body, dify._scenario())

        def _send(self, event: dict[str, Any]) -> None:
            self.wfile.write(b"data: " + json.dumps(event).encode() + b"\n\n")
            self.wfile.flush()

        def _stream(self, body: dict[str, Any], s: Scenario) -> None:
            if s.status is not None:
                self._json(
                    s.status,
                    {"code": "invalid_param", "message": "Bad request", "status": s.status},
                )
                return
            task_id, message_id = str(uuid.uuid4()), str(uuid.uuid4())
            conversation_id = body.get("conversation_id") or str(uuid.uuid4())
            task = dify._task(task_id)
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            base = {
                "task_id": task_id,
                "message_id": message_id,
                "conversation_id": conversation_id,
                "created_at": 1705398420,
            }
            if s.ping:
                self.wfile.write(b"event: ping\n\n")
            for position, tool in enumerate(s.thoughts, start=1):
                thought = {"event": "agent_thought", "id": str(uuid.uuid4()), **base}
                thought.update(
                    position=position, thought="", observation="", tool=tool, tool_input=""
                )
                self._send(thought)
            kind = "agent_message" if s.agent else "message"
            sent = 0
            for i, piece in enumerate(s.pieces):
                if s.cut_after is not None and i >= s.cut_after:
                    return  # the connection closes with no end
                if s.gated and i > 0:
                    dify._gate.acquire()
                if task.stopped.is_set():
                    break
                self._send({"event": kind, "id": message_id, "answer": piece, **base})
                sent += 1
            if s.error is not None:
                code, message = s.error
                self._send(
                    {"event": "error", "status": 400, "code": code, "message": message, **base}
                )
                return
            if s.replace_with is not None:
                self._send({"event": "message_replace", "answer": s.replace_with, **base})
            completion = s.completion_tokens if sent == len(s.pieces) else sent
            self._send(
                {
                    "event": "message_end",
                    "task_id": task_id,
                    "id": "end-" + str(uuid.uuid4()),
                    "conversation_id": conversation_id,
                    "metadata": {
                        "usage": {
                            "prompt_tokens": s.prompt_tokens,
                            "prompt_unit_price": "0",
                            "prompt_price_unit": "0.000001",
                            "prompt_price": "0",
                            "completion_tokens": completion,
                            "completion_unit_price": "0",
                            "completion_price_unit": "0.000001",
                            "completion_price": "0",
                            "total_tokens": s.prompt_tokens + completion,
                            "total_price": "0",
                            "currency": "USD",
                            "latency": 0.5,
                        },
                        "retriever_resources": [],
                    },
                }
            )

    return Handler
