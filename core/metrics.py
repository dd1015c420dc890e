"""Prometheus metric objects (served at ``/metrics``).

Counters are incremented only after the transaction that did the work has
committed, so a rolled-back attempt is never counted: the code that changes
a state calls ``count_hold`` / ``count_topup`` inside its transaction, and
``core.commit_hooks`` runs the increment after the commit (or drops it on a
rollback). Holds are counted in ``core.holds`` (gateway calls, chat turns,
admins' releases, lazy and swept expiry alike) and top-ups in
``core.topup_ledger`` (success page and webhook alike). Incrementing is a
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

from core import commit_hooks

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
    "Holds of gateway calls and chat turns by event (taken, settled, released, expired).",
    ["event"],
)
HOLD_EVENTS = ("taken", "settled", "released", "expired")
STRIPE_SIGNATURE_FAILURES = Counter(
    "creditline_stripe_webhook_signature_failures_total",
    "Stripe webhook deliveries refused because their signature did not verify.",
)
GATEWAY_REQUESTS = Counter(
    "creditline_gateway_requests_total", "Gateway (/v1) requests by HTTP status.", ["status"]
)
# Every label value from the start, at 0: a series that appears only with its
# first event breaks rate() and absent-series alerts.
for _outcome in ("charged", "duplicate", "rejected"):
    USAGE_EVENTS.labels(_outcome)
for _event in HOLD_EVENTS:
    HOLDS.labels(_event)

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


def count_hold(event: str, n: int = 1) -> None:
    """Count ``n`` holds that went through ``event`` once the transaction commits."""
    if event not in HOLD_EVENTS:
        raise ValueError(f"unknown hold event {event!r}")
    if n:
        commit_hooks.after_commit(lambda: HOLDS.labels(event).inc(n))


def count_topup() -> None:
    """Count a top-up credited to its wallet once the transaction commits."""
    commit_hooks.after_commit(TOPUPS.inc)


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
