"""Shared by the rate-limit tests: a settable clock and limits over a counter file."""

from __future__ import annotations

from pathlib import Path

from blueprints.rate_limits import RateLimits
from core.rate_counters import FileCounters


class Clock:
    """``time.time`` for the counters and the limits: set ``now`` by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def file_limits(path: Path, clock: Clock | None = None) -> RateLimits:
    """Limits counted in the SQLite file at ``path``, on ``clock`` if given."""
    limits = RateLimits(f"sqlite:///{path}")
    assert isinstance(limits.storage, FileCounters)
    if clock is not None:
        limits.storage._clock = clock
    return limits
