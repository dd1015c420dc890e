"""Calling an OpenAI-compatible upstream: pooled connections, timeouts, a deadline.

One :class:`UpstreamClient` per process holds an ``httpx.HTTPTransport``
whose connections are reused across requests (keep-alive pool). Requests go
to the transport itself, not through an ``httpx.Client``: a client would keep
the upstream's cookies in a jar shared by every user's calls and send them on
(and it parsed each answer for cookies, merged URLs and headers, and wrapped
the stream: about a fifth of a gateway call's CPU). Each request says
``Accept-Encoding: identity``: the answer is relayed byte for byte and
metered from its JSON, so it must not arrive compressed. Every call has:

- per-phase timeouts: connect, write, waiting for a pooled connection, and
  waiting for the answer's headers (``first_byte``);
- a total deadline that this module enforces itself (httpx has none): a
  non-stream answer must be complete by then, a stream is cut there;
- no redirects followed (a redirect could send the secret elsewhere).

A stream is read by a small reader thread into a queue, so the thread that
writes to the client can wake up while the upstream is silent (to send a
keep-alive ping, to notice the deadline) without losing its place in the
upstream's stream. ``close()`` ends it from either side.

Failures become typed errors (``core.errors``) with no upstream URL or secret
in their text: ``UpstreamUnreachable`` (502), ``UpstreamTimeout`` (504) and
``UpstreamRefused`` (the upstream answered non-2xx before any body; its
status and error object, cleaned, are kept for the caller to relay).

Nothing here touches the database: callers make these calls outside any
transaction.
"""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from core.errors import UpstreamRefused, UpstreamTimeout, UpstreamUnreachable

ERROR_BODY_LIMIT = 64 * 1024  # bytes of an upstream error answer kept
READ_SIZE = 64 * 1024


@dataclass(frozen=True)
class Timeouts:
    """Seconds allowed for each phase of an upstream call."""

    connect: float = 10.0
    write: float = 30.0
    pool: float = 10.0
    first_byte: float = 300.0


@dataclass(frozen=True)
class Upstream:
    """Where a call goes: the base URL (…/v1) and the secret to send."""

    base_url: str
    secret: str


def _scrub(value: Any, secrets: tuple[str, ...]) -> Any:
    """``value`` with every occurrence of ``secrets`` in its strings replaced."""
    if isinstance(value, str):
        for secret in secrets:
            if secret:
                value = value.replace(secret, "[redacted]")
        return value
    if isinstance(value, dict):
        return {k: _scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, secrets) for v in value]
    return value


def _error_object(raw: bytes, status: int, upstream: Upstream) -> dict[str, Any]:
    """The upstream's error object (OpenAI shape) without its address or secret."""
    error: Any = None
    with contextlib.suppress(ValueError, AttributeError):
        error = json.loads(raw).get("error")
    if isinstance(error, str):
        error = {"message": error}
    if not isinstance(error, dict):
        error = {"message": f"The upstream answered {status}."}
    host = httpx.URL(upstream.base_url).host
    return _scrub(error, (upstream.secret, upstream.base_url.rstrip("/"), host))


class UpstreamStream:
    """An open streaming answer, read by a background thread."""

    PING = b""  # yielded by ``chunks`` when the upstream was silent for the interval

    def __init__(self, response: httpx.Response, deadline: float) -> None:
        self._response = response
        self.deadline = deadline
        self._queue: queue.Queue[bytes | BaseException | None] = queue.Queue()
        self._closed = threading.Event()
        self._finished = threading.Event()  # the upstream's end was read
        self.timed_out = False
        self.failed = False
        self._reader = threading.Thread(target=self._read, daemon=True, name="upstream-reader")
        self._reader.start()

    def _read(self) -> None:
        try:
            # No chunk size: each read is handed on as it arrives (a size would
            # make httpx hold bytes back until that many had come).
            for data in self._response.iter_raw():
                if data:
                    self._queue.put(data)
            self._finished.set()
            self._queue.put(None)
        except BaseException as exc:  # reported to the consumer, never lost
            self._queue.put(exc)

    def chunks(self, ping_every: float, until: float | None = None) -> Iterator[bytes]:
        """Raw bytes as they arrive; ``PING`` after ``ping_every`` s of silence.

        Ends at the upstream's end, at the deadline (``timed_out``), or when the
        connection fails (``failed``). ``until`` cuts the reading earlier (the
        drain deadline).
        """
        stop_at = self.deadline if until is None else min(until, self.deadline)
        while True:
            left = stop_at - time.monotonic()
            if left <= 0:
                self.timed_out = True
                self.close()
                return
            try:
                item = self._queue.get(timeout=min(ping_every, left))
            except queue.Empty:
                yield self.PING
                continue
            if item is None:
                return
            if isinstance(item, BaseException):
                if self._closed.is_set():
                    return
                # A read that waited past its timeout is the upstream running
                # out of time, like the deadline; anything else broke the stream.
                if isinstance(item, httpx.TimeoutException):
                    self.timed_out = True
                else:
                    self.failed = True
                return
            yield item

    def join_reader(self, timeout: float) -> bool:
        """Wait for the reader thread to end; True if it has."""
        self._reader.join(timeout)
        return not self._reader.is_alive()

    def close(self) -> None:
        """Give the connection back if the answer was read to its end; otherwise
        cut it, so the upstream stops generating and the reader thread wakes.

        The socket is shut down, not only closed: a close does not wake a
        thread blocked reading it, and the connection would stay open until
        that read timed out.
        """
        if self._closed.is_set():
            return
        self._closed.set()
        if not self._finished.is_set():
            stream = self._response.extensions.get("network_stream")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        self._response.close()


class UpstreamClient:
    """The process's pooled HTTP client for upstream calls."""

    USER_AGENT = "creditline"

    def __init__(self, timeouts: Timeouts | None = None, max_connections: int = 1000) -> None:
        self.timeouts = timeouts or Timeouts()
        # No redirects are followed (a transport never follows them) and no
        # proxy variables are read (trust_env is a client's setting).
        self._transport = httpx.HTTPTransport(
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=100)
        )
        self._urls: dict[tuple[str, str], httpx.URL] = {}

    def close(self) -> None:
        self._transport.close()

    def _url(self, base_url: str, path: str) -> httpx.URL:
        """The parsed URL of ``path`` under ``base_url`` (parsed once per process)."""
        url = self._urls.get((base_url, path))
        if url is None:
            if len(self._urls) > 1000:  # upstreams renamed many times: start over
                self._urls.clear()
            url = self._urls[(base_url, path)] = httpx.URL(base_url.rstrip("/") + "/" + path)
        return url

    def _send(
        self, upstream: Upstream, path: str, body: dict[str, Any], deadline: float, stream: bool
    ) -> httpx.Response:
        left = deadline - time.monotonic()
        if left <= 0:
            raise UpstreamTimeout("The upstream did not answer in time.")
        t = self.timeouts
        request = httpx.Request(
            "POST",
            self._url(upstream.base_url, path),
            content=json.dumps(body, separators=(",", ":")).encode(),
            headers={
                "Authorization": f"Bearer {upstream.secret}",
                "Content-Type": "application/json",
                "Accept": "text/event-stream" if stream else "application/json",
                "Accept-Encoding": "identity",
                "User-Agent": self.USER_AGENT,
            },
            extensions={
                "timeout": {
                    "connect": min(t.connect, left),
                    "write": min(t.write, left),
                    "pool": min(t.pool, left),
                    "read": min(t.first_byte, left),
                }
            },
        )
        try:
            response = self._transport.handle_request(request)
        except httpx.TimeoutException:
            raise UpstreamTimeout("The upstream did not answer in time.") from None
        except httpx.HTTPError:
            raise UpstreamUnreachable("The upstream could not be reached.") from None
        if response.status_code >= 300:
            try:
                raw = b""
                for data in response.iter_raw(READ_SIZE):
                    raw += data
                    if len(raw) >= ERROR_BODY_LIMIT:
                        break
            except httpx.HTTPError:
                raw = b""
            finally:
                response.close()
            raise UpstreamRefused(
                response.status_code,
                _error_object(raw[:ERROR_BODY_LIMIT], response.status_code, upstream),
                response.headers.get("retry-after"),
            )
        return response

    def post_json(
        self, upstream: Upstream, path: str, body: dict[str, Any], deadline: float
    ) -> tuple[bytes, httpx.Headers]:
        """The complete 2xx answer to a non-stream call, read by ``deadline``."""
        response = self._send(upstream, path, body, deadline, stream=False)
        chunks: list[bytes] = []
        try:
            for data in response.iter_raw(READ_SIZE):
                chunks.append(data)
                if time.monotonic() > deadline:
                    raise UpstreamTimeout("The upstream did not finish in time.")
        except httpx.TimeoutException:
            raise UpstreamTimeout("The upstream did not finish in time.") from None
        except httpx.HTTPError:
            raise UpstreamUnreachable("The upstream broke the connection.") from None
        finally:
            response.close()
        return b"".join(chunks), response.headers

    def open_stream(
        self, upstream: Upstream, path: str, body: dict[str, Any], deadline: float
    ) -> UpstreamStream:
        """A 2xx streaming answer whose headers have arrived."""
        response = self._send(upstream, path, body, deadline, stream=True)
        return UpstreamStream(response, deadline)
