"""Benchmark 3: dashboard server time for a user with 1k vs 1M usage events.

One SQLite database holds both users (generated with ``bench/dataset.py``:
events over 90 days and three models, ledger and rollups consistent, checked
with ``check_ledger``). Each user signs in through the real login form, then
``/dashboard`` and the htmx balance partial ``/dashboard/balance`` are
requested in-process (the WSGI app itself, no network) and timed. Prints
median and p95 per page and user, and the ratio of the medians.

    .venv/bin/python bench/dashboard.py [--heavy 1000000] [--requests 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import dataset  # noqa: E402

PASSWORD = "bench-password-1"  # noqa: S105 (a generated bench user)


def timings(clients: dict, path: str, requests: int, headers: dict[str, str]) -> dict:  # type: ignore[type-arg]
    """Per user, ``requests`` timed GETs of ``path``; the users take turns so
    both see the same process state (caches, garbage collector)."""
    for client in clients.values():  # warm-up: templates, caches
        for _ in range(20):
            client.get(path, headers=headers)
    out: dict[str, list[float]] = {name: [] for name in clients}
    for _ in range(requests):
        for name, client in clients.items():
            started = time.perf_counter()
            response = client.get(path, headers=headers)
            out[name].append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise SystemExit(f"{path}: {response.status_code}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--light", type=int, default=1_000)
    parser.add_argument("--heavy", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()

    from core import accounts

    app, path = dataset.new_app("creditline-dash-")
    db = app.extensions["creditline.db"]
    owners = {}
    with db.write() as s:
        for name in ("light", "heavy"):
            user = accounts.create_user(
                s, f"{name}@example.com", PASSWORD, app.extensions["creditline.passwords"]
            )
            owners[name] = (user.id, user.wallet.id)
    started = time.perf_counter()
    conn = dataset.connect(path)
    dataset.add_usage(conn, [owners["light"]], args.light, seed=1)
    dataset.add_usage(conn, [owners["heavy"]], args.heavy, seed=2)
    conn.close()
    dataset.verify(app)
    print(
        f"generated {args.light:,} + {args.heavy:,} events in {time.perf_counter() - started:.0f}s"
    )

    clients = {}
    for name in ("light", "heavy"):
        clients[name] = client = app.test_client()
        login = client.post(
            "/auth/login", data={"email": f"{name}@example.com", "password": PASSWORD}
        )
        if login.status_code != 302:
            raise SystemExit(f"login failed for {name}: {login.status_code}")
    results: dict = {}  # type: ignore[type-arg]
    for page, headers in (("/dashboard", {}), ("/dashboard/balance", {"HX-Request": "true"})):
        for name, t in timings(clients, page, args.requests, headers).items():
            results[name, page] = t
    results["light", "events"], results["heavy", "events"] = args.light, args.heavy

    print(f"{'page':22} {'user':>18} {'median ms':>10} {'p95 ms':>8}")
    for page in ("/dashboard", "/dashboard/balance"):
        for name in ("light", "heavy"):
            t = results[name, page]
            label = f"{name} ({results[name, 'events']:,} ev)"
            p95 = statistics.quantiles(t, n=20)[-1]
            print(f"{page:22} {label:>18} {statistics.median(t):10.2f} {p95:8.2f}")
        ratio = statistics.median(results["heavy", page]) / statistics.median(
            results["light", page]
        )
        print(f"{page:22} {'ratio heavy/light':>18} {ratio:10.2f}   (target <= 1.5)")


if __name__ == "__main__":
    main()
