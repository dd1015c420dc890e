"""The gateway's CLI (spec §6): upstreams, routes, users' keys, expired holds."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select

from core import user_keys
from core.gateway import routing
from core.gateway.models import Hold, Upstream, UserApiKey
from core.pricing import MICRO as CR
from core.rawdb import RawCursor
from tests.conftest import Billing
from tests.hold_helpers import request_for, take, wallet


def run(runner: FlaskCliRunner, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = runner.invoke(args=list(args), env=env)
    return result.exit_code, result.output


def test_upstream_and_route_from_the_cli(
    app: Flask, runner: FlaskCliRunner, billing: Billing
) -> None:
    code, out = run(
        runner,
        "create-upstream",
        "openai",
        "https://api.example.com/v1",
        "--secret-env",
        "UP_KEY",
        env={"UP_KEY": "sk-secret"},
    )
    assert code == 0, out
    assert "sk-secret" not in out
    box = app.extensions["creditline.gateway"].box
    with billing.db.read_session() as s:
        row = s.scalar(select(Upstream))
        assert box.open(row.secret_sealed) == "sk-secret"
    code, out = run(
        runner,
        "set-route",
        "gpt-4o-mini",
        "--upstream",
        "openai",
        "--upstream-model",
        "gpt-4o-mini-2024-07-18",
        "--max-output",
        "8000",
        "--default-output-cap",
        "1000",
    )
    assert code == 0, out
    with billing.db.read_session() as s:
        route = routing.route_for(s, "gpt-4o-mini")
    assert route is not None and route.upstream_model == "gpt-4o-mini-2024-07-18"
    assert (route.limits.max_output, route.limits.default_output_cap) == (8000, 1000)
    code, out = run(runner, "set-route", "gpt-4o-mini", "--upstream", "openai", "--disable")
    assert code == 0
    with billing.db.read_session() as s:
        assert not routing.route_for(s, "gpt-4o-mini").callable


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            ("create-upstream", "x", "https://h/v1", "--secret-env", "NOPE"),
            {},
            "NOPE is empty or not set",
        ),
        (("create-upstream", "x", "ftp://h/v1", "--secret-env", "K"), {"K": "k"}, "base URL"),
        (("set-route", "gpt-9", "--upstream", "x"), {}, "No priced model"),
    ],
)
def test_cli_refusals_are_clean(
    runner: FlaskCliRunner, billing: Billing, args: tuple, env: dict, message: str
) -> None:
    code, out = run(runner, *args, env=env)
    assert code == 1 and out.startswith("Error: ") and message in out


def test_user_keys_from_the_cli(runner: FlaskCliRunner, billing: Billing) -> None:
    billing.user("kim@example.com")
    code, out = run(
        runner,
        "create-user-key",
        "kim@example.com",
        "ci",
        "--limit",
        "12.5",
        "--expires",
        "2999-01-01",
    )
    assert code == 0, out
    key = out.strip().splitlines()[-1]
    with billing.db.read_session() as s:
        holder = user_keys.authenticate(RawCursor.of_session(s), key)
        row = s.scalar(select(UserApiKey))
    assert holder is not None and holder.limit_ucr == 12_500_000
    assert row.expires_at.year == 2999
    assert run(runner, "revoke-user-key", "kim@example.com", "ci")[0] == 0
    with billing.db.read_session() as s:
        assert user_keys.authenticate(RawCursor.of_session(s), key) is None
    code, out = run(runner, "revoke-user-key", "kim@example.com", "ci")
    assert code == 1 and "no key named" in out
    code, out = run(runner, "create-user-key", "nobody@example.com", "k")
    assert code == 1 and "No user" in out
    code, out = run(runner, "create-user-key", "kim@example.com", "k", "--expires", "soon")
    assert code == 1 and "YYYY-MM-DD" in out


def test_release_expired_holds(runner: FlaskCliRunner, billing: Billing) -> None:
    billing.user("kim@example.com", 10 * CR)
    billing.user("lee@example.com", 10 * CR)
    live = take(billing, request_for(billing, "kim@example.com"))
    stale = take(billing, request_for(billing, "lee@example.com", ttl=timedelta(seconds=-1)))
    code, out = run(runner, "release-expired-holds")
    assert (code, out.strip()) == (0, "released 1 expired hold(s)")
    with billing.db.read_session() as s:
        statuses = dict(s.execute(select(Hold.id, Hold.status)).all())
    assert statuses == {stale.id: "expired", live.id: "active"}
    assert wallet(billing, "kim@example.com") == (10 * CR, live.amount_ucr)
    assert wallet(billing, "lee@example.com") == (10 * CR, 0)
    assert billing.problems() == []
