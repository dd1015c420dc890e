"""Registration flood: API latency while threads create accounts as fast as they can.

gunicorn (2 workers; ``--threads N`` for gthread workers) on a fresh SQLite
file, the real argon2 ``default`` profile. One client sends usage events one
after another and records each latency: first alone, then while ``--flooders``
threads register new accounts through the real form (CSRF token included),
all from 127.0.0.1. Prints the API's p50/p90 in both phases, how many
accounts were created and how many registrations were refused (429).

    .venv/bin/python bench/registration_flood.py [--seconds 10] [--flooders 6]
        [--threads 1] [--register-limit 5/hour] [--hash-concurrency 1]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import free_port, prepare_creditline  # noqa: E402

_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def start(env: dict[str, str], port: int, threads: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}"]
    if threads > 1:
        command += ["--threads", str(threads)]
    proc = subprocess.Popen(
        [*command, "app:create_app()"],
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
    raise RuntimeError("gunicorn did not start")


def api_latencies(base: str, key: str, seconds: float, tag: str) -> list[float]:
    """Send usage events one at a time for ``seconds``; each latency in ms."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    latencies, n, end = [], 0, time.monotonic() + seconds
    while time.monotonic() < end:
        n += 1
        event = {
            "event_id": f"{tag}-{n}",
            "user": "bench@example.com",
            "model": "gpt-4o-mini",
            "input_tokens": 1000,
            "output_tokens": 500,
        }
        began = time.perf_counter()
        response = session.post(f"{base}/api/v1/usage", json=event, timeout=60)
        latencies.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 201, response.text
    return latencies


def flood(base: str, stop: threading.Event, codes: Counter[int], worker: int) -> None:
    session = requests.Session()
    n = 0
    while not stop.is_set():
        n += 1
        page = session.get(f"{base}/auth/register", timeout=60).text
        token = _CSRF.search(page).group(1)
        form = {
            "email": f"flood{worker}-{n}-{time.time_ns()}@example.com",
            "password": "flood password",
            "confirm": "flood password",
            "csrf_token": token,
        }
        response = session.post(
            f"{base}/auth/register", data=form, allow_redirects=False, timeout=60
        )
        codes[response.status_code] += 1


def summary(latencies: list[float]) -> str:
    cuts = statistics.quantiles(latencies, n=10)
    return f"{len(latencies):5} requests, p50 {statistics.median(latencies):7.1f} ms, p90 {cuts[8]:7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--flooders", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1, help="gunicorn threads per worker")
    parser.add_argument("--register-limit", default=None, help="REGISTER_RATE_LIMIT")
    parser.add_argument("--hash-concurrency", default=None, help="PASSWORD_HASH_CONCURRENCY")
    args = parser.parse_args()

    url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='creditline-flood-')) / 'creditline.db'}"
    key = prepare_creditline(url)
    env = {"DATABASE_URL": url, "SECRET_KEY": "bench", "API_RATE_LIMIT": "100000000/minute"}
    if args.register_limit:
        env["REGISTER_RATE_LIMIT"] = args.register_limit
    if args.hash_concurrency:
        env["PASSWORD_HASH_CONCURRENCY"] = args.hash_concurrency
    port = free_port()
    proc = start(env, port, args.threads)
    base = f"http://127.0.0.1:{port}"
    try:
        api_latencies(base, key, 2, "warm")
        quiet = api_latencies(base, key, args.seconds, "quiet")
        stop, codes = threading.Event(), Counter[int]()
        flooders = [
            threading.Thread(target=flood, args=(base, stop, codes, i), daemon=True)
            for i in range(args.flooders)
        ]
        for thread in flooders:
            thread.start()
        loud = api_latencies(base, key, args.seconds, "flood")
        stop.set()
        for thread in flooders:
            thread.join(timeout=60)
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    workers = "sync" if args.threads == 1 else f"gthread x{args.threads}"
    print(f"gunicorn 2 workers ({workers}), {args.flooders} flooders, {args.seconds:.0f}s")
    print(f"API alone:        {summary(quiet)}")
    print(f"API under flood:  {summary(loud)}")
    print(f"registrations: {codes[302]} created, {codes[429]} refused (429), other {dict(codes)}")


if __name__ == "__main__":
    main()
