"""The baseline for benchmark 1: the bare minimum a debit endpoint must do.

Parse JSON, then one sqlite3 transaction (BEGIN IMMEDIATE): insert the event
row (unique id) and the conditional balance update. Same PRAGMAs as
Creditline (WAL, synchronous=FULL). No auth, no pricing, no ledger, no rollup:
the ratio against it shows what everything else costs.

    BASELINE_DB=/tmp/baseline.db gunicorn -w 2 bench.baseline_app:app
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading

from flask import Flask, Response, request

DB = os.environ.get("BASELINE_DB", "/tmp/creditline-baseline.db")
app = Flask(__name__)
_local = threading.local()


def connection() -> sqlite3.Connection:
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = sqlite3.connect(DB, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=5000")
        _local.conn = conn
    return conn


def setup(path: str) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        PRAGMA journal_mode=WAL;
        CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, event_id TEXT UNIQUE, cost INTEGER);
        CREATE TABLE IF NOT EXISTS wallet (id INTEGER PRIMARY KEY, balance INTEGER);
        INSERT OR IGNORE INTO wallet (id, balance) VALUES (1, 9000000000000000000);
        """
    )
    conn.close()


@app.post("/api/v1/usage")
def usage() -> Response:
    body = json.loads(request.get_data())
    cost = (body["input_tokens"] * 150_000 + body["output_tokens"] * 600_000) * 10_000 // 1_000_000
    conn = connection()
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("INSERT INTO events (event_id, cost) VALUES (?, ?)", (body["event_id"], cost))
        conn.execute(
            "UPDATE wallet SET balance = balance - ? WHERE id = 1 AND balance >= ?", (cost, cost)
        )
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise
    return Response(
        json.dumps({"event_id": body["event_id"], "status": "charged"}),
        201,
        mimetype="application/json",
    )
