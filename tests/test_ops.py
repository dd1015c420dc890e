"""/healthz, /metrics and ``flask backup`` (operators' endpoints and command)."""

from __future__ import annotations

import re
import socket
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from core.pricing import MICRO
from tests.api_client import Api
from tests.conftest import USING_PG, Billing, make_test_app


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sample(text: str, name: str, labels: str = "") -> float:
    found = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_healthz_answers_ok_when_the_database_is_reachable(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "ok\n"
    assert "Set-Cookie" not in response.headers


def test_healthz_answers_503_when_the_database_is_down(tmp_path: Path) -> None:
    down = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "k",
            "DATABASE_URL": f"postgresql+psycopg://root@127.0.0.1:{_closed_port()}/none",
            "RATELIMIT_STORAGE_URI": "memory://",
        }
    )
    response = down.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_data(as_text=True) == "database unreachable\n"
    down.extensions["creditline.db"].dispose()


def test_metrics_count_committed_charges_and_rejections(
    client: FlaskClient, api: Api, billing: Billing
) -> None:
    billing.user("alice@example.com", 10 * MICRO)
    billing.user("bob@example.com", 0)
    before = client.get("/metrics").get_data(as_text=True)
    assert api.usage(event_id="m-1").status_code == 201
    assert api.usage(event_id="m-1").status_code == 200  # a re-sent id
    assert api.usage(event_id="m-2", user="bob@example.com").status_code == 402
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    after = response.get_data(as_text=True)
    name = "creditline_usage_events_total"
    for outcome in ("charged", "duplicate", "rejected"):
        labels = f'{{outcome="{outcome}"}}'
        assert _sample(after, name, labels) - _sample(before, name, labels) == 1
    charged = _sample(after, "creditline_charged_ucr_total") - _sample(
        before, "creditline_charged_ucr_total"
    )
    # Prometheus values are float64: exact below 2**53, and the process's
    # counter may already be far above that after the other tests' charges.
    resolution = max(1.0, _sample(after, "creditline_charged_ucr_total") * 2.0**-51)
    expected = 10 * MICRO - billing.balance("alice@example.com")
    assert expected > 0 and abs(charged - expected) <= resolution
    assert 'creditline_request_seconds_bucket{area="api"' in after


def test_metrics_want_the_bearer_token_when_one_is_set(db_config: dict[str, Any]) -> None:
    app: Flask = make_test_app(db_config, METRICS_TOKEN="s3cret")
    try:
        client = app.test_client()
        assert client.get("/metrics").status_code == 401
        wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert "creditline_" not in wrong.get_data(as_text=True)
        right = client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
        assert right.status_code == 200
        assert "creditline_usage_events_total" in right.get_data(as_text=True)
        assert client.get("/healthz").status_code == 200  # health stays open
    finally:
        app.extensions["creditline.db"].dispose()


@pytest.mark.skipif(USING_PG, reason="flask backup copies SQLite databases")
def test_backup_while_writes_run_gives_a_copy_that_passes_check_ledger(
    app: Flask, billing: Billing, tmp_path: Path
) -> None:
    billing.user("alice@example.com", 1000 * MICRO)
    stop = threading.Event()
    written: list[int] = []
    failures: list[BaseException] = []

    def write() -> None:
        try:
            while not stop.is_set() or len(written) < 20:
                billing.debit(f"b-{len(written)}", "alice@example.com", 10, 10)
                written.append(1)
        except BaseException as exc:  # reported below
            failures.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        while len(written) < 5 and not failures:  # the writer is under way
            threading.Event().wait(0.01)
        target = tmp_path / "copy" / "backup.db"
        target.parent.mkdir()
        result = app.test_cli_runner().invoke(args=["backup", str(target)])
    finally:
        stop.set()
        writer.join()
    assert not failures
    assert result.exit_code == 0, result.output
    assert "integrity ok" in result.output
    assert not (target.parent / "backup.db.partial").exists()
    conn = sqlite3.connect(target)
    try:
        mode = conn.execute("PRAGMA journal_mode").fetchone()
        copied_events = conn.execute("SELECT count(*) FROM usage_events").fetchone()[0]
    finally:
        conn.close()
    assert mode == ("delete",)  # a self-contained file, no -wal beside it
    assert 5 <= copied_events <= len(written)  # a snapshot taken mid-writes
    copy = make_test_app(
        {"DATABASE_URL": f"sqlite:///{target}", "RATELIMIT_STORAGE_URI": "memory://"}
    )
    try:
        checked = copy.test_cli_runner().invoke(args=["check-ledger"])
        assert checked.exit_code == 0, checked.output
        assert checked.output == "ledger ok\n"
    finally:
        copy.extensions["creditline.db"].dispose()
    again = app.test_cli_runner().invoke(args=["backup", str(target)])
    assert again.exit_code == 1
    assert "exists" in again.output


@pytest.mark.skipif(not USING_PG, reason="the PostgreSQL refusal")
def test_backup_refuses_postgresql_and_points_at_pg_dump(app: Flask, tmp_path: Path) -> None:
    result = app.test_cli_runner().invoke(args=["backup", str(tmp_path / "x.db")])
    assert result.exit_code == 1
    assert "pg_dump" in result.output
    assert "Traceback" not in result.output
