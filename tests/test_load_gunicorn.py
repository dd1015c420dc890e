"""Load and crash tests over real HTTP against gunicorn on 127.0.0.1: the
committed configuration (threaded workers), 2 workers.

4 client processes send single and batch usage events, 10 % of them re-sending
an id another client owns, to a wallet funded for exactly FUNDED events. The
clients retry anything unacknowledged (connection errors, 5xx) with the same
ids, as an integration must. In the crash variant WORKER_KILLS workers are
killed with SIGKILL during the load, each once it has served, and the master
once; the clients keep re-sending ids they already sent until every planned
kill has happened, so the crashes land under load however fast or slow the
machine is.

Afterwards exactly FUNDED events are charged, no id twice, the balance is 0,
``check-ledger`` is clean, SQLite's integrity_check is ok, and (without
crashes) no request ever answered 5xx.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func, select, text

from core.models import UsageEvent
from tests.conftest import USING_PG, Billing, make_test_app
from tests.gunicorn_server import Gunicorn

pytestmark = pytest.mark.slow

CLIENTS = 4
SENDS_PER_CLIENT = 300  # events per client, singles and batches of 20
FUNDED = 800
COST = 4_500_000  # 1,000 in + 500 out of gpt-4o-mini at 10,000 credits/USD
ACKNOWLEDGED = {200, 201, 402}
WORKER_KILLS = 5


def plan(client: int) -> list[list[str]]:
    """The requests one client sends: lists of event ids (1 = single, 20 = batch)."""
    own = SENDS_PER_CLIENT - SENDS_PER_CLIENT // 10
    ids = [f"c{client}-{n}" for n in range(own)]
    ids += [f"c{(client + 1) % CLIENTS}-{n}" for n in range(SENDS_PER_CLIENT // 10)]
    random.Random(client).shuffle(ids)
    groups, i = [], 0
    while i < len(ids):
        size = 20 if (i // 20) % 3 == 2 else 1
        groups.append(ids[i : i + size])
        i += size
    return groups


def send(session: requests.Session, url: str, group: list[str], seen: Counter) -> None:
    """Send one request until it is acknowledged (or about a minute has passed)."""
    body = {
        "user": "load@example.com",
        "model": "gpt-4o-mini",
        "input_tokens": 1000,
        "output_tokens": 500,
    }
    for attempt in range(150):
        try:
            if len(group) == 1:
                r = session.post(
                    url + "/api/v1/usage", json={"event_id": group[0], **body}, timeout=10
                )
                ok = r.status_code in ACKNOWLEDGED
            else:
                events = [{"event_id": e, **body} for e in group]
                r = session.post(url + "/api/v1/usage/batch", json={"events": events}, timeout=10)
                ok = r.status_code == 200
            seen[f"http_{r.status_code}"] += 1
            if ok:
                return
            if r.status_code < 500:
                seen["unexpected"] += 1
                return
        except requests.RequestException:
            seen["connection_error"] += 1
        time.sleep(0.02 * min(attempt + 1, 25))
    seen["gave_up"] += 1


def run_client(client: int, url: str, key: str, chaos_done: Any) -> Counter:
    """Send this client's plan, then re-send from it until ``chaos_done`` is set."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    seen: Counter = Counter()
    groups = plan(client)
    for group in groups:
        send(session, url, group, seen)
    resend = random.Random(client + 100)
    deadline = time.monotonic() + 120
    while not chaos_done.is_set() and time.monotonic() < deadline:
        send(session, url, resend.choice(groups), seen)
    return seen


def killer(server: Gunicorn, stop: threading.Event, kills: Counter, done: Any) -> None:
    """Every 0.4 s SIGKILL a worker that has answered a request; once, after
    3 s, the master (then restart). After the master and WORKER_KILLS workers
    it stops and sets ``done``.

    Only a worker that has served (its pid is in the access log) is killed,
    so every kill lands on a worker in the middle of the load. A rule of
    "alive for a second" killed most workers before they had booted on a
    slow machine (736 boots for 872 requests in one run): the load nearly
    stopped and the test ran for many minutes.
    """
    started = time.monotonic()
    master_killed = False
    while not stop.wait(0.4):
        if not master_killed and time.monotonic() - started > 3:
            # A crashed master takes its workers with it (as a supervisor's
            # cgroup kill would); orphans would keep the port for seconds.
            workers = server.worker_pids()
            os.kill(server.proc.pid, signal.SIGKILL)  # type: ignore[union-attr]
            for pid in workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            server.proc.wait()  # type: ignore[union-attr]
            kills["master"] += 1
            master_killed = True
            server.start()
            continue
        served = server.serving_pids()
        for pid in [p for p in server.worker_pids() if p in served][:1]:
            try:
                os.kill(pid, signal.SIGKILL)
                kills["worker"] += 1
            except ProcessLookupError:
                pass
        if master_killed and kills["worker"] >= WORKER_KILLS:
            done.set()
            return


@pytest.mark.parametrize("crash", [False, True], ids=["load", "crash"])
def test_exactly_once_under_load_and_crashes(db_config, tmp_path: Path, crash: bool) -> None:
    app = make_test_app(db_config)
    billing = Billing(app)
    billing.user("load@example.com", FUNDED * COST)
    key = billing.api_key("load")
    server = Gunicorn(db_config, tmp_path)
    server.start()
    spawn = multiprocessing.get_context("spawn")
    manager = spawn.Manager()
    chaos_done = manager.Event()
    stop, kills = threading.Event(), Counter()
    chaos = threading.Thread(target=killer, args=(server, stop, kills, chaos_done), daemon=True)
    try:
        if crash:
            chaos.start()
        else:
            chaos_done.set()
        with spawn.Pool(CLIENTS) as pool:
            results = pool.starmap(
                run_client, [(c, server.url, key, chaos_done) for c in range(CLIENTS)]
            )
    finally:
        stop.set()
        if crash:
            chaos.join(timeout=30)  # before the manager goes: the killer sets its event
        manager.shutdown()
        server.stop()
    seen = sum(results, Counter())
    print(f"\n{'crash' if crash else 'load'}: {dict(seen)} kills={dict(kills)}")

    assert seen["gave_up"] == 0 and seen["unexpected"] == 0
    if crash:
        assert kills["worker"] >= WORKER_KILLS and kills["master"] == 1
    else:
        assert not any(k.startswith("http_5") for k in seen), seen
        assert seen["connection_error"] == 0
    distinct = CLIENTS * (SENDS_PER_CLIENT - SENDS_PER_CLIENT // 10)
    with billing.db.read_session() as s:
        statuses = dict(
            s.execute(select(UsageEvent.status, func.count()).group_by(UsageEvent.status)).all()
        )
        ids = s.scalar(select(func.count(func.distinct(UsageEvent.event_id))))
        if not USING_PG:
            assert s.execute(text("PRAGMA integrity_check")).scalar() == "ok"
    assert statuses == {"charged": FUNDED, "rejected": distinct - FUNDED}
    assert ids == distinct
    assert billing.balance("load@example.com") == 0
    assert billing.problems() == []
    app.extensions["creditline.db"].dispose()
