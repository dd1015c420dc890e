"""The fixed-window counters behind the API and login limits: in memory, in
the machine-wide SQLite file (the default) and in Redis."""

from __future__ import annotations

import multiprocessing
import os
import socket
import stat
import uuid
from pathlib import Path
from typing import Any

import pytest

from blueprints import rate_limits
from blueprints.rate_limits import RateLimits
from core.rate_counters import FileCounters
from tests.conftest import AuthActions, Billing, make_test_app, redis_url
from tests.rate_limit_helpers import Clock, file_limits


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(rate_limits.time, "time", clock)
    return clock


@pytest.fixture(params=["memory", "file"])
def limits(request: pytest.FixtureRequest, clock: Clock, tmp_path: Path) -> RateLimits:
    if request.param == "memory":
        return RateLimits("memory://")
    return file_limits(tmp_path / "counters.sqlite", clock)


def test_a_window_allows_its_amount_then_refuses_until_it_ends(
    limits: RateLimits, clock: Clock
) -> None:
    verdicts = [limits.hit("3/minute", "api-key", "1") for _ in range(4)]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert [v.remaining for v in verdicts] == [2, 1, 0, 0]
    assert verdicts[3].retry_after == 61  # the whole window, rounded up
    clock.now += 30
    refused = limits.hit("3/minute", "api-key", "1")
    assert not refused.allowed and refused.retry_after == 31
    assert limits.hit("3/minute", "api-key", "2").allowed  # another key, another window
    clock.now += 30
    renewed = limits.hit("3/minute", "api-key", "1")  # a new window
    assert renewed.allowed and renewed.remaining == 2


def test_expired_windows_are_swept_when_the_table_grows(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rate_limits._ProcessCounters, "_SWEEP_AT", 10)
    limits = RateLimits("memory://")
    for n in range(10):
        limits.hit("5/minute", "login-ip", str(n))
    clock.now += 61
    limits.hit("5/minute", "login-ip", "fresh")
    assert len(limits.storage._windows) == 1  # type: ignore[union-attr]


def test_the_file_is_swept_of_expired_windows_once_a_minute(clock: Clock, tmp_path: Path) -> None:
    limits = file_limits(tmp_path / "counters.sqlite", clock)
    storage = limits.storage
    assert isinstance(storage, FileCounters)
    for n in range(10):
        limits.hit("5/minute", "login-ip", str(n))
    clock.now += 30
    limits.hit("5/second", "login-ip", "short")
    assert storage.windows() == 11  # nothing expired yet, and no sweep due
    clock.now += 31  # the minute windows and the one-second window are over
    limits.hit("5/minute", "login-ip", "fresh")
    assert storage.windows() == 1


def test_the_file_is_private_and_its_folder_is_created(clock: Clock, tmp_path: Path) -> None:
    path = tmp_path / "not" / "yet" / "counters.sqlite"
    file_limits(path, clock).hit("5/minute", "login-email", "alice@example.com")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def _hammer(path: str, hits: int, start: multiprocessing.synchronize.Event) -> list[int]:
    counters = FileCounters(path)
    start.wait()
    counts = [counters.incr("shared", 60) for _ in range(hits)]
    counters.close()
    return counts


def test_hits_from_several_processes_sum_exactly(tmp_path: Path) -> None:
    """Four processes, started together, each count 250 hits on one window
    (from a fresh file, so they also race to create it): every count from 1
    to 1000 is handed out exactly once."""
    path = str(tmp_path / "counters.sqlite")
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        start = manager.Event()
        with context.Pool(4) as pool:
            pending = pool.starmap_async(_hammer, [(path, 250, start)] * 4)
            start.set()
            results = pending.get(timeout=120)
    counts = sorted(c for process in results for c in process)
    assert counts == list(range(1, 1001))
    assert FileCounters(path).incr("shared", 60) == 1001


def test_the_default_storage_is_a_file_in_the_instance_folder(tmp_path: Path) -> None:
    from app import create_app

    app = create_app(
        {"SECRET_KEY": "x", "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}"},
        instance_path=str(tmp_path / "instance"),
    )
    assert app.config["RATELIMIT_STORAGE_URI"] == (
        f"sqlite:///{tmp_path / 'instance' / 'ratelimits.sqlite'}"
    )
    storage = app.extensions["creditline.rate_limits"].storage
    assert isinstance(storage, FileCounters)
    assert storage.path == str(tmp_path / "instance" / "ratelimits.sqlite")


def test_redis_windows_count_and_expire() -> None:
    limits = RateLimits(redis_url(), prefix="test-" + uuid.uuid4().hex)
    verdicts = [limits.hit("3/minute", "api-key", "1") for _ in range(4)]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert 0 < verdicts[3].retry_after <= 61


@pytest.mark.parametrize("where", ["redis-closed-port", "file-path-is-a-folder"])
def test_counters_that_cannot_be_reached_answer_503(
    db_config: dict[str, Any], tmp_path: Path, where: str
) -> None:
    """Neither a 500 nor a request let through unchecked."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    uri = {
        "redis-closed-port": f"redis://127.0.0.1:{closed_port}/0",
        "file-path-is-a-folder": f"sqlite:///{tmp_path}",
    }[where]
    app = make_test_app(db_config, RATELIMIT_STORAGE_URI=uri)
    billing = Billing(app)
    headers = {"Authorization": f"Bearer {billing.api_key()}"}
    client = app.test_client()
    response = client.get("/api/v1/balance?user=alice@example.com", headers=headers)
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "unavailable"
    assert int(response.headers["Retry-After"]) > 0
    page = AuthActions(client).login("alice@example.com")
    assert page.status_code == 503 and page.mimetype == "text/html"
    assert "redis" not in page.get_data(as_text=True).lower()
    app.extensions["creditline.db"].dispose()
