"""A loopback stand-in for an OpenAI-compatible LLM upstream, for tests.

``LLMUpstream`` is a stdlib ``ThreadingHTTPServer`` on 127.0.0.1 (port 0) run
in a background thread: ``start()``/``stop()``, or ``with LLMUpstream() as up``.
``up.url`` is the base URL an OpenAI client is given (``http://127.0.0.1:PORT/v1``).

Endpoints and the shapes they send (as openai-python's types and its recorded
API responses have them):

- ``GET /v1/models``: ``{"object": "list", "data": [{"id", "object": "model",
  "created", "owned_by"}]}`` for ``up.models``. Never consumes a scenario.
- ``POST /v1/chat/completions`` without ``stream``: a ``chat.completion`` with one
  choice per ``n``, ``message.content`` = the scenario's text, and ``usage``
  (``prompt_tokens``, ``completion_tokens``, ``total_tokens``, plus
  ``completion_tokens_details.reasoning_tokens`` when set; reasoning tokens are
  *part of* ``completion_tokens``, as OpenAI counts them). JSON with Content-Length.
- ``POST /v1/chat/completions`` with ``"stream": true``: Server-Sent Events, each
  frame ``data: {compact JSON}\\n\\n``, all with the same id/created/model: per
  choice a role chunk (``delta: {"role": "assistant", "content": "", "refusal":
  null}``), one chunk per content piece (``delta: {"content": piece}``), a finish
  chunk (``delta: {}``, ``finish_reason``); then, only when the request has
  ``stream_options.include_usage``, a usage-only chunk with ``choices: []``; then
  ``data: [DONE]``. With ``include_usage`` every other chunk carries
  ``"usage": null``, as the SDK's ``ChatCompletionChunk.usage`` docs say.
- ``POST /v1/embeddings``: ``{"object": "list", "data": [{"object": "embedding",
  "index", "embedding"}], "model", "usage": {"prompt_tokens", "total_tokens"}}``,
  one vector per input; ``encoding_format: "base64"`` (the SDK's default) gets
  little-endian float32 bytes in base64, as OpenAI sends them.
- Anything else: 404 with an OpenAI error object.

Each POST takes the next ``Scenario`` queued with ``up.next(...)`` (FIFO), else
``up.default``. A scenario sets what the answer does (fields of ``Scenario``):

- ``usage=Usage(prompt, completion, reasoning)``: the numbers reported;
  ``usage=None`` omits usage everywhere (no usage chunk even if asked).
- ``usage_on="content_chunk"`` / ``"finish_chunk"``: the usage rides on the last
  content chunk / the last finish chunk instead of a usage-only chunk.
  ``usage_unasked=True`` sends it even without ``include_usage``.
- ``append_frame={...}``: one more chunk after the usage (merged into the common
  envelope, so ``{"choices": [...]}`` is enough), before ``[DONE]``.
- ``text`` and ``chunks``: the content; ``chunks=None`` streams one piece per word
  (with its leading space), ``chunks=N`` streams N pieces cycling the words.
  ``Scenario.content()`` is the full text relayed.
- ``first_chunk_delay``: a silent pause after the headers, before the first frame
  (for SSE keep-alive pings); for non-stream answers, a delay before answering.
  ``chunk_delay``: a pause before every later frame (a slow stream).
- ``fail_after_chunks=N``: N frames (counting the role chunk and ``[DONE]``), then
  the connection is closed without ending the chunked body (the client sees a
  broken body, not an end). Non-stream: the headers and half the JSON, then close.
- ``stall_after_chunks=N``: N frames, then silence until ``up.release()`` or stop.
- ``no_done=True``: every frame but ``[DONE]``; the body ends cleanly and the
  connection closes (sent with ``Connection: close``).
- ``split_frames=True``: each SSE frame goes out as two HTTP chunks, cut in the
  middle of its JSON (as proxies re-chunk); otherwise one HTTP chunk per frame.
- ``one_write=True``: every frame in one HTTP chunk, sent in one write (a client
  receives the whole answer, usage included, in one read).
- ``hang=True``: the request is read and recorded but nothing is answered until
  ``up.release()`` (then the scenario goes on) or ``up.stop()`` (then the
  connection is closed with no answer).
  ``release()`` lets through every request that *arrived* before it, even one
  that has not reached its hang or stall yet, so "wait for N open streams, then
  release" has no race; requests arriving later wait for the next release().
- ``status=400|429|500|...``: that status with an OpenAI error object
  ``{"error": {"message", "type", "param", "code"}}`` (or ``error_body``) as JSON,
  before any body. ``headers`` adds response headers (e.g. ``retry-after``).
- ``model``: the model named in answers (default: echo the request's model).

``up.api_key`` (optional) makes requests without ``Authorization: Bearer <it>``
get OpenAI's 401 ``invalid_api_key``.

What tests read: ``up.requests`` (every request as ``Received``: method, path,
lower-cased headers, parsed JSON body, raw bytes, client port; recorded on
arrival, before any hang), ``up.request_count``, ``up.in_flight`` (POSTs being
answered), ``up.open_streams`` (SSE answers whose headers went out and that have not ended)
and ``up.peak_open_streams``, ``up.hung`` (requests waiting for ``release()``),
``up.completed_streams`` (streams written to their end, e.g. a gateway that
drains after its client left) and ``up.client_disconnects`` (answers cut short
because a write failed: the client, e.g. a gateway that cancels, closed; a
stalled stream only notices at its next write),
and ``wait_for_requests(n)``, ``wait_for_open_streams(n)``, ``wait_for_hung(n)``,
``wait_until(predicate)`` (a timeout there is a safety net, raising TimeoutError).

HTTP/1.1 keep-alive: pooled clients (httpx) reuse connections, so every answer
is framed. JSON answers carry Content-Length. Streams use
``Transfer-Encoding: chunked`` with the framing written here, one HTTP chunk per
SSE frame, rather than ``Connection: close``: the connection stays reusable, and
a clean end (the terminating zero chunk) is distinguishable from a dropped
connection (httpx raises ``RemoteProtocolError``), which is exactly what a
gateway must tell apart for charging. Only ``no_done`` and failures close.

Left out on purpose: OpenAI's ``obfuscation`` padding field on chunks and
``service_tier`` on chunks (a relay passes unknown fields through anyway), tool
calls, logprobs, and HTTP/2. Non-ASCII text goes out as raw UTF-8, as OpenAI's does.

Stopping: ``stop()`` wakes hung and stalled requests, interrupts delays, stops
accepting, shuts down every open connection (idle keep-alive ones included) and
joins every handler thread, so no thread is left behind.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

CHAT_PATH = "/v1/chat/completions"
EMBEDDINGS_PATH = "/v1/embeddings"
MODELS_PATH = "/v1/models"
FINGERPRINT = "fp_standin"
ERROR_KINDS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request (stand-in upstream)."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    404: ("invalid_request_error", "unknown_url", "Unknown request URL."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached (stand-in upstream)."),
    500: ("server_error", None, "The server had an error while processing your request."),
}


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 12
    completion_tokens: int = 7
    reasoning_tokens: int | None = None  # part of completion_tokens, as OpenAI counts

    def as_json(self) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }
        if self.reasoning_tokens is not None:
            usage["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        return usage


@dataclass(frozen=True)
class Scenario:
    text: str = "Hello from the stand-in upstream."
    chunks: int | None = None
    usage: Usage | None = field(default_factory=Usage)
    usage_on: Literal["usage_chunk", "content_chunk", "finish_chunk"] = "usage_chunk"
    usage_unasked: bool = False
    append_frame: Mapping[str, Any] | None = None
    first_chunk_delay: float = 0.0
    chunk_delay: float = 0.0
    fail_after_chunks: int | None = None
    stall_after_chunks: int | None = None
    no_done: bool = False
    split_frames: bool = False
    one_write: bool = False
    hang: bool = False
    status: int = 200
    error_body: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    finish_reason: str = "stop"
    model: str | None = None

    def pieces(self) -> list[str]:
        words = self.text.split(" ")
        count = len(words) if self.chunks is None else self.chunks
        cycled = itertools.islice(itertools.cycle(words), count)
        return [p for p in (w if i == 0 else " " + w for i, w in enumerate(cycled)) if p]

    def content(self) -> str:
        return "".join(self.pieces())


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: Any  # parsed JSON; None when absent or not JSON
    raw: bytes
    client_port: int  # same port = same (kept-alive) connection

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def error_json(status: int, message: str | None = None) -> dict[str, Any]:
    default = ("server_error", None, "Upstream error.") if status >= 500 else ERROR_KINDS[400]
    kind, code, text = ERROR_KINDS.get(status, default)
    return {"error": {"message": message or text, "type": kind, "param": None, "code": code}}


class LLMUpstream:
    def __init__(
        self,
        *,
        default: Scenario | None = None,
        models: tuple[str, ...] = ("gpt-4o-mini", "text-embedding-3-small"),
        api_key: str | None = None,
    ) -> None:
        self.default = default or Scenario()
        self.models = models
        self.api_key = api_key
        self._cond = threading.Condition()
        self._queue: deque[Scenario] = deque()
        self._requests: list[Received] = []
        self._counters = dict.fromkeys(
            (
                "in_flight",
                "open_streams",
                "peak_open_streams",
                "hung",
                "completed_streams",
                "client_disconnects",
            ),
            0,
        )
        self._release_generation = 0
        self._stopping = threading.Event()
        self._ids = itertools.count(1)
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle --------------------------------------------------------------

    def start(self) -> LLMUpstream:
        if self._httpd is None:
            self._stopping.clear()
            self._httpd = _Server(self)
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        with self._cond:
            self._stopping.set()
            self._cond.notify_all()
        httpd.shutdown()
        thread.join()
        httpd.close_connections()
        httpd.server_close()  # joins every handler thread
        self._httpd = self._thread = None

    def __enter__(self) -> LLMUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def origin(self) -> str:
        assert self._httpd is not None, "not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def url(self) -> str:
        return self.origin + "/v1"

    # --- what a test sets -------------------------------------------------------

    def next(self, *scenarios: Scenario) -> None:
        """Queue scenarios for the next POSTs, in order."""
        with self._cond:
            self._queue.extend(scenarios)

    def release(self) -> None:
        """Let every request that arrived before this call go on past its hang
        or stall (whether it got there yet or not); later ones still wait."""
        with self._cond:
            self._release_generation += 1
            self._cond.notify_all()

    # --- what a test reads ------------------------------------------------------

    @property
    def requests(self) -> list[Received]:
        with self._cond:
            return list(self._requests)

    @property
    def last_request(self) -> Received:
        with self._cond:
            return self._requests[-1]

    @property
    def request_count(self) -> int:
        with self._cond:
            return len(self._requests)

    @property
    def in_flight(self) -> int:
        return self._counters["in_flight"]

    @property
    def open_streams(self) -> int:
        return self._counters["open_streams"]

    @property
    def peak_open_streams(self) -> int:
        return self._counters["peak_open_streams"]

    @property
    def hung(self) -> int:
        return self._counters["hung"]

    @property
    def completed_streams(self) -> int:
        return self._counters["completed_streams"]

    @property
    def client_disconnects(self) -> int:
        return self._counters["client_disconnects"]

    def wait_until(self, predicate: Callable[[LLMUpstream], bool], timeout: float = 10.0) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self), timeout):
                raise TimeoutError(f"stand-in upstream: condition not met, {self._counters}")

    def wait_for_requests(self, n: int, timeout: float = 10.0) -> None:
        self.wait_until(lambda up: len(up._requests) >= n, timeout)

    def wait_for_open_streams(self, n: int, timeout: float = 10.0) -> None:
        self.wait_until(lambda up: up.open_streams >= n, timeout)

    def wait_for_hung(self, n: int, timeout: float = 10.0) -> None:
        self.wait_until(lambda up: up.hung >= n, timeout)

    # --- used by the handler ----------------------------------------------------

    def _record(self, received: Received) -> None:
        with self._cond:
            self._requests.append(received)
            self._cond.notify_all()

    def _take(self) -> tuple[Scenario, int]:
        """The scenario for a request, and the release generation it waits past."""
        with self._cond:
            scenario = self._queue.popleft() if self._queue else self.default
            return scenario, self._release_generation

    def _count(self, name: str, delta: int) -> None:
        with self._cond:
            self._counters[name] += delta
            if name == "open_streams":
                peak = max(self._counters["peak_open_streams"], self._counters[name])
                self._counters["peak_open_streams"] = peak
            self._cond.notify_all()

    def _pause(self, seconds: float) -> bool:
        """Sleep unless stopping; False when the server is stopping."""
        if seconds > 0:
            self._stopping.wait(seconds)
        return not self._stopping.is_set()

    def _wait_released(self, generation: int) -> bool:
        """Block until a release() after ``generation``, or stop(); False when stopping."""
        with self._cond:
            self._counters["hung"] += 1
            self._cond.notify_all()
            self._cond.wait_for(
                lambda: self._release_generation != generation or self._stopping.is_set()
            )
            self._counters["hung"] -= 1
            self._cond.notify_all()
        return not self._stopping.is_set()

    def _new_id(self) -> str:
        return f"chatcmpl-standin{next(self._ids):06d}"


# --- answers -----------------------------------------------------------------------


def chat_completion(up: LLMUpstream, s: Scenario, body: Mapping[str, Any]) -> dict[str, Any]:
    message = {"role": "assistant", "content": s.content(), "refusal": None, "annotations": []}
    answer: dict[str, Any] = {
        "id": up._new_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": s.model or body.get("model", ""),
        "choices": [
            {"index": i, "message": message, "logprobs": None, "finish_reason": s.finish_reason}
            for i in range(int(body.get("n") or 1))
        ],
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }
    if s.usage is not None:
        answer["usage"] = s.usage.as_json()
    return answer


def stream_frames(up: LLMUpstream, s: Scenario, body: Mapping[str, Any]) -> list[bytes]:
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    usage = s.usage.as_json() if s.usage and (include_usage or s.usage_unasked) else None
    envelope = {
        "id": up._new_id(),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": s.model or body.get("model", ""),
        "system_fingerprint": FINGERPRINT,
    }
    null_usage: dict[str, Any] = {"usage": None} if include_usage else {}

    def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**envelope, "choices": [choice], **null_usage}

    n = int(body.get("n") or 1)
    chunks = [chunk(i, {"role": "assistant", "content": "", "refusal": None}) for i in range(n)]
    chunks += [chunk(i, {"content": piece}) for piece in s.pieces() for i in range(n)]
    last_content = chunks[-1] if len(chunks) > n else None
    chunks += [chunk(i, {}, s.finish_reason) for i in range(n)]
    if usage is not None:
        if s.usage_on == "usage_chunk":
            chunks.append({**envelope, "choices": [], "usage": usage})
        else:
            carrier = last_content if s.usage_on == "content_chunk" and last_content else chunks[-1]
            carrier["usage"] = usage
    if s.append_frame is not None:
        chunks.append({**envelope, **null_usage, **s.append_frame})
    frames = [sse(json.dumps(c, separators=(",", ":"), ensure_ascii=False)) for c in chunks]
    return frames if s.no_done else [*frames, sse("[DONE]")]


def sse(data: str) -> bytes:
    return b"data: " + data.encode() + b"\n\n"


def embeddings(s: Scenario, body: Mapping[str, Any]) -> dict[str, Any]:
    given = body.get("input")
    single = isinstance(given, str) or (
        isinstance(given, list) and given[:1] != [] and isinstance(given[0], int)
    )
    count = 1 if single else len(given or [])
    dims = int(body.get("dimensions") or 3)
    data = []
    for index in range(count):
        vector = [round(0.125 * (index + 1) * (d + 1), 3) for d in range(dims)]
        encoded: Any = vector
        if body.get("encoding_format") == "base64":
            encoded = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    answer: dict[str, Any] = {"object": "list", "data": data, "model": s.model or body.get("model")}
    if s.usage is not None:
        answer["usage"] = {
            "prompt_tokens": s.usage.prompt_tokens,
            "total_tokens": s.usage.prompt_tokens,
        }
    return answer


# --- HTTP --------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    """Handler threads are daemons (a forgotten stop() cannot block the test
    run's exit) and tracked here, as are connections, so stop() closes and
    joins them all; the stdlib only joins non-daemon threads."""

    # The stdlib's backlog of 5 resets connections when hundreds arrive at once.
    request_queue_size = 1024

    def __init__(self, upstream: LLMUpstream) -> None:
        self.upstream = upstream
        self._connections: set[socket.socket] = set()
        self._handlers: list[threading.Thread] = []
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Runs in the accepting thread, so stop() sees every connection.
        handler = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), daemon=True
        )
        with self._connections_lock:
            self._connections.add(request)
            self._handlers = [t for t in self._handlers if t.is_alive()] + [handler]
        handler.start()

    def server_close(self) -> None:
        super().server_close()
        with self._connections_lock:
            handlers = list(self._handlers)
        for handler in handlers:
            handler.join()

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            for connection in self._connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client or stop() dropping a connection is part of the job


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle and
    # the client's delayed ACK add ~40 ms to every answer.
    disable_nagle_algorithm = True
    server: _Server
    generation = 0  # the release generation when the current request arrived

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._read_and_record()
        if not self._authorized():
            return
        if self.path.split("?")[0] != MODELS_PATH:
            self._json(404, error_json(404, f"Unknown request URL: GET {self.path}"))
            return
        models = [
            {"id": m, "object": "model", "created": 1686935002, "owned_by": "stand-in"}
            for m in self.server.upstream.models
        ]
        self._json(200, {"object": "list", "data": models})

    def do_POST(self) -> None:
        up = self.server.upstream
        body = self._read_and_record()
        if not self._authorized():
            return
        if self.path not in (CHAT_PATH, EMBEDDINGS_PATH):
            self._json(404, error_json(404, f"Unknown request URL: POST {self.path}"))
            return
        if not isinstance(body, dict):
            self._json(400, error_json(400, "We could not parse the JSON body of your request."))
            return
        s, self.generation = up._take()
        up._count("in_flight", 1)
        try:
            if s.hang and not up._wait_released(self.generation):
                self.close_connection = True
            elif not 200 <= s.status < 300:
                self._json(s.status, dict(s.error_body or error_json(s.status)), s.headers)
            elif self.path == CHAT_PATH and body.get("stream"):
                self._stream(s, stream_frames(up, s, body))
            elif not up._pause(s.first_chunk_delay):
                self.close_connection = True
            else:
                answer = chat_completion(up, s, body) if self.path == CHAT_PATH else None
                self._json(
                    200,
                    answer or embeddings(s, body),
                    s.headers,
                    cut=s.fail_after_chunks is not None,
                )
        except OSError:  # the client went away while we wrote
            self.close_connection = True
            up._count("client_disconnects", 1)
        finally:
            up._count("in_flight", -1)

    def _read_and_record(self) -> Any:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raw = b""
            while size := int(self.rfile.readline().split(b";")[0], 16):
                raw += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
        else:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.upstream._record(
            Received(self.command, self.path, headers, body, raw, self.client_address[1])
        )
        return body

    def _authorized(self) -> bool:
        key = self.server.upstream.api_key
        if key is None or self.headers.get("Authorization") == f"Bearer {key}":
            return True
        self._json(401, error_json(401))
        return False

    def _json(
        self,
        status: int,
        payload: Mapping[str, Any],
        headers: Mapping[str, str] | None = None,
        *,
        cut: bool = False,
    ) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", f"req_standin_{id(self):x}")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if cut:  # fail mid-body: half the JSON, then the connection goes
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True
            return
        self.wfile.write(data)

    def _stream(self, s: Scenario, frames: list[bytes]) -> None:
        up = self.server.upstream
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("x-request-id", f"req_standin_{id(self):x}")
        if s.no_done:
            self.send_header("Connection", "close")
        for name, value in s.headers.items():
            self.send_header(name, value)
        self.end_headers()
        up._count("open_streams", 1)
        try:
            if not self._send_frames(s, frames):
                self.close_connection = True  # no terminating chunk: a broken body
                return
            self.wfile.write(b"0\r\n\r\n")
            up._count("completed_streams", 1)
            if s.no_done:
                self.close_connection = True
        finally:
            up._count("open_streams", -1)

    def _send_frames(self, s: Scenario, frames: list[bytes]) -> bool:
        up = self.server.upstream
        if s.one_write:
            body = b"".join(frames)
            ready = up._pause(s.first_chunk_delay)
            if ready:
                self.wfile.write(b"%X\r\n%s\r\n" % (len(body), body))
            return ready
        for sent, frame in enumerate(frames):
            if s.fail_after_chunks is not None and sent >= s.fail_after_chunks:
                return False
            stall = s.stall_after_chunks is not None and sent == s.stall_after_chunks
            if stall and not up._wait_released(self.generation):
                return False
            if not up._pause(s.first_chunk_delay if sent == 0 else s.chunk_delay):
                return False
            parts = (
                [frame[: len(frame) // 2], frame[len(frame) // 2 :]] if s.split_frames else [frame]
            )
            for part in parts:
                self.wfile.write(b"%X\r\n%s\r\n" % (len(part), part))
        return True


def frames_of(body: bytes) -> Iterator[str]:
    """The ``data:`` payloads of an SSE body, in order (a helper for tests)."""
    for block in body.decode().split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data: "):
                yield line[len("data: ") :]
