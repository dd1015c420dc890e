"""The scale-out path: two gunicorn servers (two masters, two ports) on one
PostgreSQL database and one Redis for the rate limits, with the load test's
clients spread over both. PostgreSQL only: SQLite is one file on one machine.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from core.enums import UsageStatus
from core.models import UsageEvent
from tests.conftest import USING_PG, Billing, make_test_app, redis_url
from tests.gunicorn_server import Gunicorn
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


def run_client(client: int, urls: list[str], key: str) -> Counter:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    seen: Counter = Counter()
    for n, group in enumerate(plan(client)):
        url = urls[(client + n) % len(urls)]  # every client talks to both servers
        if len(group) == 1:
            r = session.post(url + "/api/v1/usage", json={"event_id": group[0], **BODY}, timeout=30)
        else:
            events = [{"event_id": e, **BODY} for e in group]
            r = session.post(url + "/api/v1/usage/batch", json={"events": events}, timeout=30)
        seen[r.status_code] += 1
    return seen


def _metric(url: str, name: str, labels: str) -> float:
    text = requests.get(url + "/metrics", timeout=10).text
    found = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


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
    billing.user(USER, FUNDED * COST)
    load_key, limited_key = billing.api_key("load"), billing.api_key("limited")
    env = {k: str(v) for k, v in limits.items()}
    try:
        with (
            Gunicorn(config, tmp_path / "a", env=env) as a,
            Gunicorn(config, tmp_path / "b", env=env) as b,
        ):
            urls = [a.url, b.url]
            with ThreadPoolExecutor(CLIENTS) as pool:
                counts = list(pool.map(lambda c: run_client(c, urls, load_key), range(CLIENTS)))
            seen = sum(counts, Counter())
            assert not [s for s in seen if s >= 500], seen
            assert set(seen) <= {200, 201, 402}, seen
            assert sum(seen.values()) < API_LIMIT  # the load stayed under its key's limit

            # Charged on either server, counted by every worker of both.
            charged = sum(
                _metric(u, "creditline_usage_events_total", '{outcome="charged"}') for u in urls
            )
            assert charged == FUNDED

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
        with app.extensions["creditline.db"].read_session() as s:
            events = s.scalar(select(func.count()).select_from(UsageEvent))
            charged_rows = s.scalar(
                select(func.count())
                .select_from(UsageEvent)
                .where(UsageEvent.status == UsageStatus.CHARGED)
            )
        result = app.test_cli_runner().invoke(args=["check-ledger"])
        balance = billing.balance(USER)
        app.extensions["creditline.db"].dispose()
    distinct = CLIENTS * (EVENTS_PER_CLIENT - EVENTS_PER_CLIENT // 10)
    assert events == distinct  # each id stored once, re-sent or not
    assert charged_rows == FUNDED  # exactly the funded number, no double charge
    assert balance == 0
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
