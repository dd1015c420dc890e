"""The bare ledger app: the rows one usage event must write, and nothing else.

``bench/ingest.py`` measures Creditline against it as well as against the
bare debit app (``bench/baseline_app.py`` / ``bench/baseline_pg_app.py``).
That app writes two rows into two tiny tables; this one writes what the
product must keep for each charged event, in Creditline's own schema: a
database migrated by Creditline's migrations (the same tables, indexes,
constraints and triggers) and holding the same users, wallets, key and model
as the benchmark's Creditline database. Per request, in one transaction:

1. the wallet's debit, only if its available credits (balance − reserved)
   cover the cost, returning the user, the wallet and the new balance;
2. the ``usage_events`` row, with the columns Creditline stores (its UNIQUE
   (key, event id) is what makes a retry harmless);
3. the event's ``usage`` ledger entry (``reference = 'usage:<event pk>'``);
4. the day's rollup (``usage_daily``) upsert.

No key check, rate limit, validation, stored-event lookup, price book (the
key, model, prices and rate are read once, at the first request), overdraft
setting, caps, notifications, metrics or outbox. The ratio of Creditline to
this app is what Creditline's own code costs; this app's ratio to the bare
debit app is what the rows cost.

On SQLite: WAL, ``synchronous=FULL``, ``BEGIN IMMEDIATE`` and SQLite's busy
handler (as ``bench/baseline_app.py``), four statements. On PostgreSQL
(``BASELINE_LEDGER_DB=postgresql://…``): psycopg 3, one connection per
thread, one statement of data-modifying CTEs in a transaction.

    BASELINE_LEDGER_DB=/tmp/ledger.db gunicorn -w 2 bench.baseline_ledger_app:app
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from datetime import UTC, datetime
from typing import Any

import psycopg
from flask import Flask, Response, request

TARGET = os.environ.get("BASELINE_LEDGER_DB", "/tmp/creditline-ledger.db")
PG = TARGET.startswith("postgresql")
app = Flask(__name__)
_local = threading.local()
_constants: dict[str, Any] = {}

_CONSTANTS = (
    "SELECT (SELECT id FROM integration_keys ORDER BY id LIMIT 1),"
    " (SELECT id FROM exchange_rate_history ORDER BY id DESC LIMIT 1),"
    " (SELECT credits_per_usd FROM exchange_rate_history ORDER BY id DESC LIMIT 1),"
    " m.id, m.price_version_id, m.input_price_uusd_per_m, m.output_price_uusd_per_m"
    " FROM ai_models m WHERE m.name = 'gpt-4o-mini'"
)
_DEBIT = (
    "UPDATE wallets SET balance_ucr = balance_ucr - {cost}"
    " WHERE user_id = (SELECT id FROM users WHERE email = {email})"
    " AND balance_ucr - reserved_ucr - {cost} >= 0 RETURNING id, user_id, balance_ucr"
)
_EVENT_COLUMNS = (
    "integration_key_id, event_id, payload_hash, user_ref, user_id, model_name, model_id,"
    " input_tokens, output_tokens, cost_ucr, status, credits_per_usd, input_price_uusd_per_m,"
    " output_price_uusd_per_m, rate_version_id, price_version_id, balance_after_ucr,"
    " occurred_at, received_at"
)
ROLLUP_CONFLICT = (
    " ON CONFLICT (user_id, day, model_id) DO UPDATE SET events = usage_daily.events + 1,"
    " input_tokens = usage_daily.input_tokens + excluded.input_tokens,"
    " output_tokens = usage_daily.output_tokens + excluded.output_tokens,"
    " cost_ucr = usage_daily.cost_ucr + excluded.cost_ucr"
)
# SQLite: four statements.
_SQLITE_DEBIT = _DEBIT.format(cost="?", email="?")
_SQLITE_EVENT = (
    f"INSERT INTO usage_events ({_EVENT_COLUMNS})"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'charged', ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"
)
_SQLITE_ENTRY = (
    "INSERT INTO ledger_entries (wallet_id, amount_ucr, balance_after_ucr, kind, reference,"
    " credits_per_usd, memo, created_at) VALUES (?, ?, ?, 'usage', 'usage:' || ?, ?, ?, ?)"
)
_SQLITE_ROLLUP = (
    "INSERT INTO usage_daily (user_id, day, model_id, events, input_tokens, output_tokens,"
    " cost_ucr) VALUES (?, ?, ?, 1, ?, ?, ?)" + ROLLUP_CONFLICT
)
# PostgreSQL: one statement.
_PG_CHARGE = (
    f"WITH w AS ({_DEBIT.format(cost='%(cost)s', email='%(email)s')}),"
    f" ev AS (INSERT INTO usage_events ({_EVENT_COLUMNS})"
    " SELECT %(key)s, %(event_id)s, %(hash)s, %(email)s, w.user_id, 'gpt-4o-mini', %(model)s,"
    " %(input)s, %(output)s, %(cost)s, 'charged', %(rate)s, %(in_price)s, %(out_price)s,"
    " %(rate_version)s, %(price_version)s, w.balance_ucr, %(now)s, %(now)s FROM w"
    " RETURNING id),"
    " led AS (INSERT INTO ledger_entries (wallet_id, amount_ucr, balance_after_ucr, kind,"
    " reference, credits_per_usd, memo, created_at) SELECT w.id, -%(cost)s, w.balance_ucr,"
    " 'usage', 'usage:' || ev.id, %(rate)s, %(memo)s, %(now)s FROM w, ev),"
    " roll AS (INSERT INTO usage_daily (user_id, day, model_id, events, input_tokens,"
    " output_tokens, cost_ucr) SELECT w.user_id, %(day)s, %(model)s, 1, %(input)s, %(output)s,"
    " %(cost)s FROM w" + ROLLUP_CONFLICT + ")"
    " SELECT ev.id, w.balance_ucr FROM ev, w"
)


def connection() -> Any:
    conn = getattr(_local, "conn", None)
    if conn is None:
        if PG:
            conn = psycopg.connect(TARGET)
        else:
            conn = sqlite3.connect(TARGET, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=5000")
        _local.conn = conn
    if not _constants:
        row = conn.execute(_CONSTANTS).fetchone()
        if PG:
            conn.rollback()
        names = ("key", "rate_version", "rate", "model", "price_version", "in_price", "out_price")
        _constants.update(zip(names, row, strict=True))
    return conn


def _charge_sqlite(conn: sqlite3.Connection, v: dict[str, Any]) -> tuple[int, int] | None:
    now = v["now"].isoformat(" ", "microseconds")
    conn.execute("BEGIN IMMEDIATE")
    try:
        wallet = conn.execute(_SQLITE_DEBIT, (v["cost"], v["email"], v["cost"])).fetchone()
        if wallet is None:
            conn.execute("ROLLBACK")
            return None
        wallet_id, user_id, balance = wallet
        event_pk = conn.execute(
            _SQLITE_EVENT,
            (
                v["key"],
                v["event_id"],
                v["hash"],
                v["email"],
                user_id,
                "gpt-4o-mini",
                v["model"],
                v["input"],
                v["output"],
                v["cost"],
                v["rate"],
                v["in_price"],
                v["out_price"],
                v["rate_version"],
                v["price_version"],
                balance,
                now,
                now,
            ),
        ).fetchone()[0]
        conn.execute(
            _SQLITE_ENTRY, (wallet_id, -v["cost"], balance, event_pk, v["rate"], v["memo"], now)
        )
        conn.execute(
            _SQLITE_ROLLUP,
            (user_id, v["now"].date().isoformat(), v["model"], v["input"], v["output"], v["cost"]),
        )
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise
    return event_pk, balance


def _charge_pg(conn: psycopg.Connection, v: dict[str, Any]) -> tuple[int, int] | None:
    with conn.transaction():
        return conn.execute(_PG_CHARGE, {**v, "day": v["now"].date()}).fetchone()


@app.post("/api/v1/usage")
def usage() -> Response:
    raw = request.get_data()
    body = json.loads(raw)
    conn = connection()
    c = _constants
    usd_e12 = body["input_tokens"] * c["in_price"] + body["output_tokens"] * c["out_price"]
    cost = -(-usd_e12 * c["rate"] // 1_000_000)  # µcr, rounded up (as Creditline prices)
    values = {
        **c,
        "event_id": body["event_id"],
        "email": body["user"],
        "input": body["input_tokens"],
        "output": body["output_tokens"],
        "cost": cost,
        "hash": hashlib.sha256(raw).hexdigest(),
        "memo": f"gpt-4o-mini: {body['input_tokens']} in / {body['output_tokens']} out",
        "now": datetime.now(UTC).replace(tzinfo=None),
    }
    charged = (_charge_pg if PG else _charge_sqlite)(conn, values)
    if charged is None:
        return Response('{"error": "insufficient_credits"}', 402, mimetype="application/json")
    return Response(
        json.dumps(
            {"event_id": body["event_id"], "status": "charged", "balance_after": charged[1]}
        ),
        201,
        mimetype="application/json",
    )
