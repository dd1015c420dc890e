"""Large, consistent datasets for the read benchmarks (3 and 4), written directly.

Going through the API would take hours for a million events, so rows are
bulk-inserted with sqlite3, built the way the ledger builds them: every
charged event has its usage ledger entry with the running balance, every
wallet is funded by an adjustment entry, rollups are the sums of charged
events, and ``check_ledger`` passes afterwards (``verify``). SQLite only.
"""

from __future__ import annotations

import random
import sqlite3
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from core.clock import utcnow
from core.pricing import MICRO, usage_cost_ucr

_TS = "%Y-%m-%d %H:%M:%S.%f"
EXTRA_MODELS = (("gpt-4o", 2_500_000, 10_000_000), ("claude-sonnet", 3_000_000, 15_000_000))


def new_app(prefix: str):  # type: ignore[no-untyped-def]
    """A fresh SQLite database with the bench key and models, and an app on it
    whose login form takes no CSRF token (the benchmarks sign in with it)."""
    import tempfile
    from pathlib import Path

    from app import create_app
    from bench.ingest import prepare_creditline

    path = Path(tempfile.mkdtemp(prefix=prefix)) / "creditline.db"
    url = f"sqlite:///{path}"
    prepare_creditline(url)
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "WTF_CSRF_ENABLED": False})
    add_models(app)
    return app, str(path)


def add_models(app) -> None:  # type: ignore[no-untyped-def]
    from core import audit, catalog

    db = app.extensions["creditline.db"]
    with db.write() as s:
        for name, price_in, price_out in EXTRA_MODELS:
            catalog.set_model_price(
                s,
                audit.CLI,
                name,
                input_uusd_per_m=price_in,
                output_uusd_per_m=price_out,
                reason="bench",
            )


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")  # generation only; the app runs FULL
    return conn


def add_users(conn: sqlite3.Connection, count: int, prefix: str) -> list[tuple[int, int]]:
    """``count`` users (who cannot sign in) with empty wallets: (user id, wallet id)."""
    now = utcnow().strftime(_TS)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO users (email, password_hash, role, is_disabled, created_at)"
        " VALUES (?, '!', 'user', 0, ?)",
        [(f"{prefix}{n}@example.com", now) for n in range(count)],
    )
    conn.execute(
        "INSERT INTO wallets (user_id, balance_ucr, flagged, created_at)"
        " SELECT id, 0, 0, ? FROM users WHERE email LIKE ? AND id NOT IN"
        " (SELECT user_id FROM wallets)",
        (now, f"{prefix}%"),
    )
    conn.execute("COMMIT")
    return conn.execute(
        "SELECT u.id, w.id FROM users u JOIN wallets w ON w.user_id = u.id"
        " WHERE u.email LIKE ? ORDER BY u.id",
        (f"{prefix}%",),
    ).fetchall()


def add_usage(
    conn: sqlite3.Connection,
    owners: Sequence[tuple[int, int]],
    events: int,
    *,
    days: int = 90,
    rejected_every: int = 50,
    seed: int = 1,
    chunk: int = 50_000,
) -> None:
    """``events`` usage events spread over ``owners`` and the last ``days`` days."""
    rng = random.Random(seed)
    key_id = conn.execute("SELECT max(id) FROM integration_keys").fetchone()[0]
    rate_id, rate = conn.execute(
        "SELECT id, credits_per_usd FROM exchange_rate_history ORDER BY id DESC LIMIT 1"
    ).fetchone()
    models = conn.execute(
        "SELECT id, name, input_price_uusd_per_m, output_price_uusd_per_m, price_version_id"
        " FROM ai_models ORDER BY id"
    ).fetchall()
    now = utcnow()
    span = days * 86_400
    offsets = sorted((rng.random() * span for _ in range(events)), reverse=True)
    plan = []
    totals: dict[int, int] = defaultdict(int)
    for offset in offsets:
        user_id, wallet_id = owners[rng.randrange(len(owners))]
        model = models[rng.randrange(len(models))]
        tokens_in, tokens_out = rng.randrange(100, 4000), rng.randrange(10, 1500)
        cost = usage_cost_ucr(tokens_in, tokens_out, model[2], model[3], rate)
        at = now - timedelta(seconds=offset)
        plan.append((user_id, wallet_id, model, tokens_in, tokens_out, cost, at))
        totals[wallet_id] += cost
    balances = _fund(conn, totals, now - timedelta(days=days + 1))

    first_id = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM usage_events").fetchone()[0]
    rollups: dict[tuple[int, str, int], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for start in range(0, len(plan), chunk):
        event_rows, ledger_rows = [], []
        for n, (user_id, wallet_id, model, t_in, t_out, cost, at) in enumerate(
            plan[start : start + chunk], start=first_id + start
        ):
            stamp = at.strftime(_TS)
            rejected = n % rejected_every == 0
            balance = None
            if not rejected:
                balances[wallet_id] -= cost
                balance = balances[wallet_id]
                ledger_rows.append(
                    (wallet_id, -cost, balance, f"usage:{n}", rate, f"{model[1]}", stamp)
                )
                sums = rollups[(user_id, stamp[:10], model[0])]
                sums[0] += 1
                sums[1] += t_in
                sums[2] += t_out
                sums[3] += cost
            event_rows.append(
                (n, key_id, f"gen-{seed}-{n}", "0" * 64, f"user-{user_id}", user_id, model[1],
                 model[0], t_in, t_out, cost, "rejected" if rejected else "charged",
                 "insufficient_credits" if rejected else None,
                 "Generated rejection." if rejected else None, rate, model[2], model[3],
                 rate_id, model[4], balance, stamp, stamp)
            )  # fmt: skip
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO usage_events (id, integration_key_id, event_id, payload_hash, user_ref,"
            " user_id, model_name, model_id, input_tokens, output_tokens, cost_ucr, status,"
            " reason_code, reason, credits_per_usd, input_price_uusd_per_m,"
            " output_price_uusd_per_m, rate_version_id, price_version_id, balance_after_ucr,"
            " occurred_at, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            event_rows,
        )
        conn.executemany(
            "INSERT INTO ledger_entries (wallet_id, amount_ucr, balance_after_ucr, kind,"
            " reference, credits_per_usd, memo, created_at)"
            " VALUES (?, ?, ?, 'usage', ?, ?, ?, ?)",
            ledger_rows,
        )
        conn.execute("COMMIT")
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO usage_daily (user_id, day, model_id, events, input_tokens, output_tokens,"
        " cost_ucr) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, day, model_id) DO UPDATE"
        " SET events = events + excluded.events,"
        " input_tokens = input_tokens + excluded.input_tokens,"
        " output_tokens = output_tokens + excluded.output_tokens,"
        " cost_ucr = cost_ucr + excluded.cost_ucr",
        [(u, d, m, *sums) for (u, d, m), sums in rollups.items()],
    )
    conn.executemany(
        "UPDATE wallets SET balance_ucr = ? WHERE id = ?",
        [(balance, wallet_id) for wallet_id, balance in balances.items()],
    )
    conn.execute("COMMIT")


def _fund(conn: sqlite3.Connection, totals: dict[int, int], at: datetime) -> dict[int, int]:
    """An adjustment per wallet covering its generated usage plus 1,000 credits."""
    balances = dict(
        conn.execute(
            "SELECT id, balance_ucr FROM wallets WHERE id IN (SELECT value FROM json_each(?))",
            (str(list(totals)),),
        ).fetchall()
    )
    rows = []
    for wallet_id, total in totals.items():
        amount = total + 1_000 * MICRO
        balances[wallet_id] += amount
        rows.append((wallet_id, amount, balances[wallet_id], at.strftime(_TS)))
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO ledger_entries (wallet_id, amount_ucr, balance_after_ucr, kind, memo,"
        " created_at) VALUES (?, ?, ?, 'adjustment', 'bench funding', ?)",
        rows,
    )
    conn.execute("COMMIT")
    return balances


def add_topups(
    conn: sqlite3.Connection, owners: Sequence[tuple[int, int]], count: int, seed: int = 2
) -> None:
    """Paid top-ups over the last year (revenue rows), some fully refunded, each
    with its ledger side as ``core.topup_ledger`` posts it: a ``topup`` entry,
    a ``refund`` entry for the refunded ones, their ``topup_postings`` links,
    and the wallets' balances moved to match (check_ledger ties them)."""
    rng = random.Random(seed)
    rate_id, rate = conn.execute(
        "SELECT id, credits_per_usd FROM exchange_rate_history ORDER BY id DESC LIMIT 1"
    ).fetchone()
    next_topup = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM topups").fetchone()[0]
    next_entry = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM ledger_entries").fetchone()[0]
    balances = dict(conn.execute("SELECT id, balance_ucr FROM wallets").fetchall())
    now = utcnow()
    rows, entries, links = [], [], []
    for topup_id in range(next_topup, next_topup + count):
        user_id, wallet_id = owners[rng.randrange(len(owners))]
        cents = rng.choice((500, 1000, 2500, 5000, 10000))
        credits = cents * rate * MICRO // 100
        paid = (now - timedelta(seconds=rng.random() * 365 * 86_400)).strftime(_TS)
        refunded = cents if rng.random() < 0.02 else 0
        rows.append(
            (topup_id, user_id, wallet_id, cents, credits, rate, rate_id, refunded, credits,
             credits if refunded else 0, paid, paid)
        )  # fmt: skip
        postings = [("topup", credits, f"topup:{topup_id}")]
        if refunded:
            postings.append(("refund", -credits, f"refund:{topup_id}@{credits}"))
        for kind, amount, reference in postings:
            balances[wallet_id] += amount
            entries.append(
                (next_entry, wallet_id, amount, balances[wallet_id], kind, reference, rate, paid)
            )
            links.append((next_entry, topup_id))
            next_entry += 1
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO topups (id, user_id, wallet_id, amount_cents, credits_ucr, credits_per_usd,"
        " rate_version_id, status, refunded_cents, credited_ucr, refund_debited_ucr,"
        " created_at, paid_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'paid', ?, ?, ?, ?, ?)",
        rows,
    )
    conn.executemany(
        "INSERT INTO ledger_entries (id, wallet_id, amount_ucr, balance_after_ucr, kind,"
        " reference, credits_per_usd, memo, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, '', ?)",
        entries,
    )
    conn.executemany("INSERT INTO topup_postings (ledger_entry_id, topup_id) VALUES (?, ?)", links)
    conn.executemany(
        "UPDATE wallets SET balance_ucr = ? WHERE id = ?",
        [(balance, wallet_id) for wallet_id, balance in balances.items()],
    )
    conn.execute("COMMIT")


def verify(app) -> None:  # type: ignore[no-untyped-def]
    """The generated data keeps every ledger invariant."""
    from core.ledger import check_ledger

    with app.extensions["creditline.db"].read_session() as s:
        problems = check_ledger(s)
    if problems:
        raise SystemExit(f"generated data breaks the ledger: {problems[:3]}")
