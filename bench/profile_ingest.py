"""Where does an ingested event's time go? cProfile of in-process requests.

Calls the WSGI app directly (no server, no network) with real integration-key
auth and distinct event ids, so the profile shows only Creditline's own work
per request, sorted by cumulative and by own time.

    .venv/bin/python bench/profile_ingest.py [--requests 2000] [--batch 0|N] [--top 25] [--database-url URL]
    .venv/bin/python bench/profile_ingest.py --stages   # timers on the main stages instead
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from werkzeug.test import EnvironBuilder

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest import prepare_creditline  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=0, help="events per batch request (0: single)")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--database-url", default="", help="default: a fresh SQLite file")
    parser.add_argument("--no-profile", action="store_true", help="time only, no profiler")
    parser.add_argument(
        "--stages", action="store_true", help="no profiler; time the main stages of a request"
    )
    args = parser.parse_args()

    from app import create_app

    url = (
        args.database_url
        or f"sqlite:///{Path(tempfile.mkdtemp(prefix='creditline-prof-')) / 'c.db'}"
    )
    key = prepare_creditline(url)
    app = create_app(
        {"DATABASE_URL": url, "SECRET_KEY": "bench", "API_RATE_LIMIT": "100000000/minute"}
    )
    path = "/api/v1/usage/batch" if args.batch else "/api/v1/usage"

    def event(n: int) -> dict[str, object]:
        return {
            "event_id": f"p-{n}",
            "user": "bench@example.com",
            "model": "gpt-4o-mini",
            "input_tokens": 1000,
            "output_tokens": 500,
        }

    def environ(i: int) -> dict[str, object]:
        if args.batch:
            body = {"events": [event(i * args.batch + j) for j in range(args.batch)]}
        else:
            body = event(i)
        return EnvironBuilder(
            path=path,
            method="POST",
            data=json.dumps(body),
            content_type="application/json",
            headers={"Authorization": f"Bearer {key}"},
        ).get_environ()

    def run(environs: list[dict[str, object]]) -> None:
        status: list[str] = []

        def start_response(line: str, _headers: object, *_exc: object) -> None:
            status.append(line)

        for env in environs:
            body = b"".join(app.wsgi_app(env, start_response))
            if not status[-1].startswith(("200", "201")):
                raise SystemExit(f"unexpected {status[-1]}: {body[:200]!r}")

    stages = _time_stages(app) if args.stages else None
    args.no_profile = args.no_profile or args.stages
    run([environ(-i - 1) for i in range(50)])  # warm caches, price book, key touch
    if stages is not None:
        stages.clear()
    environs = [environ(i) for i in range(args.requests)]
    profiler = cProfile.Profile()
    started = time.perf_counter()
    if not args.no_profile:
        profiler.enable()
    run(environs)
    profiler.disable()
    elapsed = time.perf_counter() - started
    events = args.requests * (args.batch or 1)
    print(
        f"{args.requests} requests, {events} events in {elapsed:.2f}s"
        f"{'' if args.no_profile else ' under the profiler'}: "
        f"{elapsed / args.requests * 1000:.3f} ms/request, {events / elapsed:,.0f} events/s"
    )
    if stages is not None:
        for label, seconds in sorted(stages.items(), key=lambda kv: -kv[1]):
            print(f"  {label:34} {seconds / args.requests * 1e6:8.1f} µs/request")
    if args.no_profile:
        return
    for order in ("cumulative", "tottime"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(args.top)
        print(out.getvalue())


def _time_stages(app) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Wrap the request's main stages with timers (about 1 µs each)."""
    import blueprints.api.routes as routes
    from blueprints import rate_limits
    from core import db, integration_keys, usage_debits

    totals: dict[str, float] = defaultdict(float)

    def wrap(owner: object, name: str, label: str) -> None:
        inner = getattr(owner, name)

        def timed(*args: object, **kwargs: object) -> object:
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                totals[label] += time.perf_counter() - started

        setattr(owner, name, timed)

    wrap(app, "request_context", "Flask: request context")
    wrap(app, "preprocess_request", "before_request hooks (auth, limit)")
    wrap(integration_keys, "authenticate", "  key lookup (SELECT)")
    wrap(rate_limits.RateLimits, "hit", "  rate limit")
    wrap(routes, "_body", "read + parse JSON body")
    wrap(routes, "parse_usage", "validate the event")
    wrap(usage_debits, "debit_usage", "debit_usage (transaction + commit)")
    wrap(usage_debits, "charge", "  charge: statements + pricing")
    wrap(db.Database, "notify_committed", "  after-commit listeners")
    wrap(routes.responses, "json_response", "build the JSON response")
    wrap(app, "process_response", "after_request hooks")
    return totals


if __name__ == "__main__":
    main()
