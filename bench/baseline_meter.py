"""The bare metering proxy: the least a gateway that cannot overdraw must do.

``bench/gateway.py`` measures Creditline against it as well as against the
bare pass-through proxy (``bench/baseline_proxy.py``). It is that proxy plus
the two write transactions every metered call needs, on the same database
driver and settings as Creditline, and nothing else:

1. **hold**, committed before the upstream is called: a conditional UPDATE
   that reserves the call's worst case only if the wallet's available credits
   cover it, and the INSERT of the hold row;
2. the upstream call (one pooled ``httpx.Client``), its JSON answer parsed
   for ``usage``;
3. **settle**: a conditional UPDATE that closes the hold only if it is still
   active, then the wallet update (reservation freed, charge debited) and the
   usage event row.

No key table (the bearer token names the wallet), no prices table, no ledger
entry, no daily rollup, no expiry, no rate limit, no group commit, no audit.
On SQLite: WAL, ``BEGIN IMMEDIATE``, ``synchronous`` from ``BASELINE_SYNC``
(default FULL, as Creditline's default) and SQLite's busy handler; on
PostgreSQL (``BASELINE_METER_DB=postgresql://…``): psycopg 3, one connection per
thread, ``READ COMMITTED``, the wallet's row lock taken by the UPDATE.

    BASELINE_METER_DB=/tmp/meter.db UPSTREAM_URL=http://127.0.0.1:PORT/v1 \\
        gunicorn -c deploy/gunicorn.conf.py bench.baseline_meter:app

Keys are ``meter-0`` … ``meter-19`` (``setup`` creates the wallets).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from typing import Any

import httpx
import psycopg
from flask import Flask, Response, request

UPSTREAM = os.environ.get("UPSTREAM_URL", "http://127.0.0.1:9/v1")
TARGET = os.environ.get("BASELINE_METER_DB", "")
SYNC = os.environ.get("BASELINE_SYNC", "FULL")
WALLETS = 20
SCHEMA = "bench_meter"
PG = TARGET.startswith("postgresql")

client = httpx.Client(limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100))
app = Flask(__name__)
_local = threading.local()

TABLES = """
CREATE TABLE wallets (id INTEGER PRIMARY KEY, token TEXT UNIQUE, balance BIGINT, reserved BIGINT);
CREATE TABLE holds (id {serial} PRIMARY KEY, wallet_id INTEGER, amount BIGINT, state TEXT);
CREATE TABLE events (id {serial} PRIMARY KEY, hold_id BIGINT UNIQUE, wallet_id INTEGER,
                     input_tokens INTEGER, output_tokens INTEGER, cost BIGINT)
"""
HOLD = (
    "UPDATE wallets SET reserved = reserved + {p} WHERE token = {p}"
    " AND balance - reserved >= {p} RETURNING id"
)
INSERT_HOLD = (
    "INSERT INTO holds (wallet_id, amount, state) VALUES ({p}, {p}, 'active') RETURNING id"
)
CLOSE = "UPDATE holds SET state = 'settled' WHERE id = {p} AND state = 'active'"
CHARGE = "UPDATE wallets SET reserved = reserved - {p}, balance = balance - {p} WHERE id = {p}"
EVENT = (
    "INSERT INTO events (hold_id, wallet_id, input_tokens, output_tokens, cost)"
    " VALUES ({p}, {p}, {p}, {p}, {p})"
)


# The request's statements in this driver's placeholder style, formatted once.
HOLD, INSERT_HOLD, CLOSE, CHARGE, EVENT = (
    statement.format(p="%s" if PG else "?")
    for statement in (HOLD, INSERT_HOLD, CLOSE, CHARGE, EVENT)
)


def connection() -> Any:
    conn = getattr(_local, "conn", None)
    if conn is None:
        if PG:
            conn = psycopg.connect(TARGET, autocommit=True, options=f"-c search_path={SCHEMA}")
        else:
            conn = sqlite3.connect(TARGET, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={SYNC}")
            conn.execute("PRAGMA busy_timeout=5000")
        _local.conn = conn
    return conn


def setup(target: str) -> list[str]:
    """Fresh tables and ``WALLETS`` funded wallets; returns their bearer tokens."""
    tokens = [f"meter-{n}" for n in range(WALLETS)]
    pg = target.startswith("postgresql")
    ddl = TABLES.format(serial="BIGSERIAL" if pg else "INTEGER").split(";")
    fund = "INSERT INTO wallets (id, token, balance, reserved) VALUES ({p}, {p}, {p}, 0)"
    rows = [(n + 1, token, 10**15) for n, token in enumerate(tokens)]
    if pg:
        with psycopg.connect(target, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
            conn.execute(f"CREATE SCHEMA {SCHEMA}")
            conn.execute(f"SET search_path = {SCHEMA}")
            for statement in ddl:
                conn.execute(statement)
            conn.cursor().executemany(fund.format(p="%s"), rows)
        return tokens
    conn = sqlite3.connect(target, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    for statement in ddl:
        conn.execute(statement)
    conn.executemany(fund.format(p="?"), rows)
    conn.close()
    return tokens


def _begin(conn: Any) -> None:
    conn.execute("BEGIN" if PG else "BEGIN IMMEDIATE")


def call_upstream(body: bytes) -> tuple[httpx.Response, int, int]:
    """Forward a chat call; the upstream's answer and the tokens it reports."""
    upstream = client.post(
        f"{UPSTREAM}/chat/completions",
        content=body,
        headers={"Content-Type": "application/json", "Authorization": "Bearer bench"},
        timeout=60.0,
    )
    usage = json.loads(upstream.content).get("usage") or {}
    return upstream, usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)


@app.get("/")
def index() -> str:
    return "ok"


@app.post("/v1/chat/completions")
def chat() -> Response:
    token = request.headers.get("Authorization", "").partition(" ")[2]
    body = request.get_data()
    worst = 10_000 * (json.loads(body).get("max_tokens") or 4096)
    conn = connection()
    _begin(conn)
    wallet = conn.execute(HOLD, (worst, token, worst)).fetchone()
    if wallet is None:
        conn.execute("ROLLBACK")
        return Response('{"error": "insufficient credits"}', 402, mimetype="application/json")
    hold = conn.execute(INSERT_HOLD, (wallet[0], worst)).fetchone()[0]
    conn.execute("COMMIT")

    upstream, tokens_in, tokens_out = call_upstream(body)
    cost = 1_500 * tokens_in + 6_000 * tokens_out

    _begin(conn)
    if conn.execute(CLOSE, (hold,)).rowcount == 1:
        conn.execute(CHARGE, (worst, cost, wallet[0]))
        conn.execute(EVENT, (hold, wallet[0], tokens_in, tokens_out, cost))
    conn.execute("COMMIT")
    return Response(
        upstream.content,
        status=upstream.status_code,
        content_type=upstream.headers["content-type"],
    )
