"""Benchmark: the metering gateway vs a bare pass-through proxy, same setup.

One run, five targets in front of the same loopback stand-in upstream
(``tests/llm_upstream.py``, in its own process):

  (a) the stand-in itself (the direct call),
  (b) ``bench/baseline_proxy.py``: Flask + httpx, no auth, no holds, no database,
  (c) ``bench/baseline_meter.py``: (b) plus the two bare write transactions a
      call that cannot overdraw needs (a conditional hold committed before the
      upstream call, a conditional settle after it), on the same database,
  (d) ``bench/baseline_ledger_meter.py``: (c) writing the rows Creditline
      keeps for a call (hold with its snapshot, key, usage event, ledger
      entry, rollup) in Creditline's schema, on a second database migrated
      like Creditline's, one statement per transaction on PostgreSQL,
  (e) Creditline's ``/v1`` (key check, hold, upstream call, settle),

(b) to (e) under gunicorn with the same gthread settings
(``deploy/gunicorn.conf.py``, 2 workers) and threads sized for the stream
load as the README says: ``streams / 2 + 32`` per worker.

1. Non-stream chat, wrk at 16 connections: throughput and latency of each;
   prints Creditline / proxy throughput (target >= 0.7), Creditline / bare
   meter and bare meter / proxy (what two durable writes per call cost with
   nothing else), ledger meter / bare meter (what Creditline's rows cost) and
   Creditline / ledger meter (what its own code costs), and the latency
   added over the direct call (targets: p50 <= 3 ms, p99 <= 15 ms).
2. 300 concurrent streams of about 10 s each against (a) and (e): errors,
   time to first byte (overhead target p50 <= 5 ms), the server's total RSS
   (target <= 400 MB), and afterwards every call charged exactly its
   reported usage, nothing reserved, ``check-ledger`` clean.

    .venv/bin/python bench/gateway.py [--seconds 10] [--streams 300] [--users 20]
        [--database-url URL]

The non-stream calls are spread over ``--users`` users (one key each, used in
turn), as a gateway's traffic is; ``--users 1`` is the one-hot-wallet case,
where every hold and settle waits for the same wallet row (on PostgreSQL a
row lock held for the transaction; on SQLite writers are serial anyway).
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
from pathlib import Path

import httpx
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import baseline_meter  # noqa: E402
from bench.ingest import driver_target, free_port, fresh_copy_url  # noqa: E402

STANDIN = """
import sys, time
from tests.llm_upstream import LLMUpstream, Scenario, Usage
chunks, delay = int(sys.argv[2]), float(sys.argv[3])
up = LLMUpstream(default=Scenario(usage=Usage(12, 7), chunks=chunks, chunk_delay=delay))
up.start()
print(up.url, flush=True)
while True:
    time.sleep(3600)
"""
USAGE = (12, 7)  # what the stand-in reports for every call


def start_standin(chunks: int, delay: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", STANDIN, "x", str(chunks), str(delay)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def start_gunicorn(app: str, env: dict[str, str], port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py",
            "--bind", f"127.0.0.1:{port}", "--access-logfile", "/dev/null", app,
        ],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(150):
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{app} did not start")


def wrk(url: str, path: str, key: str, seconds: int, connections: int) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s", "--latency",
            "-s", str(ROOT / "bench" / "chat.lua"), url, "--", path, key,
        ],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    result = dict(kv.split("=") for kv in re.search(r"RESULT (.*)", out).group(1).split())  # type: ignore[union-attr]
    return {"rps": rps, **{k: float(v) for k, v in result.items()}}


def prepare(
    database_url: str, upstreams: dict[str, str], encryption_key: str, users: int = 1
) -> list[str]:
    """Migrate, price gpt-4o-mini, route it to the stand-in, fund ``users``
    users; a key of each."""
    from app import create_app
    from core import accounts, audit, catalog, ledger, migrate, user_keys
    from core.gateway import routing

    app = create_app(
        {"DATABASE_URL": database_url, "SECRET_KEY": "bench", "ENCRYPTION_KEY": encryption_key}
    )
    db = app.extensions["creditline.db"]
    box = app.extensions["creditline.gateway"].box
    migrate.upgrade(db)
    with db.write() as s:
        catalog.set_model_price(
            s, audit.CLI, "gpt-4o-mini", input_uusd_per_m=150_000, output_uusd_per_m=600_000,
            reason="bench",
        )  # fmt: skip
        for name, url in upstreams.items():
            routing.create_upstream(s, audit.CLI, box, name, url, "bench-secret")
    with db.write() as s:
        routing.set_route(s, audit.CLI, "gpt-4o-mini", "json")
    keys = []
    for n in range(users):
        email = "bench@example.com" if n == 0 else f"bench{n}@example.com"
        with db.write() as s:
            user = accounts.create_user(
                s, email, "bench-password", app.extensions["creditline.passwords"]
            )
        with db.write() as s:
            ledger.adjust(s, audit.CLI, email, 10**15, "bench funding")
            keys.append(user_keys.create(s, audit.CLI, user.id, "bench")[1])
    db.dispose()
    return keys


def reroute(database_url: str, encryption_key: str, upstream: str) -> None:
    from app import create_app
    from core import audit
    from core.gateway import routing

    app = create_app(
        {"DATABASE_URL": database_url, "SECRET_KEY": "bench", "ENCRYPTION_KEY": encryption_key}
    )
    db = app.extensions["creditline.db"]
    with db.write() as s:
        routing.set_route(s, audit.CLI, "gpt-4o-mini", upstream)
    db.dispose()


def streams(url: str, key: str, n: int, ramp: float = 0.0) -> dict[str, float]:
    """``n`` streams, all at once (``ramp`` 0) or started evenly over ``ramp``
    seconds; their time to first byte, errors, the most open at one time."""
    ttfb: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(n)
    open_now = [0, 0]  # open streams, peak
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Tell a story"}],
        "stream": True,
        "max_tokens": 64,
    }
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    client = httpx.Client(limits=httpx.Limits(max_connections=n + 10), timeout=httpx.Timeout(60.0))

    def one(index: int) -> None:
        start.wait()
        time.sleep(ramp * index / n)
        began = time.perf_counter()
        try:
            with client.stream(
                "POST", url + "/v1/chat/completions", json=body, headers=headers
            ) as response:
                first = None
                data = b""
                for chunk in response.iter_raw():
                    if first is None:
                        first = time.perf_counter() - began
                        with lock:
                            open_now[0] += 1
                            open_now[1] = max(open_now)
                    data += chunk
                ok = response.status_code == 200 and data.rstrip().endswith(b"data: [DONE]")
                if first is not None:
                    with lock:
                        open_now[0] -= 1
            with lock:
                if ok and first is not None:
                    ttfb.append(first * 1000)
                else:
                    errors.append(f"{response.status_code}")
        except httpx.HTTPError as exc:
            with lock:
                errors.append(type(exc).__name__)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    client.close()
    return {
        "ok": len(ttfb),
        "errors": len(errors),
        "ttfb_p50": statistics.median(ttfb) if ttfb else float("nan"),
        "ttfb_p99": statistics.quantiles(ttfb, n=100)[98] if len(ttfb) > 1 else float("nan"),
        "wall": time.perf_counter() - began,
        "peak_open": open_now[1],
    }


def rss_mb(master: subprocess.Popen) -> float:
    """Resident memory of the gunicorn master and its workers, now."""
    children = subprocess.run(
        ["pgrep", "-P", str(master.pid)], capture_output=True, text=True
    ).stdout.split()
    pids = [str(master.pid), *children]
    total = 0
    for pid in pids:
        status = Path(f"/proc/{pid}/status").read_text()
        total += int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    return total / 1024


def audit_charges(database_url: str) -> str:
    """Every call charged exactly the stand-in's usage, nothing left reserved."""
    from sqlalchemy import func, select

    from app import create_app
    from core import ledger
    from core.models import UsageEvent, Wallet
    from core.pricing import usage_cost_ucr

    app = create_app({"DATABASE_URL": database_url, "SECRET_KEY": "bench"})
    db = app.extensions["creditline.db"]
    cost = usage_cost_ucr(USAGE[0], USAGE[1], 150_000, 600_000, 10_000)
    with db.read_session() as s:
        rows = dict(
            s.execute(select(UsageEvent.cost_ucr, func.count()).group_by(UsageEvent.cost_ucr)).all()
        )
        reserved = s.scalar(select(func.sum(Wallet.reserved_ucr)))
        problems = ledger.check_ledger(s)
    db.dispose()
    wrong = sum(n for c, n in rows.items() if c != cost)
    return (
        f"calls charged {sum(rows.values())}, mischarged {wrong}, reserved after {reserved}, check-ledger "
        f"{problems or 'clean'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--streams", type=int, default=300)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument(
        "--users", type=int, default=20, help="non-stream calls spread over this many users' keys"
    )
    parser.add_argument(
        "--ramp", type=float, default=5.0, help="seconds over which the second stream run starts"
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="creditline-gateway-bench-"))
    url = args.database_url or f"sqlite:///{work / 'creditline.db'}"
    fernet = Fernet.generate_key().decode()
    json_up, json_url = start_standin(1, 0.0)
    stream_up, stream_url = start_standin(20, 0.5)  # 20 chunks 0.5 s apart: ~10 s
    procs = [json_up, stream_up]
    try:
        keys = prepare(url, {"json": json_url, "streams": stream_url}, fernet, args.users)
        ledger_url = fresh_copy_url(url, work)
        ledger_keys = prepare(ledger_url, {"json": json_url}, fernet, args.users)
        key = keys[0]  # the streams' user
        env = {
            "DATABASE_URL": url,
            "SECRET_KEY": "bench",
            "ENCRYPTION_KEY": fernet,
            "RATELIMIT_STORAGE_URI": f"sqlite:///{work / 'ratelimits.sqlite'}",
            "GATEWAY_RATE_LIMIT": "100000000/minute",
            "GATEWAY_MAX_CONCURRENT_PER_USER": "100000",
        }
        proxy_port, meter_port, gw_port = free_port(), free_port(), free_port()
        ledger_port = free_port()
        threads = {"GUNICORN_THREADS": str(args.streams // 2 + 32)}
        meter_db = driver_target(url) if url.startswith("postgresql") else str(work / "meter.db")
        meter_keys = baseline_meter.setup(meter_db)
        # Each baseline serves only during its own runs, so that the
        # connections it keeps open (one per thread) cost nobody else theirs.
        baselines = {
            "proxy": ("bench.baseline_proxy:app", {}, proxy_port),
            "bare meter": ("bench.baseline_meter:app", {"BASELINE_METER_DB": meter_db}, meter_port),
            "ledger meter": (
                "bench.baseline_ledger_meter:app",
                {"BASELINE_LEDGER_METER_DB": driver_target(ledger_url)},
                ledger_port,
            ),
        }
        gateway = start_gunicorn("app:create_app()", {**env, **threads}, gw_port)
        procs.append(gateway)
        targets = {
            "direct": (json_url.removesuffix("/v1"), ""),
            "proxy": (f"http://127.0.0.1:{proxy_port}", ""),
            "bare meter": (f"http://127.0.0.1:{meter_port}", ",".join(meter_keys[: args.users])),
            "ledger meter": (f"http://127.0.0.1:{ledger_port}", ",".join(ledger_keys)),
            "creditline": (f"http://127.0.0.1:{gw_port}", ",".join(keys)),
        }
        results, alone = {}, {}
        for name, (base, bearer) in targets.items():
            server = None
            if name in baselines:
                app_path, app_env, port = baselines[name]
                server = start_gunicorn(
                    app_path, {"UPSTREAM_URL": json_url, **app_env, **threads}, port
                )
            try:
                wrk(base, "/v1/chat/completions", bearer, 2, args.connections)  # warm-up
                results[name] = wrk(
                    base, "/v1/chat/completions", bearer, args.seconds, args.connections
                )
                alone[name] = wrk(base, "/v1/chat/completions", bearer, args.seconds, 1)
            finally:
                if server is not None:
                    server.terminate()
                    server.wait(timeout=15)
        print(
            f"database: {url.split('://')[0]}; gunicorn gthread 2 workers x"
            f" {threads['GUNICORN_THREADS']} threads; non-stream calls over {args.users} user(s)"
        )
        print(f"1. non-stream chat, wrk {args.connections} connections, {args.seconds}s")
        print(f"{'':12} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
        for name, r in results.items():
            print(
                f"{name:12} {r['rps']:9.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f}"
                f" {r['errors_status']:8.0f}"
            )
        c, p, d = results["creditline"], results["proxy"], results["direct"]
        m, lm = results["bare meter"], results["ledger meter"]
        print(f"ratio creditline/proxy throughput: {c['rps'] / p['rps']:.2f} (target >= 0.7)")
        print(
            f"ratio creditline/bare meter: {c['rps'] / m['rps']:.2f};"
            f" bare meter/proxy: {m['rps'] / p['rps']:.2f}"
        )
        print(
            f"ratio ledger meter/bare meter: {lm['rps'] / m['rps']:.2f} (what Creditline's rows"
            f" cost); creditline/ledger meter: {c['rps'] / lm['rps']:.2f} (what its code costs)"
        )
        print(
            f"added latency over direct: p50 {c['p50_ms'] - d['p50_ms']:.2f} ms (target <= 3),"
            f" p99 {c['p99_ms'] - d['p99_ms']:.2f} ms (target <= 15)"
        )
        print("one connection (one call at a time: the latency a call adds, no queueing)")
        for name, r in alone.items():
            print(f"{name:12} {r['rps']:9.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f}")
        c1, p1, d1 = alone["creditline"], alone["proxy"], alone["direct"]
        print(
            f"added over direct: creditline p50 {c1['p50_ms'] - d1['p50_ms']:.2f} ms,"
            f" p99 {c1['p99_ms'] - d1['p99_ms']:.2f} ms;"
            f" bare proxy p50 {p1['p50_ms'] - d1['p50_ms']:.2f} ms,"
            f" p99 {p1['p99_ms'] - d1['p99_ms']:.2f} ms"
        )

        reroute(url, fernet, "streams")
        peak = [0.0]
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.2):
                peak[0] = max(peak[0], rss_mb(gateway))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        runs = {}
        for ramp in (0.0, args.ramp):
            runs[ramp] = (
                streams(stream_url.removesuffix("/v1"), "", args.streams, ramp),
                streams(f"http://127.0.0.1:{gw_port}", key, args.streams, ramp),
            )
        stop.set()
        sampler.join()
        print(f"2. {args.streams} concurrent streams of ~10 s")
        for ramp, (direct, via) in runs.items():
            how = "all at once" if not ramp else f"started over {ramp:.0f} s"
            for name, r in (("direct", direct), ("creditline", via)):
                print(
                    f"{name:12} {how:18} ok {r['ok']:4.0f}  errors {r['errors']:3.0f}"
                    f"  peak open {r['peak_open']:4.0f}  ttfb p50 {r['ttfb_p50']:7.2f} ms"
                    f"  p99 {r['ttfb_p99']:7.2f} ms"
                )
            print(
                f"{'':12} {how:18} ttfb overhead p50"
                f" {via['ttfb_p50'] - direct['ttfb_p50']:.2f} ms (target <= 5)"
            )
        print(f"server RSS peak {peak[0]:.0f} MB (target <= 400)")
        print(audit_charges(url))
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=15)


if __name__ == "__main__":
    main()
