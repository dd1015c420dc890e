"""The PostgreSQL baseline for benchmark 1: the bare minimum a debit endpoint
must do, on psycopg 3.

Parse JSON, then one transaction: insert the event row (unique id) and the
conditional balance update of the named user's wallet, commit. One
connection per thread, no pool, no auth, no pricing, no ledger, no rollup:
the ratio against it shows what everything else costs on PostgreSQL.

    BASELINE_PG=postgresql://root@127.0.0.1/test gunicorn -w 2 bench.baseline_pg_app:app
"""

from __future__ import annotations

import json
import os
import threading

import psycopg
from flask import Flask, Response, request

DSN = os.environ.get("BASELINE_PG", "postgresql://root@127.0.0.1:5432/test")
SCHEMA = "bench_baseline"
app = Flask(__name__)
_local = threading.local()


def connection() -> psycopg.Connection:
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = psycopg.connect(DSN, options=f"-c search_path={SCHEMA}")
        _local.conn = conn
    return conn


def setup(dsn: str, users: list[str]) -> None:
    """A fresh schema with the event table and one funded wallet per user."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        conn.execute(f"CREATE SCHEMA {SCHEMA}")
        conn.execute(
            f"CREATE TABLE {SCHEMA}.events (id BIGSERIAL PRIMARY KEY, event_id TEXT UNIQUE,"
            " user_email TEXT, cost BIGINT)"
        )
        conn.execute(
            f"CREATE TABLE {SCHEMA}.wallets (id SERIAL PRIMARY KEY, email TEXT UNIQUE,"
            " balance BIGINT)"
        )
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {SCHEMA}.wallets (email, balance) VALUES (%s, 9000000000000000000)",
                [(email,) for email in users],
            )


@app.post("/api/v1/usage")
def usage() -> Response:
    body = json.loads(request.get_data())
    cost = (body["input_tokens"] * 150_000 + body["output_tokens"] * 600_000) * 10_000 // 1_000_000
    conn = connection()
    with conn.transaction():
        conn.execute(
            "INSERT INTO events (event_id, user_email, cost) VALUES (%s, %s, %s)",
            (body["event_id"], body["user"], cost),
        )
        conn.execute(
            "UPDATE wallets SET balance = balance - %s WHERE email = %s AND balance >= %s",
            (cost, body["user"], cost),
        )
    return Response(
        json.dumps({"event_id": body["event_id"], "status": "charged"}),
        201,
        mimetype="application/json",
    )
