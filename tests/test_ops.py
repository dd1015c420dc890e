"""/healthz, /metrics and ``flask backup`` (operators' endpoints and command)."""

from __future__ import annotations

import socket
import sqlite3
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from core.pricing import MICRO
from tests.api_client import Api
from tests.conftest import USING_PG, Billing, make_test_app
from tests.gunicorn_server import Gunicorn
from tests.metrics_reader import delta, parse, value


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
            # Left on, its first request starts the outbox thread, which then
            # polls the closed port for the rest of the session and prints a
            # traceback once pytest stops capturing output.
            "OUTBOX_WORKER": False,
        }
    )
    response = down.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_data(as_text=True) == "database unreachable\n"
    down.extensions["creditline.db"].dispose()


def test_a_new_app_renders_from_compiled_templates(db_config: dict[str, Any], app: Flask) -> None:
    """Templates compiled by one app (worker) are kept on disk, and the next
    one renders its first page from them without compiling anything."""
    assert app.test_client().get("/auth/login").status_code == 200
    second = make_test_app(db_config)

    def compile_again(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("a template was compiled again")

    second.jinja_env.compile = compile_again  # type: ignore[method-assign]
    response = second.test_client().get("/auth/login")
    assert response.status_code == 200
    assert 'name="password"' in response.get_data(as_text=True)
    second.extensions["creditline.db"].dispose()


def test_metrics_count_committed_charges_and_rejections(
    client: FlaskClient, api: Api, billing: Billing
) -> None:
    billing.user("alice@example.com", 10 * MICRO)
    billing.user("bob@example.com", 0)
    before = parse(client.get("/metrics").get_data(as_text=True))
    assert api.usage(event_id="m-1").status_code == 201
    assert api.usage(event_id="m-1").status_code == 200  # a re-sent id
    assert api.usage(event_id="m-2", user="bob@example.com").status_code == 402
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    after = parse(response.get_data(as_text=True))
    name = "creditline_usage_events_total"
    for outcome in ("charged", "duplicate", "rejected"):
        assert delta(before, after, name, outcome=outcome) == 1
    total = "creditline_charged_ucr_total"
    charged = value(after, total) - value(before, total)
    # Prometheus values are float64: exact below 2**53, and the process's
    # counter may already be far above that after the other tests' charges
    # (the two-worker test below checks it exactly, on fresh counters).
    resolution = max(1.0, value(after, total) * 2.0**-51)
    expected = 10 * MICRO - billing.balance("alice@example.com")
    assert expected > 0 and abs(charged - expected) <= resolution
    assert delta(before, after, "creditline_request_seconds_count", area="api") == 3


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
    assert target.stat().st_mode & 0o777 == 0o600  # owner-only, whatever the umask
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


COST = 4_500_000  # 1,000 in + 500 out of gpt-4o-mini at 10,000 credits/USD


def test_metrics_add_up_over_two_gunicorn_workers(
    db_config: dict[str, Any], tmp_path: Path
) -> None:
    """Multiprocess mode as deployed: two workers of the committed gunicorn
    config, each counting its own requests; /metrics (whichever worker answers
    it) gives their sum, checked through prometheus_client's parser against
    what was sent."""
    app = make_test_app(db_config)
    billing = Billing(app)
    billing.user("alice@example.com", 1_000 * COST)
    billing.user("bob@example.com", 0)
    key = billing.api_key("metrics")
    headers = {"Authorization": f"Bearer {key}", "Connection": "close"}
    token = {"Authorization": "Bearer scrape-me"}
    sent: Counter[str] = Counter()
    try:
        with Gunicorn(db_config, tmp_path, env={"METRICS_TOKEN": "scrape-me"}) as server:
            assert requests.get(server.url + "/metrics", timeout=10).status_code == 401
            before = parse(requests.get(server.url + "/metrics", headers=token, timeout=10).text)

            def report(n: int) -> int:
                user = "bob@example.com" if n % 5 == 4 else "alice@example.com"
                body = {"event_id": f"w-{n // 2}" if user != "bob@example.com" else f"b-{n}",
                        "user": user, "model": "gpt-4o-mini",
                        "input_tokens": 1000, "output_tokens": 500}  # fmt: skip
                url = server.url + "/api/v1/usage"
                return requests.post(url, json=body, headers=headers, timeout=30).status_code

            # Batches of parallel single-connection requests until both workers
            # have served usage reports (the kernel hands connections to either).
            n = 0
            with ThreadPoolExecutor(4) as pool:
                while len(server.served_by("POST", "/api/v1/usage")) < 2 or n < 40:
                    assert n < 2_000, "one worker never served a report"
                    for status in pool.map(report, range(n, n + 20)):
                        sent[status] += 1
                    n += 20
            after = parse(requests.get(server.url + "/metrics", headers=token, timeout=10).text)
            workers = server.served_by("POST", "/api/v1/usage")
    finally:
        charged_balance = billing.balance("alice@example.com")
        app.extensions["creditline.db"].dispose()
    assert len(workers) == 2 and sum(workers.values()) == n
    # Odd n re-sends the id of n - 1 (a duplicate); every fifth goes to bob (no credits).
    assert sent == Counter({201: sent[201], 200: sent[200], 402: sent[402]})
    name = "creditline_usage_events_total"
    assert delta(before, after, name, outcome="charged") == sent[201]
    assert delta(before, after, name, outcome="duplicate") == sent[200]
    assert delta(before, after, name, outcome="rejected") == sent[402]
    assert sent[402] == n // 5 and sent[201] > 0 and sent[200] > 0
    charged = delta(before, after, "creditline_charged_ucr_total")
    assert charged == sent[201] * COST == 1_000 * COST - charged_balance
    assert delta(before, after, "creditline_request_seconds_count", area="api") == n
