"""Large limits are claimed from the shared counters in chunks (``core.rate_leases``):
never more than the limit gets through, over any number of processes, and the
shared store is written once per claim, not once per request."""

from __future__ import annotations

import multiprocessing
import uuid
from pathlib import Path
from typing import Any

import pytest

from blueprints import rate_limits
from blueprints.rate_limits import RateLimits
from core.rate_leases import claim_size
from tests.conftest import redis_url
from tests.rate_limit_helpers import Clock, file_limits


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(rate_limits.time, "time", clock)
    return clock


def _window_count(path: Path, key: str) -> int:
    import sqlite3

    with sqlite3.connect(path) as conn:
        row = conn.execute("SELECT count FROM windows WHERE key LIKE ?", (f"%{key}%",)).fetchone()
    return int(row[0])


def test_claims_are_one_percent_of_a_large_limit_and_single_hits_below_200() -> None:
    assert [claim_size(n) for n in (3, 199, 200, 1000, 6000, 10_000, 10**8)] == [
        1, 1, 2, 10, 60, 100, 100,
    ]  # fmt: skip


def test_one_process_gets_exactly_the_limit_in_claims(clock: Clock, tmp_path: Path) -> None:
    path = tmp_path / "counters.sqlite"
    limits = file_limits(path, clock)
    verdicts = [limits.hit("1000/minute", "user-key", "7") for _ in range(1001)]
    assert [v.allowed for v in verdicts] == [True] * 1000 + [False]
    assert [v.remaining for v in verdicts[:1000]] == list(range(999, -1, -1))
    assert verdicts[1000].retry_after == 61
    # 100 claims of 10 wrote the 1,000 hits, then one refused claim
    assert limits.leases.claims == 101
    assert _window_count(path, "user-key/7") == 1010


def test_a_limit_below_200_is_counted_hit_by_hit(clock: Clock, tmp_path: Path) -> None:
    limits = file_limits(tmp_path / "counters.sqlite", clock)
    allowed = [limits.hit("199/minute", "user-key", "1").allowed for _ in range(200)]
    assert allowed.count(True) == 199 and not allowed[-1]
    assert limits.leases.claims == 200


def test_workers_sharing_a_file_never_let_more_than_the_limit_through(
    clock: Clock, tmp_path: Path
) -> None:
    """Four workers (four ``RateLimits`` on one file) take turns: at most the
    limit is allowed, and at most one claim per other worker is left unused."""
    path = tmp_path / "counters.sqlite"
    workers = [file_limits(path, clock) for _ in range(4)]
    allowed = sum(w.hit("1000/minute", "api-key", "3").allowed for _ in range(300) for w in workers)
    assert 1000 - 3 * 10 <= allowed <= 1000
    assert not any(w.hit("1000/minute", "api-key", "3").allowed for w in workers)


def test_unused_hits_of_an_ended_window_are_dropped(clock: Clock, tmp_path: Path) -> None:
    limits = file_limits(tmp_path / "counters.sqlite", clock)
    for _ in range(5):
        assert limits.hit("1000/minute", "api-key", "9").allowed  # 1 claim, 5 unused
    clock.now += 61
    renewed = limits.hit("1000/minute", "api-key", "9")
    assert renewed.allowed and renewed.remaining == 999  # a fresh window, a fresh claim
    assert limits.leases.claims == 2


def _spend(path: str, hits: int, start: Any) -> int:
    limits = RateLimits(f"sqlite:///{path}")
    start.wait()
    allowed = sum(limits.hit("1000/minute", "user-key", "42").allowed for _ in range(hits))
    limits.storage.close()
    return allowed


def test_processes_racing_on_one_key_never_pass_the_limit(tmp_path: Path) -> None:
    """Four processes, 400 hits each, on a limit of 1,000: at most 1,000 pass,
    and at most one claim (10) per other process is stranded."""
    path = str(tmp_path / "counters.sqlite")
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        start = manager.Event()
        with context.Pool(4) as pool:
            pending = pool.starmap_async(_spend, [(path, 400, start)] * 4)
            start.set()
            allowed = pending.get(timeout=120)
    assert 1000 - 3 * 10 <= sum(allowed) <= 1000, allowed


def test_redis_counts_claims_too() -> None:
    limits = RateLimits(redis_url(), prefix="test-" + uuid.uuid4().hex)
    allowed = [limits.hit("500/minute", "api-key", "1").allowed for _ in range(501)]
    assert allowed == [True] * 500 + [False]
    assert limits.leases.claims == 101  # 100 claims of 5, one refused
