"""The hot paths' round trips to PostgreSQL, and the ways the short ones fall back.

A round trip is one ``RawCursor._send`` (a statement, or several in a psycopg
pipeline) or a COMMIT sent on its own (``Database.raw_write``'s). On
PostgreSQL the usual gateway call makes three (the hold's statements with
its reads, the hold's COMMIT, the settle with its COMMIT) and the usual usage
report one (``core.usage_one_statement``; the general way makes two: its
reads, then its write with its COMMIT). A take built from the cached price
book falls back to the general way whenever the book may be wrong for it;
those tests run on both databases (the usage report's are
``tests/test_usage_one_statement.py``), the counts on PostgreSQL.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from psycopg.pq import TransactionStatus

from core import audit, outbox
from core.gateway import routing
from core.pricing import MICRO as CR
from core.rawdb import RawCursor, Statement
from tests.conftest import USING_PG, Billing, LiveServer
from tests.gateway_setup import EMAIL, MESSAGES, World, make_world, world_with
from tests.hold_helpers import request_for, take
from tests.ledger_helpers import low_balance_state
from tests.llm_upstream import Scenario, Usage

pg_only = pytest.mark.skipif(not USING_PG, reason="round trips to a PostgreSQL server")


@pytest.fixture
def world(db_config: dict[str, Any]) -> Iterator[World]:
    yield from make_world(db_config)


@contextlib.contextmanager
def round_trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every round trip made in this process meanwhile: the first words of its
    statements ("+"-joined), or "COMMIT" for a commit sent on its own."""
    trips: list[str] = []
    send, commit = RawCursor._send, psycopg.Connection.commit

    def counted_send(cur: RawCursor, statements: Sequence[Statement], begin: Any) -> Any:
        trips.append("+".join(" ".join(sql.split()[:2]) for sql, _ in statements))
        return send(cur, statements, begin)

    def counted_commit(connection: psycopg.Connection) -> None:
        if connection.info.transaction_status != TransactionStatus.IDLE:
            trips.append("COMMIT")
        commit(connection)

    with monkeypatch.context() as patch:
        patch.setattr(RawCursor, "_send", counted_send)
        patch.setattr(psycopg.Connection, "commit", counted_commit)
        yield trips


def serve(app: Flask) -> LiveServer:
    return LiveServer(app).start()


def chat(world: World, model: str = "gpt-4o-mini") -> Any:
    """A call reporting 120 tokens in, 30 out (0.36 credits for gpt-4o-mini)."""
    world.upstream.next(Scenario(usage=Usage(120, 30)))
    return world.sdk().chat.completions.with_raw_response.create(model=model, messages=MESSAGES)


@pg_only
def test_a_gateway_call_is_three_round_trips(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    chat(world)  # loads the key, the price book and the routes
    with round_trips(monkeypatch) as trips:
        chat(world)
    assert len(trips) == 3, trips
    hold, commit, settle = trips
    # the config version, the wallet's expiry sweep, the take: one pipeline
    assert hold.split("+") == [
        "SELECT version",
        "UPDATE holds",
        "UPDATE wallets",
        "INSERT INTO",
        "UPDATE user_api_keys",
    ]
    assert commit == "COMMIT"
    assert settle == "WITH c"  # one statement: PostgreSQL commits it on its own
    assert [h.status for h in world.holds()] == ["settled", "settled"]
    assert world.billing.problems() == []


@pg_only
def test_a_usage_report_is_one_round_trip(
    app: Flask, client: FlaskClient, billing: Billing, monkeypatch: pytest.MonkeyPatch
) -> None:
    billing.user("ann@example.com", 100 * CR)
    headers = {"Authorization": f"Bearer {billing.api_key()}"}

    def report(event_id: str) -> None:
        body = {"event_id": event_id, "user": "ann@example.com", "model": "gpt-4o-mini"}
        body |= {"input_tokens": 1000, "output_tokens": 500}
        assert client.post("/api/v1/usage", json=body, headers=headers).status_code == 201

    with round_trips(monkeypatch) as first:
        report("first")  # nothing cached: the general way
    assert first[-2:] == ["SELECT v.version,+SELECT u.email,", "WITH bal+COMMIT"], first
    with round_trips(monkeypatch) as trips:
        report("counted")
    assert trips == ["WITH bal"]  # decided before, checked and written by one statement
    assert billing.balance("ann@example.com") == 100 * CR - 2 * 4_500_000
    assert billing.problems() == []


@pg_only
def test_statements_after_an_early_commit_are_a_transaction_of_their_own(
    billing: Billing,
) -> None:
    insert = "INSERT INTO settings (key, value, updated_at) VALUES (:k, '1', '2026-01-01')"
    seen = "SELECT COUNT(*) FROM settings WHERE key IN ('first', 'second')"

    def write_then_fail() -> None:
        with billing.db.raw_write() as cur:
            cur.execute(insert, {"k": "first"})
            cur.execute_all([(insert, {"k": "second"})], commit=True)
            with billing.db.raw_read() as other:  # committed: another connection sees it
                assert other.scalar(seen) == 2
            cur.execute(insert, {"k": "third"})  # begins again
            raise RuntimeError("the owner's transaction fails")

    with pytest.raises(RuntimeError):
        write_then_fail()
    with billing.db.raw_read() as cur:
        keys = cur.execute("SELECT key FROM settings WHERE key IN ('first', 'second', 'third')")
        assert sorted(k for (k,) in keys.fetchall()) == ["first", "second"]


def test_a_price_change_between_calls_is_held_and_charged_at_the_new_price(
    world: World,
) -> None:
    chat(world)
    world.billing.set_price("gpt-4o-mini", 1_500_000, 6_000_000)  # 10 x dearer
    raw = chat(world)
    assert raw.headers["x-creditline-credits-charged"] == "3.6"  # 120 in + 30 out
    newest = world.holds()[-1]
    assert (newest.input_price_uusd_per_m, newest.output_price_uusd_per_m) == (
        1_500_000,
        6_000_000,
    )
    assert world.billing.problems() == []


def test_a_model_added_between_calls_can_be_called(world: World) -> None:
    chat(world)
    world.billing.set_price("gpt-4o", 250_000, 1_000_000)
    with world.billing.db.write() as s:
        routing.set_route(
            s,
            audit.CLI,
            "gpt-4o",
            "stand-in",
            upstream_model="upstream-4o",
            context_window=100_000,
            max_output=2_000,
            default_output_cap=1_000,
        )
    raw = chat(world, model="gpt-4o")
    assert raw.parse().choices[0].message.content == Scenario().content()
    assert world.upstream.last_request.body["model"] == "upstream-4o"
    assert world.billing.problems() == []


def test_an_overdue_hold_is_expired_before_a_call_needs_its_credits(
    db_config: dict[str, Any],
) -> None:
    with world_with(db_config, serve, funds=10 * CR) as world:
        chat(world)  # 0.36 credits; the caches are loaded
        billing = world.billing
        overdue = request_for(billing, EMAIL, tokens=(0, 1_400), ttl=timedelta(seconds=-1))
        take(billing, overdue)  # 8.4 credits reserved, already past its time
        assert world.wallet()[1] == 8_400_000
        raw = chat(world)  # holds 6 credits and more: only there once the 8.4 are freed
        assert raw.headers["x-creditline-credits-charged"] == "0.36"
        assert [h.status for h in world.holds()] == ["settled", "expired", "settled"]
        assert world.wallet() == (10 * CR - 2 * 360_000, 0)
        assert billing.problems() == []


def test_a_settle_that_crosses_the_alert_level_alerts_once(db_config: dict[str, Any]) -> None:
    threshold = outbox._DEFAULT_THRESHOLD
    with world_with(db_config, serve, funds=threshold + CR // 2) as world:
        chat(world)  # 0.36: still above
        chat(world)  # 0.36 more: below, alerted
        chat(world)  # still below: not again
        assert low_balance_state(world.billing.db) == (True, 1)
        assert world.billing.problems() == []
