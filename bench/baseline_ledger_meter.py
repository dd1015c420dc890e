"""The bare ledger meter: the rows one metered gateway call must write, and nothing else.

``bench/gateway.py`` measures Creditline's ``/v1`` against it as well as
against the bare metering proxy (``bench/baseline_meter.py``). That meter
writes three tiny rows; this one writes what the product keeps for each
call, in Creditline's own schema: a database migrated by Creditline's
migrations (the same tables, indexes, constraints and triggers) holding the
same users, keys, model and prices as the benchmark's Creditline database.

1. **Hold**, committed before the upstream is called, without waiting for
   the disk (as Creditline's hold): the wallet's reservation, only if its
   available credits (balance − reserved) cover the call's worst case; the
   ``holds`` row with the snapshot Creditline stores; the key's reservation.
2. The upstream call (``bench.baseline_meter.call_upstream``, the bare
   metering proxy's own).
3. **Settle**, durable: the hold moved out of ``active`` (only if it still
   is), the wallet's reservation freed and the charge debited, the
   ``usage_events`` row, its ``usage`` ledger entry, the day's rollup upsert
   and the key's spent and reserved.

No key check beyond a dictionary lookup of the key's digest, no key limit,
rate limit, validation, price book (model, prices and rate are read once),
expiry, concurrency cap, metrics or outbox. Creditline / this meter is what
Creditline's own code costs; this meter / the bare metering proxy is what
the rows cost.

On PostgreSQL (``BASELINE_LEDGER_METER_DB=postgresql://…``): psycopg 3, two
connections per thread in autocommit mode (one with
``synchronous_commit=off``, for holds), and each transaction is one statement
of data-modifying CTEs: one round trip each. On SQLite: WAL,
``synchronous=FULL``, ``BEGIN IMMEDIATE``, SQLite's busy handler, the
statements one after another.

    BASELINE_LEDGER_METER_DB=/tmp/ledger.db UPSTREAM_URL=http://127.0.0.1:PORT/v1 \\
        gunicorn -c deploy/gunicorn.conf.py bench.baseline_ledger_meter:app
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from flask import Flask, Response, request

from bench.baseline_ledger_app import ROLLUP_CONFLICT
from bench.baseline_meter import call_upstream
from core.pricing import usage_cost_ucr

TARGET = os.environ.get("BASELINE_LEDGER_METER_DB", "/tmp/creditline-ledger-meter.db")
PG = TARGET.startswith("postgresql")
app = Flask(__name__)
_local = threading.local()
_loaded: dict[str, Any] = {}
_load_lock = threading.Lock()

_CONSTANTS = (
    "SELECT (SELECT id FROM exchange_rate_history ORDER BY id DESC LIMIT 1),"
    " (SELECT credits_per_usd FROM exchange_rate_history ORDER BY id DESC LIMIT 1),"
    " m.id, m.price_version_id, m.input_price_uusd_per_m, m.output_price_uusd_per_m"
    " FROM ai_models m WHERE m.name = 'gpt-4o-mini'"
)
_KEYS = (
    "SELECT k.key_hash, k.id, k.name, u.id, u.email, w.id FROM user_api_keys k"
    " JOIN users u ON u.id = k.user_id JOIN wallets w ON w.user_id = u.id"
)
_HOLD_VALUES = (
    ":w, :user, :k, :model, :source, :amount, :max_in, :max_out, :rate, :in_price,"
    " :out_price, :rate_version, :price_version, 'active', 0, :now, :expires"
)
_HOLD_COLUMNS = (
    "wallet_id, user_id, user_key_id, model_id, source, amount_ucr, max_input_tokens,"
    " max_output_tokens, credits_per_usd, input_price_uusd_per_m, output_price_uusd_per_m,"
    " rate_version_id, price_version_id, status, shortfall_ucr, created_at, expires_at"
)
_RESERVE = (
    "UPDATE wallets SET reserved_ucr = reserved_ucr + :amount"
    " WHERE id = :w AND balance_ucr - reserved_ucr >= :amount RETURNING id"
)
_KEY_RESERVE = "UPDATE user_api_keys SET reserved_ucr = reserved_ucr + :amount WHERE id = :k"
_CLOSE = (
    "UPDATE holds SET status = 'settled', closed_at = :now, charged_ucr = :charge,"
    " shortfall_ucr = 0 WHERE id = :hold AND status = 'active' RETURNING id"
)
_CHARGE = (
    "UPDATE wallets SET reserved_ucr = reserved_ucr - :amount, balance_ucr = balance_ucr - :charge"
    " WHERE id = :w"
)
_EVENT_COLUMNS = (
    "hold_id, user_key_id, source, disconnected, event_id, payload_hash, user_ref, user_id,"
    " model_name, model_id, input_tokens, output_tokens, cost_ucr, status, credits_per_usd,"
    " input_price_uusd_per_m, output_price_uusd_per_m, rate_version_id, price_version_id,"
    " balance_after_ucr, occurred_at, received_at"
)
_EVENT_VALUES = (
    ":hold, :k, :source, FALSE, :event_id, :hash, :email, :user, 'gpt-4o-mini', :model, :input,"
    " :output, :charge, 'charged', :rate, :in_price, :out_price, :rate_version, :price_version,"
)
_ENTRY_COLUMNS = (
    "wallet_id, amount_ucr, balance_after_ucr, kind, reference, credits_per_usd, memo, created_at"
)
_ROLLUP = (
    "INSERT INTO usage_daily (user_id, day, model_id, events, input_tokens, output_tokens,"
    " cost_ucr) {source}" + ROLLUP_CONFLICT
)
_KEY_SETTLE = (
    "UPDATE user_api_keys SET reserved_ucr = reserved_ucr - :amount,"
    " spent_ucr = spent_ucr + :charge WHERE id = :k"
)

# PostgreSQL: each transaction one statement, its parts chained so that
# nothing is written unless the part before it was (key last, as Creditline).
_PG_HOLD = (
    f"WITH w AS ({_RESERVE}),"
    f" h AS (INSERT INTO holds ({_HOLD_COLUMNS}) SELECT {_HOLD_VALUES} FROM w RETURNING id),"
    f" k AS ({_KEY_RESERVE} AND EXISTS (SELECT 1 FROM h))"
    " SELECT id FROM h"
)
_PG_SETTLE = (
    f"WITH c AS ({_CLOSE}),"
    f" w AS ({_CHARGE} AND EXISTS (SELECT 1 FROM c) RETURNING id, balance_ucr),"
    f" ev AS (INSERT INTO usage_events ({_EVENT_COLUMNS})"
    f" SELECT {_EVENT_VALUES} w.balance_ucr, :now, :now FROM w RETURNING id),"
    f" led AS (INSERT INTO ledger_entries ({_ENTRY_COLUMNS}) SELECT w.id, -:charge,"
    " w.balance_ucr, 'usage', 'usage:' || ev.id, :rate, :memo, :now FROM w, ev),"
    " roll AS ("
    + _ROLLUP.format(source="SELECT :user, :day, :model, 1, :input, :output, :charge FROM w")
    + f"), k AS ({_KEY_SETTLE} AND EXISTS (SELECT 1 FROM w))"
    " SELECT balance_ucr FROM w"
)
_NAMED = re.compile(r"(?<!:):([a-z_]+)")
_PG_HOLD, _PG_SETTLE = (_NAMED.sub(r"%(\1)s", sql) for sql in (_PG_HOLD, _PG_SETTLE))


def _connections() -> tuple[Any, Any]:
    """This thread's (hold, settle) connections; the same one on SQLite."""
    pair = getattr(_local, "pair", None)
    if pair is None:
        if PG:
            pair = (
                psycopg.connect(TARGET, autocommit=True, options="-c synchronous_commit=off"),
                psycopg.connect(TARGET, autocommit=True),
            )
        else:
            conn = sqlite3.connect(TARGET, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=5000")
            pair = (conn, conn)
        _local.pair = pair
    if not _loaded:
        with _load_lock:
            if not _loaded:
                row = pair[1].execute(_CONSTANTS).fetchone()
                names = ("rate_version", "rate", "model", "price_version", "in_price", "out_price")
                _loaded["constants"] = dict(zip(names, row, strict=True))
                _loaded["keys"] = {r[0]: r[1:] for r in pair[1].execute(_KEYS).fetchall()}
    return pair


def _cost(tokens_in: int, tokens_out: int, c: dict[str, Any]) -> int:
    return usage_cost_ucr(tokens_in, tokens_out, c["in_price"], c["out_price"], c["rate"])


def _stamp(moment: datetime) -> Any:
    return moment if PG else moment.isoformat(" ", "microseconds")


def _hold(conn: Any, v: dict[str, Any]) -> int | None:
    if PG:
        row = conn.execute(_PG_HOLD, v).fetchone()
        return None if row is None else int(row[0])
    conn.execute("BEGIN IMMEDIATE")
    try:
        if conn.execute(_RESERVE, v).fetchone() is None:
            conn.execute("ROLLBACK")
            return None
        hold = conn.execute(
            f"INSERT INTO holds ({_HOLD_COLUMNS}) VALUES ({_HOLD_VALUES}) RETURNING id", v
        ).fetchone()[0]
        conn.execute(_KEY_RESERVE, v)
        conn.execute("COMMIT")
        return int(hold)
    except Exception:
        conn.execute("ROLLBACK")
        raise


def _settle(conn: Any, v: dict[str, Any]) -> None:
    if PG:
        conn.execute(_PG_SETTLE, v)
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if conn.execute(_CLOSE, v).fetchone() is not None:
            (balance,) = conn.execute(_CHARGE + " RETURNING balance_ucr", v).fetchone()
            event = conn.execute(
                f"INSERT INTO usage_events ({_EVENT_COLUMNS})"
                f" VALUES ({_EVENT_VALUES} :balance, :now, :now) RETURNING id",
                {**v, "balance": balance},
            ).fetchone()[0]
            conn.execute(
                f"INSERT INTO ledger_entries ({_ENTRY_COLUMNS}) VALUES (:w, -:charge, :balance,"
                " 'usage', 'usage:' || :event, :rate, :memo, :now)",
                {**v, "balance": balance, "event": event},
            )
            conn.execute(
                _ROLLUP.format(source="VALUES (:user, :day, :model, 1, :input, :output, :charge)"),
                v,
            )
            conn.execute(_KEY_SETTLE, v)
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise


@app.get("/")
def index() -> str:
    return "ok"


@app.post("/v1/chat/completions")
def chat() -> Response:
    holds_conn, settle_conn = _connections()
    token = request.headers.get("Authorization", "").partition(" ")[2]
    holder = _loaded["keys"].get(hashlib.sha256(token.encode()).hexdigest())
    if holder is None:
        return Response('{"error": "invalid key"}', 401, mimetype="application/json")
    key_id, key_name, user_id, email, wallet_id = holder
    body = request.get_data()
    max_in, max_out = len(body), json.loads(body).get("max_tokens") or 4096
    c = _loaded["constants"]
    now = datetime.now(UTC).replace(tzinfo=None)
    v = {
        **c,
        "w": wallet_id,
        "user": user_id,
        "k": key_id,
        "email": email,
        "source": key_name,
        "amount": _cost(max_in, max_out, c),
        "max_in": max_in,
        "max_out": max_out,
        "now": _stamp(now),
        "expires": _stamp(now + timedelta(minutes=10)),
    }
    hold = _hold(holds_conn, v)
    if hold is None:
        return Response('{"error": "insufficient credits"}', 402, mimetype="application/json")
    upstream, tokens_in, tokens_out = call_upstream(body)
    now = datetime.now(UTC).replace(tzinfo=None)
    v.update(
        hold=hold,
        input=tokens_in,
        output=tokens_out,
        charge=min(_cost(tokens_in, tokens_out, c), v["amount"]),
        event_id=f"hold-{hold}",
        hash=hashlib.sha256(f"hold:{hold}".encode()).hexdigest(),
        memo=f"gpt-4o-mini: {tokens_in} in / {tokens_out} out ({key_name})",
        now=_stamp(now),
        day=now.date() if PG else now.date().isoformat(),
    )
    _settle(settle_conn, v)
    return Response(
        upstream.content,
        status=upstream.status_code,
        content_type=upstream.headers["content-type"],
    )
