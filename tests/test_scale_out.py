"""The scale-out path: two gunicorn servers (two masters, two ports) on one
PostgreSQL database and one Redis for the rate limits, with the load test's
clients spread over both: usage reports (singles, batches, 10 % re-sent ids)
and gateway streams (the openai SDK, in front of the loopback LLM stand-in)
spending one wallet. PostgreSQL only: SQLite is one file on one machine.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai
import pytest
import requests
from sqlalchemy import func, select

from core import audit, user_keys
from core.accounts import find_user
from core.enums import UsageStatus
from core.gateway.models import Hold
from core.models import UsageEvent
from tests.conftest import USING_PG, Billing, make_test_app, redis_url
from tests.gateway_setup import UPSTREAM_SECRET, route_to_standin
from tests.gunicorn_server import Gunicorn
from tests.llm_upstream import LLMUpstream, Scenario, Usage
from tests.metrics_reader import Samples, parse, value
from tests.private_postgres import PrivatePostgres

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not USING_PG, reason="PostgreSQL only: servers share one database"),
]

CLIENTS = 4
EVENTS_PER_CLIENT = 60
FUNDED = 100  # fewer than the distinct events sent: the rest are refused (402)
COST = 4_500_000  # 1,000 in + 500 out of gpt-4o-mini at 10,000 credits/USD
API_LIMIT = 400  # per integration key per hour, counted in Redis across both servers
USER = "load@example.com"
BODY = {"user": USER, "model": "gpt-4o-mini", "input_tokens": 1000, "output_tokens": 500}
STREAM_EVERY = 4  # a gateway stream after every fourth usage request of a client
STREAM_USAGE = Usage(30, 90)  # what the stand-in reports for each stream
# Its charge at the hold's snapshot (gpt-4o-mini, $0.15 / $0.60 per 1M tokens,
# 10,000 credits per USD): (30 * 150,000 + 90 * 600,000) * 10,000 / 10**6 µcr.
STREAM_CHARGE = 585_000
MESSAGES = [{"role": "user", "content": "Say hello"}]


def plan(client: int) -> list[list[str]]:
    """Event ids in requests (1 = single, 10 = batch); 10 % re-send another client's ids."""
    own = EVENTS_PER_CLIENT - EVENTS_PER_CLIENT // 10
    ids = [f"c{client}-{n}" for n in range(own)]
    ids += [f"c{(client + 1) % CLIENTS}-{n}" for n in range(EVENTS_PER_CLIENT // 10)]
    groups, i = [], 0
    while i < len(ids):
        size = 10 if (i // 10) % 3 == 2 else 1
        groups.append(ids[i : i + size])
        i += size
    return groups


def stream(sdk: openai.OpenAI) -> int:
    """One gateway stream read to its end; its status (an SDK error's status)."""
    try:
        chunks = sdk.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,  # type: ignore[arg-type]
            stream=True,
            max_tokens=100,
            stream_options={"include_usage": True},
        )
        usage = [chunk.usage for chunk in chunks if chunk.usage is not None]
    except openai.APIStatusError as exc:
        return exc.status_code
    assert [(u.prompt_tokens, u.completion_tokens) for u in usage] == [(30, 90)]
    return 200


def run_client(client: int, urls: list[str], key: str, user_key: str) -> tuple[Counter, Counter]:
    """The client's usage requests, a stream after every STREAM_EVERY-th; both
    go to either server in turn. (usage statuses, stream statuses)."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    sdks = [openai.OpenAI(base_url=u + "/v1", api_key=user_key, max_retries=0) for u in urls]
    seen: Counter = Counter()
    streams: Counter = Counter()
    for n, group in enumerate(plan(client)):
        url = urls[(client + n) % len(urls)]  # every client talks to both servers
        if len(group) == 1:
            r = session.post(url + "/api/v1/usage", json={"event_id": group[0], **BODY}, timeout=30)
        else:
            events = [{"event_id": e, **BODY} for e in group]
            r = session.post(url + "/api/v1/usage/batch", json={"events": events}, timeout=30)
        seen[r.status_code] += 1
        if n % STREAM_EVERY == STREAM_EVERY - 1:
            streams[stream(sdks[(client + n + 1) % len(sdks)])] += 1
    return seen, streams


def _scrape(url: str) -> Samples:
    return parse(requests.get(url + "/metrics", timeout=10).text)


def _summed(scrapes: list[Samples], name: str, **labels: str) -> int:
    total = sum(value(s, name, **labels) for s in scrapes)
    assert total == int(total)
    return int(total)


def test_two_servers_on_one_database_and_one_redis(
    db_config: dict[str, Any], tmp_path: Path
) -> None:
    limits = {
        "RATELIMIT_STORAGE_URI": redis_url().rsplit("/", 1)[0] + "/14",
        "RATELIMIT_KEY_PREFIX": f"scale-{uuid.uuid4().hex[:12]}",
        "API_RATE_LIMIT": f"{API_LIMIT}/hour",
    }
    config = {**db_config, **limits}
    app = make_test_app(config)
    billing = Billing(app)
    upstream = LLMUpstream(api_key=UPSTREAM_SECRET).start()
    upstream.default = Scenario(usage=STREAM_USAGE, chunks=5)
    route_to_standin(app, billing, upstream.url)
    user = billing.user(USER, FUNDED * COST)
    with billing.db.write() as s:
        _, user_key = user_keys.create(s, audit.CLI, user.id, "load")
    load_key, limited_key = billing.api_key("load"), billing.api_key("limited")
    env = {
        **{k: str(v) for k, v in limits.items()},
        "GATEWAY_RATE_LIMIT": "100000/minute",
        "GATEWAY_MAX_CONCURRENT_PER_USER": str(CLIENTS),
    }
    try:
        with (
            Gunicorn(config, tmp_path / "a", env=env) as a,
            Gunicorn(config, tmp_path / "b", env=env) as b,
        ):
            urls = [a.url, b.url]
            with ThreadPoolExecutor(CLIENTS) as pool:
                results = list(
                    pool.map(lambda c: run_client(c, urls, load_key, user_key), range(CLIENTS))
                )
            seen = sum((r[0] for r in results), Counter())
            streams = sum((r[1] for r in results), Counter())
            assert not [s for s in seen if s >= 500], seen
            assert set(seen) <= {200, 201, 402}, seen
            assert 402 in seen  # the funds ran out for usage reports
            assert sum(seen.values()) < API_LIMIT  # the load stayed under its key's limit
            # Every stream was admitted (200, to its end) or refused up front (402).
            assert set(streams) <= {200, 402} and streams[200] > 0, streams
            assert upstream.request_count == streams[200]  # no refused one reached it

            # Charged on either server, counted by every worker of both.
            scrapes = [_scrape(u) for u in urls]
            metric_charged = _summed(scrapes, "creditline_usage_events_total", outcome="charged")
            held = {
                e: _summed(scrapes, "creditline_holds_total", event=e) for e in ("taken", "settled")
            }
            gateway = {
                code: _summed(scrapes, "creditline_gateway_requests_total", status=str(code))
                for code in (200, 402)
            }

            # One key's limit is one count across both servers.
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {limited_key}"
            statuses = Counter(
                session.get(
                    urls[n % 2] + "/api/v1/balance", params={"user": USER}, timeout=30
                ).status_code
                for n in range(API_LIMIT + 20)
            )
            assert statuses == Counter({200: API_LIMIT, 429: 20})
    finally:
        upstream.stop()
        with app.extensions["creditline.db"].read_session() as s:
            events = s.scalar(
                select(func.count()).select_from(UsageEvent).where(UsageEvent.hold_id.is_(None))
            )
            charged_rows = s.scalar(
                select(func.count())
                .select_from(UsageEvent)
                .where(UsageEvent.status == UsageStatus.CHARGED, UsageEvent.hold_id.is_(None))
            )
            stream_charges = s.scalars(
                select(UsageEvent.cost_ucr).where(UsageEvent.hold_id.is_not(None))
            ).all()
            hold_rows = s.execute(select(Hold.status, Hold.amount_ucr)).all()
            wallet = find_user(s, USER).wallet
            balance, reserved = wallet.balance_ucr, wallet.reserved_ucr
        result = app.test_cli_runner().invoke(args=["check-ledger"])
        app.extensions["creditline.db"].dispose()
    distinct = CLIENTS * (EVENTS_PER_CLIENT - EVENTS_PER_CLIENT // 10)
    assert events == distinct  # each id stored once, re-sent or not
    # Each admitted stream charged once, exactly its usage at the snapshot prices.
    assert stream_charges == [STREAM_CHARGE] * streams[200]
    assert Counter(status for status, _ in hold_rows) == Counter({"settled": streams[200]})
    assert reserved == 0
    # Exactly what was admitted was charged: the funding less the balance left.
    assert FUNDED * COST - balance == charged_rows * COST + streams[200] * STREAM_CHARGE
    # And nothing fundable was left over: a report was refused when less than
    # COST was available, and since then at most the unused part of the holds
    # running then (one stream per client at a time) came back.
    [hold_amount] = {amount for _, amount in hold_rows}
    assert 0 <= balance < COST + CLIENTS * (hold_amount - STREAM_CHARGE)
    assert metric_charged == charged_rows
    assert held == {"taken": streams[200], "settled": streams[200]}
    assert gateway == {200: streams[200], 402: streams[402]}
    assert result.output == "ledger ok\n", result.output


def test_a_postgres_restart_during_load_leaves_no_5xx_once_it_is_back(tmp_path: Path) -> None:
    database = PrivatePostgres().start()
    try:
        config = {
            "DATABASE_URL": database.url,
            "RATELIMIT_STORAGE_URI": f"sqlite:///{tmp_path / 'ratelimits.sqlite'}",
        }
        app = make_test_app(config)
        billing = Billing(app)
        billing.user(USER, 10_000 * COST)
        key = billing.api_key("load")
        restarted = threading.Event()
        after: Counter = Counter()
        before: Counter = Counter()

        def client(n: int, url: str) -> None:
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {key}"
            sent = 0
            while sent < 40 or not restarted.is_set():
                back = restarted.is_set()
                event = {"event_id": f"r{n}-{sent}", **BODY}
                try:
                    r = session.post(url + "/api/v1/usage", json=event, timeout=30)
                    status = r.status_code
                    r2 = session.get(url + "/api/v1/balance", params={"user": USER}, timeout=30)
                    (after if back else before)[r2.status_code] += 1
                except requests.RequestException:
                    status = 0
                (after if back else before)[status] += 1
                if back:
                    sent += 1

        with Gunicorn(config, tmp_path / "g") as server, ThreadPoolExecutor(CLIENTS) as pool:
            running = [pool.submit(client, n, server.url) for n in range(CLIENTS)]
            while sum(before.values()) < 40:  # load under way
                threading.Event().wait(0.05)
            database.restart()
            restarted.set()
            for f in running:
                f.result()
        assert set(after) <= {200, 201}, (before, after)
        assert sum(after.values()) >= CLIENTS * 40
        assert set(before) <= {0, 200, 201, 503}, before  # an outage answers 503 at worst
        result = app.test_cli_runner().invoke(args=["check-ledger"])
        assert result.output == "ledger ok\n", result.output
        app.extensions["creditline.db"].dispose()
    finally:
        database.stop()
