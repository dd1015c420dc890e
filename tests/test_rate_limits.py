"""The fixed-window counters behind the API and login limits."""

from __future__ import annotations

import pytest

from blueprints import rate_limits
from blueprints.rate_limits import RateLimits


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(rate_limits.time, "time", clock)
    return clock


def test_a_window_allows_its_amount_then_refuses_until_it_ends(clock: Clock) -> None:
    limits = RateLimits("memory://")
    verdicts = [limits.hit("3/minute", "api-key", "1") for _ in range(4)]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert [v.remaining for v in verdicts] == [2, 1, 0, 0]
    assert verdicts[3].retry_after == 61  # the whole window, rounded up
    clock.now += 30
    refused = limits.hit("3/minute", "api-key", "1")
    assert not refused.allowed and refused.retry_after == 31
    assert limits.hit("3/minute", "api-key", "2").allowed  # another key, another window
    clock.now += 30
    assert limits.hit("3/minute", "api-key", "1").allowed  # a new window


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
