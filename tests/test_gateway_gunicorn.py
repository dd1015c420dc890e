"""The metering gateway served by real gunicorn (the committed gthread config),
in front of the loopback stand-in upstream.

What only a real multi-threaded, multi-process server shows: a client that hangs
up mid-stream (drain and cancel), many streams racing for one wallet's last
credits, a worker SIGKILLed while its hold is active, a price change while a
stream runs (the hold's snapshot prices it), and pages still answering while
streams are open. Charges are checked exactly, and check-ledger stays clean.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from flask import Flask

from core import audit, ledger, user_keys
from core.clock import utcnow
from core.hold_expiry import expire_overdue
from core.pricing import MICRO as CR
from tests.gateway_setup import EMAIL, MESSAGES, World, post, world_with
from tests.gunicorn_server import Gunicorn
from tests.llm_upstream import Scenario, Usage

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def make_world(
    db_config: dict[str, Any],
    tmp_path: Path,
    funds: int = 100 * CR,
    env: dict[str, str] | None = None,
    workers: int = 2,
) -> Iterator[World]:
    server_env = {
        "GATEWAY_PING_SECONDS": "0.2",
        "GATEWAY_MAX_CONCURRENT_PER_USER": "100",
        "GATEWAY_RATE_LIMIT": "100000/minute",
        **(env or {}),
    }

    def serve(app: Flask) -> Gunicorn:
        return Gunicorn(db_config, tmp_path, env=server_env, workers=workers).start()

    with world_with(db_config, serve, funds=funds) as world:
        yield world


@pytest.fixture
def world(db_config: dict[str, Any], tmp_path: Path) -> Iterator[World]:
    with make_world(db_config, tmp_path) as world:
        yield world


# gpt-4o-mini: $0.15 in / $0.60 out per 1M at 10,000 credits per USD (spec §1).
def cost(tokens_in: int, tokens_out: int, price_in: int = 150_000, price_out: int = 600_000) -> int:
    return -(-(tokens_in * price_in + tokens_out * price_out) * 10_000 // 1_000_000)


def wait_for(predicate: Any, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


STREAM_BODY = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True, "max_tokens": 100}
STREAM_BYTES = json.dumps(STREAM_BODY).encode()


def stream_fully(url: str, key: str, body: dict = STREAM_BODY) -> int:
    """POST a stream and read it to its end; the status."""
    with (
        httpx.Client(timeout=60) as client,
        client.stream("POST", url, json=body, headers={"Authorization": f"Bearer {key}"}) as r,
    ):
        for _ in r.iter_bytes():
            pass
        return r.status_code


def leave_after_first_content(world: World) -> None:
    """Read the stream until the first content arrives, then hang up."""
    with (
        httpx.Client(timeout=30) as client,
        client.stream(
            "POST",
            world.chat_url,
            content=STREAM_BYTES,
            headers={"Authorization": f"Bearer {world.key}", "Content-Type": "application/json"},
        ) as response,
    ):
        assert response.status_code == 200
        for line in response.iter_lines():
            if '"content":"' in line and '"content":""' not in line:
                break


SLOW = Scenario(usage=Usage(40, 20), chunks=30, chunk_delay=0.05)


@pytest.mark.parametrize("policy", ["drain", "cancel"])
def test_a_client_that_hangs_up(db_config: dict[str, Any], tmp_path: Path, policy: str) -> None:
    with make_world(db_config, tmp_path, env={"GATEWAY_ABORT_POLICY": policy}) as world:
        world.upstream.next(SLOW)
        leave_after_first_content(world)
        wait_for(lambda: bool(world.events()))
        [event] = world.events()
        [hold] = world.holds()
        if policy == "drain":
            assert event.disconnected is True
            assert (event.status, event.input_tokens, event.output_tokens) == ("charged", 40, 20)
            assert event.cost_ucr == cost(40, 20)
            world.upstream.wait_until(lambda up: up.completed_streams == 1)
        else:
            assert (event.status, event.disconnected) == ("estimated", False)  # spec §6
            assert event.input_tokens == -(-len(STREAM_BYTES) // 4)
            assert event.cost_ucr == cost(event.input_tokens, event.output_tokens)
            assert 0 < event.output_tokens < 30  # part of the stream, by its bytes
            assert 0 < event.cost_ucr <= hold.amount_ucr
            world.upstream.wait_until(lambda up: up.client_disconnects == 1)
            assert world.upstream.completed_streams == 0
        assert world.wallet() == (100 * CR - event.cost_ucr, 0)
        assert world.billing.problems() == []


def test_a_price_change_mid_stream_is_settled_at_the_holds_prices(world: World) -> None:
    world.upstream.next(Scenario(usage=Usage(40, 60), chunks=20, chunk_delay=0.1))
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(stream_fully, world.chat_url, world.key)
        world.upstream.wait_for_open_streams(1)
        world.billing.set_price("gpt-4o-mini", 1_500_000, 6_000_000)  # ten times dearer
        assert running.result() == 200
    [event] = world.events()
    assert (event.status, event.cost_ucr) == ("charged", cost(40, 60))
    assert world.wallet() == (100 * CR - cost(40, 60), 0)
    assert world.billing.problems() == []


def test_pages_answer_while_twenty_streams_are_open(world: World) -> None:
    world.upstream.next(*[Scenario(usage=Usage(10, 10), chunks=40, chunk_delay=0.1)] * 20)
    with ThreadPoolExecutor(20) as pool:
        running = [pool.submit(stream_fully, world.chat_url, world.key) for _ in range(20)]
        world.upstream.wait_for_open_streams(20)
        page = requests.get(world.server.url + "/auth/login", timeout=5)
        assert page.status_code == 200
        assert world.upstream.open_streams == 20  # answered while all were still open
        assert [f.result() for f in running] == [200] * 20
    assert len(world.events()) == 20 and world.billing.problems() == []


def test_a_hold_of_a_killed_worker_expires_without_charge(
    db_config: dict[str, Any], tmp_path: Path
) -> None:
    with make_world(db_config, tmp_path, workers=1) as world:
        [worker] = world.server.worker_pids()
        world.upstream.next(Scenario(usage=Usage(10, 10), chunks=200, chunk_delay=0.1))
        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(stream_fully, world.chat_url, world.key)
            world.upstream.wait_for_open_streams(1)
            os.kill(worker, signal.SIGKILL)
            with contextlib.suppress(httpx.HTTPError):
                running.result()
        [hold] = world.holds()
        assert hold.status == "active"
        balance, reserved = world.wallet()
        assert (balance, reserved) == (100 * CR, hold.amount_ucr)
        with world.billing.db.raw_write() as cur:
            assert expire_overdue(cur, utcnow()) == []  # not yet due
        due = hold.expires_at + timedelta(seconds=1)
        with world.billing.db.raw_write() as cur:
            assert expire_overdue(cur, due) == [hold.id]
        [hold] = world.holds()
        assert (hold.status, hold.reason_code, hold.charged_ucr) == ("expired", "expired", None)
        assert world.wallet() == (100 * CR, 0)
        assert world.events() == []
        assert world.billing.problems() == []


# The overdraft race ----------------------------------------------------------

K = 4
CLIENTS = 4
STREAMS_PER_CLIENT = 5  # 5·K in all


def race_client(url: str, key: str, start: Any, usage_key: str | None) -> list[int]:
    """Wait for the others, then open this client's streams at once; their statuses."""
    start.wait()
    with ThreadPoolExecutor(STREAMS_PER_CLIENT + 1) as pool:
        statuses = list(
            pool.map(lambda _: stream_fully(url + "/v1/chat/completions", key), range(5))
        )
    if usage_key:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {usage_key}"
        for n in range(10):
            body = {
                "event_id": f"{key[-6:]}-{n}-{time.monotonic_ns()}",
                "user": EMAIL,
                "model": "gpt-4o-mini",
                "input_tokens": 1000,
                "output_tokens": 500,
            }
            statuses.append(-session.post(url + "/api/v1/usage", json=body, timeout=10).status_code)
    return statuses


@pytest.mark.parametrize("with_usage", [False, True], ids=["streams", "streams+usage"])
def test_the_overdraft_race(db_config: dict[str, Any], tmp_path: Path, with_usage: bool) -> None:
    with make_world(db_config, tmp_path, funds=0) as world:
        # One stream on another user tells the worst-case hold of this request.
        probe = world.billing.user("probe@example.com", 100 * CR)
        with world.billing.db.write() as s:
            _, probe_key = user_keys.create(s, audit.CLI, probe.id, "probe")
        assert stream_fully(world.chat_url, probe_key) == 200
        worst = world.holds()[0].amount_ucr
        with world.billing.db.write() as s:
            ledger.adjust(s, audit.CLI, EMAIL, K * worst, "funded for exactly K holds")
        world.upstream.default = Scenario(usage=Usage(30, 90), chunks=30, chunk_delay=0.1)
        before = world.upstream.request_count
        usage_key = world.billing.api_key("racing") if with_usage else None
        spawn = multiprocessing.get_context("spawn")
        manager = spawn.Manager()
        start = manager.Barrier(CLIENTS)
        lowest = [0]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                balance, reserved = world.wallet()
                lowest[0] = min(lowest[0], balance - reserved)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            with spawn.Pool(CLIENTS) as pool:
                results = pool.starmap(
                    race_client,
                    [(world.server.url, world.key, start, usage_key)] * CLIENTS,
                )
        finally:
            done.set()
            sampler.join()
            manager.shutdown()
        statuses = [s for r in results for s in r if s > 0]
        reached = world.upstream.request_count - before
        assert lowest[0] >= 0  # overdraft 0: available never below zero
        if with_usage:
            assert statuses.count(200) == reached <= K
            assert set(statuses) <= {200, 402}
        else:
            assert statuses.count(200) == K and statuses.count(402) == 4 * K
            assert reached == K
        balance, reserved = world.wallet()
        assert reserved == 0 and balance >= 0
        assert world.billing.problems() == []


def _listen_backlog(port: int) -> int:
    """Connections waiting to be accepted on 127.0.0.1:``port``: the receive
    queue of its LISTEN entry in /proc/net/tcp."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        _, local, _, state, queues = line.split()[:5]
        if state == "0A" and int(local.split(":")[1], 16) == port:
            return int(queues.split(":")[1], 16)
    raise AssertionError(f"nothing listens on port {port}")


CHAT_BYTES = json.dumps({"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": 20}).encode()


def chat(world: World) -> int:
    """One non-stream chat call; its status."""
    return post(world, CHAT_BYTES).status_code


def test_a_worker_whose_threads_are_busy_leaves_new_calls_to_the_others(
    db_config: dict[str, Any], tmp_path: Path
) -> None:
    """deploy/gunicorn.conf.py's worker accepts a connection only while it has
    a free thread: with gunicorn's own gthread worker, a worker holding
    fewer connections than ``worker_connections`` (threads + 8) accepts more
    and queues them inside itself until a call ends, while another worker
    may have threads free."""
    with make_world(db_config, tmp_path, env={"GUNICORN_THREADS": "2"}) as world:
        first, second = world.server.worker_pids()
        world.upstream.next(*[Scenario(hang=True, usage=Usage(10, 5))] * 4)
        pool = ThreadPoolExecutor(4)
        try:
            os.kill(second, signal.SIGSTOP)  # for now only the first worker accepts
            try:
                calls = [pool.submit(chat, world) for _ in range(2)]
                world.upstream.wait_for_hung(2)  # both of its threads are busy
                calls += [pool.submit(chat, world) for _ in range(2)]
                # It leaves the two new connections to the listen backlog.
                wait_for(lambda: _listen_backlog(world.server.port) == 2)
            finally:
                os.kill(second, signal.SIGCONT)
            world.upstream.wait_for_hung(4)  # the second worker took them at once
        finally:
            world.upstream.release()
            pool.shutdown(wait=True)
        assert [call.result() for call in calls] == [200] * 4

        def served() -> dict[int, int]:
            return world.server.served_by("POST", "/v1/chat/completions")

        wait_for(lambda: sum(served().values()) == 4)  # logged after the answer is sent
        assert served() == {first: 2, second: 2}
        assert len(world.events()) == 4 and world.billing.problems() == []
