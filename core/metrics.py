"""Prometheus metric objects (served at ``/metrics``).

Counters are incremented only after the transaction that did the work has
committed, so a rolled-back attempt is never counted. Incrementing is a
lock and an add in memory (an mmap'd file in multiprocess mode), nothing on
the database or the network.

Multiprocess mode: when ``PROMETHEUS_MULTIPROC_DIR`` is set before the app is
imported (``deploy/gunicorn.conf.py`` does it), each gunicorn worker writes
its values to files there and ``/metrics`` adds them up across workers.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

USAGE_EVENTS = Counter(
    "creditline_usage_events_total",
    "Usage events reported through the API, by outcome (charged, duplicate, rejected).",
    ["outcome"],
)
# Prometheus values are float64: exact up to 2**53 micro-credits (about nine
# billion credits) per process lifetime, an estimate beyond. The ledger is
# the exact figure; this is for graphs and alerts.
CHARGED_UCR = Counter("creditline_charged_ucr_total", "Micro-credits charged by API usage events.")
TOPUPS = Counter("creditline_topups_total", "Top-ups credited to a wallet.")
HOLDS = Counter(
    "creditline_holds_total",
    "Gateway holds by event (taken, settled, released, expired).",
    ["event"],
)
GATEWAY_REQUESTS = Counter(
    "creditline_gateway_requests_total", "Gateway (/v1) requests by HTTP status.", ["status"]
)
REQUEST_SECONDS = Histogram(
    "creditline_request_seconds",
    "Time to produce a response (for a stream: until its headers), by area.",
    ["area"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)


def count_usage(outcomes: Iterable[tuple[bool, bool, int]]) -> None:
    """Count committed usage results: (rejected, duplicate, charged_ucr) each."""
    for rejected, duplicate, charged_ucr in outcomes:
        if rejected:
            USAGE_EVENTS.labels("rejected").inc()
        elif duplicate:
            USAGE_EVENTS.labels("duplicate").inc()
        else:
            USAGE_EVENTS.labels("charged").inc()
            CHARGED_UCR.inc(charged_ucr)


def exposition() -> tuple[bytes, str]:
    """The text format of every metric, added up across workers when multiprocess."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def worker_exited(pid: int) -> None:
    """Gunicorn ``child_exit`` hook: fold a dead worker's live gauges away."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)
