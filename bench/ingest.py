"""Benchmark 1: single-event ingest, Creditline vs a bare baseline, same setup.

The apps run under gunicorn (2 sync workers) on 127.0.0.1 and take the same
wrk load (distinct event ids, so every request is a real debit). The baseline
runs before and after Creditline (the machine's pace drifts). Prints the
throughputs, p50/p99 latency, the ratio against the baseline's mean, and each
server's peak worker RSS.

Between them runs the bare ledger app (``bench/baseline_ledger_app.py``): the
rows one charged event must write in Creditline's own schema (event, balance,
ledger entry, rollup) and nothing else, on a second database prepared like
Creditline's. Its ratio to the baseline is what those rows cost; Creditline's
ratio to it is what Creditline's own code (auth, rate limit, validation,
idempotency, pricing, metrics) costs.

    .venv/bin/python bench/ingest.py [--seconds 10] [--connections 8] [--users 20]
        [--database-url URL]

On PostgreSQL the baseline is ``bench/baseline_pg_app.py`` (psycopg 3) on the
same server; on SQLite ``bench/baseline_app.py`` (sqlite3).
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(app: str, env: dict[str, str], port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", app],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=1)
            return proc
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError(f"{app} did not start")


def bracketed(before: float, after: float) -> tuple[float, str]:
    """A baseline measured before and after the run it brackets: its mean, and
    a warning line (empty if none) when the two differ by more than 25 %.
    This machine's pace drifts within minutes."""
    mean = (before + after) / 2
    drift = abs(before - after) / mean
    warning = (
        f"the baseline moved {drift:.0%} during the run: repeat it before using the ratio"
        if drift > 0.25
        else ""
    )
    return mean, warning


def wrk(
    port: int,
    seconds: int,
    connections: int,
    key: str,
    tag: str,
    script: str = "ingest.lua",
    extra: tuple[str, ...] = (),
) -> dict[str, float]:
    """Run wrk with one of bench/*.lua; requests/s plus the script's RESULT line."""
    out = subprocess.run(
        [
            "wrk",
            f"-t{min(2, connections)}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(ROOT / "bench" / script),
            f"http://127.0.0.1:{port}",
            "--",
            tag,
            key,
            "bench@example.com",
            *extra,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    result = dict(kv.split("=") for kv in re.search(r"RESULT (.*)", out).group(1).split())
    return {"rps": rps, **{k: float(v) for k, v in result.items()}}


def peak_rss_mb(master: subprocess.Popen) -> list[float]:
    pids = subprocess.run(
        ["pgrep", "-P", str(master.pid)], capture_output=True, text=True
    ).stdout.split()
    peaks = []
    for pid in pids:
        status = Path(f"/proc/{pid}/status").read_text()
        peaks.append(int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024)
    return peaks


def bench_users(count: int) -> list[str]:
    """The users events are spread over (``bench/ingest.lua``'s fourth argument)."""
    return [f"bench{n}@example.com" for n in range(count)] if count > 1 else []


def prepare_creditline(database_url: str, users: int = 1) -> str:
    from app import create_app
    from core import accounts, audit, integration_keys, ledger, migrate

    app = create_app({"DATABASE_URL": database_url, "SECRET_KEY": "bench"})
    db = app.extensions["creditline.db"]
    migrate.upgrade(db)
    with db.write() as s:
        user = accounts.find_user(s, "bench@example.com")
        if user is None:
            accounts.create_user(
                s, "bench@example.com", "bench-password", app.extensions["creditline.passwords"]
            )
            from core import catalog

            catalog.set_model_price(
                s,
                audit.CLI,
                "gpt-4o-mini",
                input_uusd_per_m=150_000,
                output_uusd_per_m=600_000,
                reason="bench",
            )
        _, key = integration_keys.create(s, audit.CLI, "bench")
    for email in bench_users(users):
        with db.write() as s:
            if accounts.find_user(s, email) is None:
                accounts.create_user(
                    s, email, "bench-password", app.extensions["creditline.passwords"]
                )
    for email in ["bench@example.com", *bench_users(users)]:
        with db.write() as s:
            ledger.adjust(s, audit.CLI, email, 10**17, "bench funding")
    db.dispose()
    return key


def driver_target(url: str) -> str:
    """What a bare app's driver takes for the SQLAlchemy ``url``: a SQLite
    file's path, or a libpq connection string."""
    if url.startswith("postgresql"):
        return "postgresql://" + url.split("://", 1)[1]
    return url.removeprefix("sqlite:///")


def fresh_copy_url(url: str, work: Path) -> str:
    """A second, empty database like ``url`` for the bare ledger app: a file
    beside the benchmark's, or a database of its own on the same server."""
    if not url.startswith("postgresql"):
        return f"sqlite:///{work / 'bare-ledger.db'}"
    import psycopg

    base, _, name = url.rpartition("/")
    copy = f"{name}_bare_ledger"
    with psycopg.connect(driver_target(url), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {copy}")
        conn.execute(f"CREATE DATABASE {copy}")
    return f"{base}/{copy}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument(
        "--users", type=int, default=20, help="events spread over this many users (1: one wallet)"
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="creditline-bench-"))
    url = args.database_url or f"sqlite:///{work / 'creditline.db'}"
    key = prepare_creditline(url, args.users)
    if url.startswith("postgresql"):
        # The same PostgreSQL server and database, the bare app in its own schema.
        from bench.baseline_pg_app import setup as setup_pg

        dsn = driver_target(url)
        setup_pg(dsn, bench_users(args.users) or ["bench@example.com"])
        baseline = ("bench.baseline_pg_app:app", {"BASELINE_PG": dsn})
    else:
        from bench.baseline_app import setup

        baseline_db = str(work / "baseline.db")
        setup(baseline_db)
        baseline = ("bench.baseline_app:app", {"BASELINE_DB": baseline_db})

    ledger_url = fresh_copy_url(url, work)
    prepare_creditline(ledger_url, args.users)
    bare_ledger = (
        "bench.baseline_ledger_app:app",
        {"BASELINE_LEDGER_DB": driver_target(ledger_url)},
    )
    users = (str(args.users),)
    creditline = (
        "app:create_app()",
        {"DATABASE_URL": url, "SECRET_KEY": "bench", "API_RATE_LIMIT": "100000000/minute"},
    )
    # The baseline runs before and after Creditline (``bracketed``).
    results = {}
    for name, (app, env) in (
        ("baseline", baseline),
        ("bare ledger", bare_ledger),
        ("creditline", creditline),
        ("baseline, after", baseline),
    ):
        port = free_port()
        proc = start(app, env, port)
        try:
            warm = f"warm-{name}-{time.time_ns()}"
            wrk(port, 2, args.connections, key, warm, extra=users)  # warm-up
            results[name] = wrk(
                port, args.seconds, args.connections, key, f"run-{time.time_ns()}", extra=users
            )
            results[name]["rss"] = max(peak_rss_mb(proc))
        finally:
            proc.terminate()
            proc.wait(timeout=10)

    print(
        f"database: {url.split('://')[0]}, gunicorn 2 workers, wrk {args.connections} connections,"
        f" {args.seconds}s, events over {args.users} user(s)"
    )
    print(f"{'':16} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'peak RSS MB':>12}")
    for name, r in results.items():
        print(
            f"{name:16} {r['rps']:9.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f}"
            f" {r['errors_status']:8.0f} {r['rss']:12.1f}"
        )
    # docs/PERFORMANCE.md: >= 0.9 x the bare sqlite3 app, >= 0.6 x the bare psycopg app.
    target = 0.6 if url.startswith("postgresql") else 0.9
    mean, warning = bracketed(results["baseline"]["rps"], results["baseline, after"]["rps"])
    ratio = results["creditline"]["rps"] / mean
    print(f"ratio creditline/baseline (mean of before and after): {ratio:.2f} (target >= {target})")
    ledger_rps = results["bare ledger"]["rps"]
    print(
        f"bare ledger/baseline: {ledger_rps / mean:.2f} (what the rows cost);"
        f" creditline/bare ledger: {results['creditline']['rps'] / ledger_rps:.2f}"
        " (what Creditline's own code costs)"
    )
    if warning:
        print(warning)


if __name__ == "__main__":
    main()
