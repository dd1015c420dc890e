"""The metering gateway: hold the worst case, forward the call, settle what it used.

One call, in three steps, none of which holds a transaction open across the
network:

1. ``begin`` (one write transaction, ``call_holds``): resolve the model's
   route, build the call plan (``call_plan``), check the per-event caps and
   the user's number of running calls, and take a hold for the worst case
   (``core.holds``).
2. The upstream call (no transaction): ``complete`` for a JSON answer;
   ``open_stream`` then ``relay`` for a stream. A stream is relayed event by
   event, byte for byte (``sse_relay``), with a comment ping while the
   upstream is silent.
3. ``finish`` (one write transaction): settle or release the hold, exactly
   once, by the table below. On PostgreSQL a settle is one statement, which
   the server commits on its own (``core.ledger.settle_charge``).

How every ending is charged:

=========================================  =====================  ============
ending                                     charge                 usage status
=========================================  =====================  ============
completed, usage reported                  min(actual, hold)      charged
client gone, policy ``drain``: upstream    reported usage         charged,
read on (``GATEWAY_DRAIN_SECONDS``)                               disconnected
client gone under ``cancel``, or no usage  estimate (bytes / 4),  estimated
reported, but output was relayed           at most the hold
nothing relayed and no usage               0, hold released       —
upstream non-2xx before any body           0, error relayed       —
upstream unreachable / timed out           0, 502 / 504           —
process killed mid-call                    0 once the hold        —
                                           expires
=========================================  =====================  ============

A client is known to be gone when writing to it fails: the WSGI server then
closes the response iterator, which raises ``GeneratorExit`` at the ``yield``
in ``relay``; the pings make sure a write happens while the upstream is silent.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta

from core import holds
from core.clock import utcnow
from core.db import Database
from core.errors import (
    UpstreamFailed,
    UpstreamTimeout,
    ValidationError,
)
from core.gateway import routing
from core.gateway.call_holds import CallHolds, hold_request
from core.gateway.call_plan import CallPlan, Endpoint, estimated_tokens, plan_chat, plan_embeddings
from core.gateway.routing import ResolvedRoute
from core.gateway.sse_relay import EventSplitter, StreamMeter, Usage, meter_response
from core.gateway.upstream_client import Upstream, UpstreamClient, UpstreamStream
from core.group_commit import GroupCommit
from core.holds import Hold
from core.pricebook import PriceBookCache
from core.secret_box import SecretBox
from core.user_keys import KeyHolder

log = logging.getLogger(__name__)

DONE_EVENT = b"data: [DONE]\n\n"
PING_EVENT = b": ping\n\n"


@dataclass(frozen=True)
class GatewaySettings:
    """The operator's choices (``GATEWAY_*`` configuration)."""

    abort_policy: str = "drain"  # or "cancel"
    drain_seconds: float = 120.0
    stream_max_seconds: float = 600.0
    max_concurrent_per_user: int = 8
    ping_seconds: float = 15.0
    expiry_margin_seconds: float = 60.0

    @property
    def hold_ttl(self) -> timedelta:
        """How long a hold may stay active before it counts as abandoned."""
        return timedelta(
            seconds=self.stream_max_seconds + self.drain_seconds + self.expiry_margin_seconds
        )


@dataclass
class Call:
    """One metered call in flight."""

    holder: KeyHolder
    plan: CallPlan
    upstream: Upstream
    hold: Hold
    deadline: float
    finished: bool = field(default=False)


@dataclass(frozen=True)
class Outcome:
    """What a call was charged, for the response headers."""

    charged_ucr: int
    balance_ucr: int | None  # None when nothing was charged


class Gateway:
    """The gateway's domain: one per app, shared by its threads."""

    def __init__(
        self,
        db: Database,
        prices: PriceBookCache,
        box: SecretBox,
        client: UpstreamClient,
        settings: GatewaySettings,
    ) -> None:
        self.db = db
        self.writes = GroupCommit(db)  # the hold and settle transactions
        self.routes = routing.RouteCache()
        self.holds = CallHolds(self.writes, prices, self.routes)
        self._opened: dict[str, str] = {}  # sealed upstream secret -> secret
        self.prices = prices
        self.box = box
        self.client = client
        self.settings = settings

    # --- 1. begin -----------------------------------------------------------

    def begin(self, holder: KeyHolder, endpoint: Endpoint, raw: bytes) -> Call:
        """Plan the call and hold its worst case (one write transaction)."""
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise ValidationError("The request body must be a JSON object.") from None
        if not isinstance(body, dict):
            raise ValidationError("The request body must be a JSON object.")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise ValidationError("'model' is required.", param="model")
        planner = plan_chat if endpoint is Endpoint.CHAT else plan_embeddings

        def plan_call(route: ResolvedRoute) -> CallPlan:
            return planner(
                body,
                len(raw),
                route.limits,
                upstream_model=route.upstream_model,
                user_tag=f"creditline-{holder.user_id}",
            )

        hold, plan, route = self.holds.take(
            holder,
            lambda book, routes: hold_request(
                holder, model, book, routes, plan_call, self.settings.hold_ttl
            ),
            utcnow(),
            max_active=self.settings.max_concurrent_per_user,
        )
        upstream = Upstream(route.base_url, self._secret(route.secret_sealed))
        deadline = time.monotonic() + self.settings.stream_max_seconds
        return Call(holder, plan, upstream, hold, deadline)

    def _secret(self, sealed: str | None) -> str:
        """An upstream's secret, opened once per process (sealed values are immutable)."""
        if not sealed:
            return ""
        opened = self._opened.get(sealed)
        if opened is None:
            opened = self._opened[sealed] = self.box.open(sealed)
        return opened

    # --- 2. the upstream call -------------------------------------------------

    def complete(self, call: Call) -> tuple[bytes, Outcome]:
        """A non-stream call: the upstream's answer, byte for byte, and its charge."""
        try:
            raw, _ = self.client.post_json(
                call.upstream, call.plan.endpoint.value, call.plan.upstream_body, call.deadline
            )
        except UpstreamFailed as exc:
            self._release(call, exc.code)
            raise
        try:
            usage, text_bytes = meter_response(json.loads(raw))
        except ValueError:
            usage, text_bytes = None, len(raw)
        return raw, self.finish(call, usage, text_bytes, disconnected=False)

    def open_stream(self, call: Call) -> UpstreamStream:
        """Send a stream call; its answer's headers have arrived (2xx) when this returns."""
        try:
            return self.client.open_stream(
                call.upstream, call.plan.endpoint.value, call.plan.upstream_body, call.deadline
            )
        except UpstreamFailed as exc:
            self._release(call, exc.code)
            raise

    def relay(self, call: Call, stream: UpstreamStream) -> Relay:
        """The client's SSE stream (a WSGI iterable). Settles exactly once,
        however it ends, even if the client left before the first byte."""
        return Relay(self, call, stream)

    def _events(self, call: Call, stream: UpstreamStream) -> Iterator[bytes]:
        """Relay the upstream's events; settle before the client sees ``[DONE]``,
        so a client that has read the whole stream has been charged."""
        meter = StreamMeter(client_wants_usage=call.plan.client_wants_usage)
        splitter = EventSplitter()
        unread: deque[bytes] = deque()  # split from a chunk, not metered yet
        gone = False
        try:
            for chunk in stream.chunks(self.settings.ping_seconds):
                if chunk is UpstreamStream.PING:
                    yield PING_EVENT
                    continue
                unread.extend(splitter.feed(chunk))
                while unread:
                    event = unread.popleft()
                    out = meter.process(event)
                    if meter.done and not call.finished:
                        self.finish(call, meter.usage, meter.text_bytes, disconnected=False)
                    if out is not None:
                        yield out
            tail = splitter.rest()
            if tail:
                yield tail + b"\n\n"
            if stream.failed or stream.timed_out:
                yield _error_event(stream)
            if not meter.done:
                self.finish(call, meter.usage, meter.text_bytes, disconnected=False)
                yield DONE_EVENT
        except GeneratorExit:
            gone = True
            raise
        finally:
            self._end(call, stream, splitter, meter, client_gone=gone, unread=unread)

    def _end(
        self,
        call: Call,
        stream: UpstreamStream,
        splitter: EventSplitter,
        meter: StreamMeter,
        *,
        client_gone: bool,
        unread: Iterable[bytes] = (),
    ) -> None:
        """However a stream ended: after a client left, read on or not (the
        abort policy), close the upstream, and settle if not done yet.
        ``unread``: events already received but not relayed when the client
        left (the usage may be among them)."""
        try:
            if client_gone and not call.finished:
                self._after_client_left(stream, splitter, meter, unread)
        finally:
            stream.close()
            if not call.finished:
                self.finish(call, meter.usage, meter.text_bytes, disconnected=client_gone)

    def _after_client_left(
        self,
        stream: UpstreamStream,
        splitter: EventSplitter,
        meter: StreamMeter,
        unread: Iterable[bytes],
    ) -> None:
        """``drain``: meter what was received but not relayed, then read the
        upstream on (to its usage) within the drain time; ``cancel``: close it now."""
        if self.settings.abort_policy != "drain":
            return
        for event in unread:
            meter.process(event)
        until = time.monotonic() + self.settings.drain_seconds
        for chunk in stream.chunks(self.settings.ping_seconds, until=until):
            for event in splitter.feed(chunk):
                meter.process(event)

    # --- 3. finish ------------------------------------------------------------

    def finish(
        self, call: Call, usage: Usage | None, text_bytes: int, *, disconnected: bool
    ) -> Outcome:
        """Settle or release the call's hold, by the table of the module docstring."""
        if call.finished:
            raise RuntimeError("a call is finished once")
        call.finished = True
        now = utcnow()
        estimated = False
        if usage is None and text_bytes > 0:
            tokens_in, tokens_out = estimated_tokens(call.plan.request_bytes, text_bytes)
            usage, estimated = Usage(tokens_in, tokens_out), True
        if usage is None:
            self._release(call, "no_usage")
            return Outcome(0, None)
        settled = self.writes.run(
            lambda cur: holds.settle(
                cur,
                call.hold,
                usage.input_tokens,
                usage.output_tokens,
                now,
                estimated=estimated,
                disconnected=disconnected and not estimated,
                commit=True,  # nothing follows it: one round trip fewer on PostgreSQL
            )
        )
        return Outcome(settled.charged_ucr, settled.balance_ucr)

    def _release(self, call: Call, reason_code: str) -> None:
        call.finished = True
        self.writes.run(lambda cur: holds.release(cur, call.hold, reason_code, utcnow()))


class Relay:
    """A WSGI response iterable around the relay generator.

    A generator closed before its first ``next`` never runs its ``finally``;
    this wrapper's ``close`` (which every WSGI server calls) covers that case:
    the call is finished as if the client had left at once.
    """

    def __init__(self, gateway: Gateway, call: Call, stream: UpstreamStream) -> None:
        self._gateway = gateway
        self._call = call
        self._stream = stream
        self._events = gateway._events(call, stream)
        self._started = False

    def __iter__(self) -> Relay:
        return self

    def __next__(self) -> bytes:
        self._started = True
        return next(self._events)

    def close(self) -> None:
        if self._started:
            self._events.close()
            return
        meter = StreamMeter(client_wants_usage=self._call.plan.client_wants_usage)
        self._gateway._end(self._call, self._stream, EventSplitter(), meter, client_gone=True)


def _error_event(stream: UpstreamStream) -> bytes:
    """The SSE error a client gets when its stream is cut (headers already sent)."""
    if stream.timed_out:
        code, message = UpstreamTimeout.code, "The upstream did not finish in time."
    else:
        code, message = UpstreamFailed.code, "The upstream broke the connection mid-stream."
    body = {"error": {"code": code, "message": message, "type": "api_error"}}
    return b"data: " + json.dumps(body).encode() + b"\n\n"
