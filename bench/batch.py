"""Benchmark 2: batch ingest, Creditline over HTTP vs raw sqlite3 in-process.

Creditline runs under gunicorn (2 sync workers) on 127.0.0.1 and receives
``POST /api/v1/usage/batch`` with 1,000 distinct events per request from wrk
over 2 connections (``bench/batch.lua``); afterwards the script checks that
every answered event is stored as charged. The baseline is a
plain sqlite3 loop on a Creditline database of its own (same schema, indexes
and triggers, same PRAGMAs): per event it prices the event, inserts the
``usage_events`` row, debits the wallet with a conditional UPDATE, inserts the
ledger entry and upserts the daily rollup, one transaction per 1,000 events.
That is the same set of rows Creditline writes, without HTTP, JSON,
validation, idempotency checks or per-event results. The baseline runs before
and after Creditline (the machine's pace drifts); prints events/s for both,
the ratio against the baseline's mean, and a warning when the two baseline
runs differ by more than 25 %.

With ``--database-url postgresql+psycopg://…`` the baseline is the same loop
in psycopg 3 (one statement at a time, one transaction per 1,000 events) on
the same database and tables, run before Creditline's batches.

    .venv/bin/python bench/batch.py [--batches 40] [--seconds 10] [--database-url URL]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import (  # noqa: E402
    bracketed,
    driver_target,
    free_port,
    peak_rss_mb,
    prepare_creditline,
    start,
    wrk,
)
from core.pricing import usage_cost_ucr  # noqa: E402

BATCH = 1000
USER = "bench@example.com"


def event(tag: str, n: int) -> dict[str, object]:
    return {
        "event_id": f"{tag}-{n}",
        "user": USER,
        "model": "gpt-4o-mini",
        "input_tokens": 1000 + n % 7,
        "output_tokens": 500,
    }


def run_creditline(url: str, key: str, seconds: int) -> dict[str, float]:
    port = free_port()
    proc = start("app:create_app()", _env(url), port)
    try:
        warm = wrk(port, 2, 2, key, f"warm-{time.time_ns()}", "batch.lua", (str(BATCH),))
        tag = f"b{time.time_ns()}"
        result = wrk(port, seconds, 2, key, tag, "batch.lua", (str(BATCH),))
        rss = max(peak_rss_mb(proc))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    if result["errors_status"] or warm["errors_status"]:
        raise SystemExit(f"non-2xx answers: {result}")
    charged, rejected = _count(url, tag)
    # Every event wrk saw answered is stored as charged (in-flight ones at the
    # end may add a few more); none was refused.
    if rejected or charged < result["requests"] * BATCH:
        raise SystemExit(f"expected {result['requests'] * BATCH:.0f} charged, got {charged}")
    return {"events_per_s": result["rps"] * BATCH, "p50_ms": result["p50_ms"], "rss": rss}


def _count(url: str, tag: str) -> tuple[int, int]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        rows = dict(
            conn.execute(
                text(
                    "SELECT status, count(*) FROM usage_events WHERE event_id LIKE :tag"
                    " GROUP BY status"
                ),
                {"tag": f"{tag}-%"},
            ).all()
        )
    engine.dispose()
    return rows.get("charged", 0), rows.get("rejected", 0)


def _env(url: str) -> dict[str, str]:
    return {"DATABASE_URL": url, "SECRET_KEY": "bench", "API_RATE_LIMIT": "100000000/minute"}


def run_raw_sqlite(path: str, batches: int) -> dict[str, float]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")

    @contextmanager
    def transaction() -> Iterator[None]:
        conn.execute("BEGIN IMMEDIATE")
        yield
        conn.execute("COMMIT")

    def one(sql: str, params: Sequence[Any] = ()) -> Any:
        cur = conn.execute(sql, params)
        return cur.fetchone() if cur.description else None

    try:
        return _raw_loop(one, "?", transaction, batches, sqlite=True)
    finally:
        conn.close()


def run_raw_pg(dsn: str, batches: int) -> dict[str, float]:
    import psycopg

    # autocommit: each ``conn.transaction()`` is a transaction of its own. Without
    # it the loop's first SELECT opened one that never ended, and every batch
    # became a savepoint inside it: 40 batches of updates to the same wallet
    # and rollup row piled up in one transaction, slowing the loop tenfold.
    conn = psycopg.connect(dsn, autocommit=True)

    def one(sql: str, params: Sequence[Any] = ()) -> Any:
        cur = conn.execute(sql, params)
        return cur.fetchone() if cur.description else None

    try:
        return _raw_loop(one, "%s", conn.transaction, batches, sqlite=False)
    finally:
        conn.close()


def _raw_loop(
    one: Callable[..., Any],
    mark: str,
    transaction: Callable[[], AbstractContextManager[Any]],
    batches: int,
    *,
    sqlite: bool,
) -> dict[str, float]:
    """The raw side: per event, price it, insert the event row, debit the
    wallet, insert the ledger entry, upsert the rollup; ``mark`` is the
    driver's placeholder, one transaction per 1,000 events."""
    user_id, wallet_id = one(
        f"SELECT u.id, w.id FROM users u JOIN wallets w ON w.user_id = u.id WHERE u.email = {mark}",
        (USER,),
    )
    key_id = one("SELECT max(id) FROM integration_keys")[0]
    model_id, price_in, price_out = one(
        "SELECT id, input_price_uusd_per_m, output_price_uusd_per_m FROM ai_models"
        " WHERE name = 'gpt-4o-mini'"
    )
    rate = one("SELECT credits_per_usd FROM exchange_rate_history ORDER BY id DESC LIMIT 1")[0]
    m = mark
    tag = f"r{time.time_ns()}"
    started = time.perf_counter()
    for b in range(batches):
        stamp = datetime.now(UTC).replace(tzinfo=None)
        now: Any = stamp.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else stamp
        day: Any = now[:10] if sqlite else stamp.date()
        with transaction():
            for i in range(BATCH):
                e = event(tag, b * BATCH + i)
                tokens_in, tokens_out = e["input_tokens"], e["output_tokens"]
                cost = usage_cost_ucr(tokens_in, tokens_out, price_in, price_out, rate)
                event_pk = one(
                    "INSERT INTO usage_events (integration_key_id, event_id, payload_hash,"
                    " user_ref, user_id, model_name, model_id, input_tokens, output_tokens,"
                    " cost_ucr, status, credits_per_usd, occurred_at, received_at)"
                    f" VALUES ({m}, {m}, '', {m}, {m}, {m}, {m}, {m}, {m}, {m}, 'charged', {m},"
                    f" {m}, {m}) RETURNING id",
                    (key_id, e["event_id"], USER, user_id, e["model"], model_id, tokens_in,
                     tokens_out, cost, rate, now, now),
                )[0]  # fmt: skip
                balance = one(
                    f"UPDATE wallets SET balance_ucr = balance_ucr - {m} WHERE id = {m}"
                    f" AND balance_ucr >= {m} RETURNING balance_ucr",
                    (cost, wallet_id, cost),
                )[0]
                one(
                    "INSERT INTO ledger_entries (wallet_id, amount_ucr, balance_after_ucr, kind,"
                    " reference, credits_per_usd, memo, created_at)"
                    f" VALUES ({m}, {m}, {m}, 'usage', {m}, {m}, '', {m})",
                    (wallet_id, -cost, balance, f"usage:{event_pk}", rate, now),
                )
                one(
                    "INSERT INTO usage_daily (user_id, day, model_id, events, input_tokens,"
                    f" output_tokens, cost_ucr) VALUES ({m}, {m}, {m}, 1, {m}, {m}, {m})"
                    " ON CONFLICT (user_id, day, model_id) DO UPDATE SET"
                    " events = usage_daily.events + 1,"
                    " input_tokens = usage_daily.input_tokens + excluded.input_tokens,"
                    " output_tokens = usage_daily.output_tokens + excluded.output_tokens,"
                    " cost_ucr = usage_daily.cost_ucr + excluded.cost_ucr",
                    (user_id, day, model_id, tokens_in, tokens_out, cost),
                )
    elapsed = time.perf_counter() - started
    return {"events_per_s": batches * BATCH / elapsed, "seconds": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=40, help="raw sqlite3: transactions")
    parser.add_argument("--seconds", type=int, default=10, help="Creditline: wrk duration")
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="creditline-batch-"))
    url = args.database_url or f"sqlite:///{work / 'creditline.db'}"
    key = prepare_creditline(url)
    if url.startswith("postgresql"):
        raw_name, target = "raw psycopg", ">= 0.5"
        dsn = driver_target(url)

        def raw() -> dict[str, float]:
            return run_raw_pg(dsn, args.batches)
    else:
        raw_name, target = "raw sqlite3", ">= 20,000 events/s and >= 0.75"
        raw_db = work / "raw.db"
        prepare_creditline(f"sqlite:///{raw_db}")

        def raw() -> dict[str, float]:
            return run_raw_sqlite(str(raw_db), args.batches)

    # The baseline runs before and after Creditline (``bench.ingest.bracketed``).
    before = raw()
    creditline = run_creditline(url, key, args.seconds)
    after = raw()
    raw_rate, warning = bracketed(before["events_per_s"], after["events_per_s"])
    print(
        f"database: {url.split('://')[0]}; {raw_name}: {args.batches} x {BATCH} events, before"
        f" and after Creditline; Creditline: gunicorn 2 workers, wrk 2 connections, {args.seconds}s"
    )
    print(
        f"{raw_name + ' (in-process)':24} {raw_rate:10,.0f} events/s"
        f"   (before {before['events_per_s']:,.0f}, after {after['events_per_s']:,.0f})"
    )
    print(
        f"creditline (HTTP)        {creditline['events_per_s']:10,.0f} events/s"
        f"   peak RSS/worker {creditline['rss']:.0f} MB"
    )
    ratio = creditline["events_per_s"] / raw_rate
    print(f"ratio creditline/raw: {ratio:.2f} (target: {target})")
    if warning:
        print(warning)


if __name__ == "__main__":
    main()
