"""The database going away: connections left dead by a PostgreSQL restart are
replaced without failing the request, and a database that cannot serve
answers 503 with Retry-After (never a 500).

The PostgreSQL tests terminate only this test app's own backends (found by
their ``application_name``), never the shared server.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text

from app import create_app
from core.db import Database
from core.pricing import MICRO as CR
from tests.conftest import PG_URL, USING_PG, AuthActions, Billing, post_form


def _terminate_backends(app: Flask) -> int:
    """End every server process serving ``app`` (as a restart would); how many."""
    name = "creditline " + app.config["DATABASE_SCHEMA"]
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            ended = conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    " AND application_name = :name"
                ),
                {"name": name},
            ).all()
            for _ in range(100):  # termination is asynchronous
                left = conn.execute(
                    text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name"),
                    {"name": name},
                ).scalar()
                if left == 0:
                    break
                time.sleep(0.05)
    finally:
        admin.dispose()
    return len(ended)


def _usage(n: int) -> dict[str, Any]:
    return {
        "event_id": f"after-restart-{n}",
        "user": "alice@example.com",
        "model": "gpt-4o-mini",
        "input_tokens": 1000,
        "output_tokens": 500,
    }


@pytest.mark.skipif(not USING_PG, reason="PostgreSQL only")
def test_requests_after_the_backends_were_terminated_succeed(
    app: Flask, client: FlaskClient, auth: AuthActions, billing: Billing
) -> None:
    billing.user("alice@example.com", 100 * CR)
    headers = {"Authorization": f"Bearer {billing.api_key()}"}
    balance = "/api/v1/balance?user=alice@example.com"
    auth.login("alice@example.com")
    assert client.get(balance, headers=headers).status_code == 200
    assert client.get("/dashboard").status_code == 200

    # Each request below is the first after a "restart": the key check's raw
    # connection (and the pool's) are dead when it starts.
    assert _terminate_backends(app) >= 2
    assert client.get(balance, headers=headers).status_code == 200
    assert _terminate_backends(app) >= 1
    assert client.post("/api/v1/usage", json=_usage(1), headers=headers).status_code == 201
    assert _terminate_backends(app) >= 1
    batch = {"events": [_usage(2), _usage(3)]}
    assert client.post("/api/v1/usage/batch", json=batch, headers=headers).status_code == 200
    assert _terminate_backends(app) >= 1
    assert client.get("/dashboard").status_code == 200
    assert billing.balance("alice@example.com") == 100 * CR - 3 * 4_500_000
    assert billing.problems() == []


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once it is closed


def _unreachable_app(tmp_path: Path, url: str) -> Flask:
    return create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret-key",
            "PASSWORD_HASH_PROFILE": "fast",
            "OUTBOX_WORKER": False,
            "DATABASE_URL": url,
            "RATELIMIT_STORAGE_URI": f"sqlite:///{tmp_path / 'ratelimits.sqlite'}",
        },
        instance_path=str(tmp_path / "instance"),
    )


@pytest.mark.parametrize(
    "where",
    ["postgresql-closed-port", "sqlite-missing-folder", "sqlite-path-is-a-folder"],
)
def test_a_database_that_cannot_be_reached_answers_503(tmp_path: Path, where: str) -> None:
    url = {
        "postgresql-closed-port": f"postgresql+psycopg://root@127.0.0.1:{_closed_port()}/x",
        "sqlite-missing-folder": f"sqlite:///{tmp_path / 'gone' / 'creditline.db'}",
        "sqlite-path-is-a-folder": f"sqlite:///{tmp_path}",
    }[where]
    app = _unreachable_app(tmp_path, url)
    client = app.test_client()
    headers = {"Authorization": "Bearer cl_abc_0123456789"}
    for response in (
        client.get("/api/v1/balance?user=alice@example.com", headers=headers),
        client.post("/api/v1/usage", json=_usage(1), headers=headers),
    ):
        assert response.status_code == 503
        assert response.get_json()["error"]["code"] == "unavailable"
        assert int(response.headers["Retry-After"]) > 0
        assert "psycopg" not in response.get_data(as_text=True)
    # the sign-in page itself (where post_form reads the token) needs no database
    page = post_form(client, "/auth/login", email="alice@example.com", password="x" * 12)
    assert page.status_code == 503
    assert page.mimetype == "text/html"
    assert int(page.headers["Retry-After"]) > 0
    body = page.get_data(as_text=True)
    assert "try again" in body and "sqlite" not in body.lower() and "psycopg" not in body
    app.extensions["creditline.db"].dispose()


def test_a_sqlite_write_lock_that_cannot_be_opened_is_an_operational_error(
    tmp_path: Path,
) -> None:
    """Not an OSError the web layer would turn into a 500."""
    import sqlite3

    db = Database(f"sqlite:///{tmp_path / 'gone' / 'creditline.db'}")
    with pytest.raises(sqlite3.OperationalError, match="write lock"), db.write():
        pass
    db.dispose()
