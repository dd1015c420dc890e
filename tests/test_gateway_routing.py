"""Upstreams and routes (core.gateway.routing) and users' keys (core.user_keys)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from core import audit, user_keys
from core.clock import utcnow
from core.errors import ValidationError
from core.gateway import routing
from core.gateway.call_plan import RouteLimits
from core.gateway.models import Upstream, UserApiKey
from core.models import AuditEntry
from core.rawdb import RawCursor
from core.secret_box import SecretBox
from tests.conftest import Billing

BOX = SecretBox(Fernet.generate_key().decode())


def make_upstream(billing: Billing, name: str = "openai", key: str = "sk-up-123") -> int:
    with billing.db.write() as s:
        return routing.create_upstream(
            s, audit.CLI, BOX, name, "https://llm.example.com/v1/", key
        ).id


def test_an_upstream_secret_is_stored_sealed_and_audited_without_it(billing: Billing) -> None:
    upstream_id = make_upstream(billing)
    with billing.db.read_session() as s:
        row = s.get(Upstream, upstream_id)
        assert row.base_url == "https://llm.example.com/v1"
        assert "sk-up-123" not in row.secret_sealed
        assert BOX.open(row.secret_sealed) == "sk-up-123"
        trail = " ".join((e.after or "") + (e.before or "") for e in s.scalars(select(AuditEntry)))
    assert "sk-up-123" not in trail and '"secret": "set"' in trail


def test_an_empty_secret_on_update_keeps_the_stored_one(billing: Billing) -> None:
    upstream_id = make_upstream(billing)
    with billing.db.write() as s:
        routing.update_upstream(s, audit.CLI, BOX, upstream_id, secret="", enabled=False)
    with billing.db.read_session() as s:
        row = s.get(Upstream, upstream_id)
        assert BOX.open(row.secret_sealed) == "sk-up-123" and not row.enabled


@pytest.mark.parametrize(
    "url",
    [
        "ftp://x/v1",
        "https:///v1",
        "llm.example.com/v1",
        "https://user:pw@llm.example.com/v1",
        "https://llm.example.com/v1?key=1",
        "https://llm.example.com/v1#x",
        "",
    ],
)
def test_bad_base_urls_are_refused(billing: Billing, url: str) -> None:
    with pytest.raises(ValidationError) as caught, billing.db.write() as s:
        routing.create_upstream(s, audit.CLI, BOX, "x", url, "k")
    assert caught.value.details["field"] == "base_url"


def test_a_route_resolves_with_defaults_and_follows_every_enabled_flag(billing: Billing) -> None:
    upstream_id = make_upstream(billing)
    with billing.db.write() as s:
        routing.set_route(s, audit.CLI, "gpt-4o-mini", "openai", upstream_model="gpt-4o-mini-2024")
    with billing.db.read_session() as s:
        route = routing.route_for(s, "gpt-4o-mini")
        assert route is not None and route.callable
        assert route.upstream_model == "gpt-4o-mini-2024"
        assert route.limits == RouteLimits(128_000, 16_384, 4_096, 256)
        assert [name for name, _ in routing.callable_models(s)] == ["gpt-4o-mini"]
        assert routing.route_for(s, "gpt-5") is None
    with billing.db.write() as s:
        routing.update_upstream(s, audit.CLI, BOX, upstream_id, enabled=False)
    with billing.db.read_session() as s:
        assert not routing.route_for(s, "gpt-4o-mini").callable
        assert routing.callable_models(s) == []
    with billing.db.write() as s:
        routing.update_upstream(s, audit.CLI, BOX, upstream_id, enabled=True)
        routing.set_route(s, audit.CLI, "gpt-4o-mini", "openai", enabled=False)
    with billing.db.read_session() as s:
        assert not routing.route_for(s, "gpt-4o-mini").callable
    billing.set_price("gpt-4o-mini", 150_000, 600_000, enabled=False)
    with billing.db.write() as s:
        routing.set_route(s, audit.CLI, "gpt-4o-mini", "openai", enabled=True)
    with billing.db.read_session() as s:
        assert not routing.route_for(s, "gpt-4o-mini").callable


def test_route_limits_are_checked_and_kept_when_not_given(billing: Billing) -> None:
    make_upstream(billing)
    with billing.db.write() as s:
        routing.set_route(
            s,
            audit.CLI,
            "gpt-4o-mini",
            "openai",
            context_window=8_000,
            max_output=1_000,
            default_output_cap=500,
        )
        routing.set_route(s, audit.CLI, "gpt-4o-mini", "openai", overhead=0)
    with billing.db.read_session() as s:
        assert routing.route_for(s, "gpt-4o-mini").limits == RouteLimits(8_000, 1_000, 500, 0)
    for bad in (
        {"default_output_cap": 2_000},
        {"max_output": 0},
        {"context_window": -1},
        {"overhead": -1},
        {"max_output": 10**10},
    ):
        with pytest.raises(ValidationError), billing.db.write() as s:
            routing.set_route(s, audit.CLI, "gpt-4o-mini", "openai", **bad)
    with pytest.raises(ValidationError), billing.db.write() as s:
        routing.set_route(s, audit.CLI, "no-such-model", "openai")
    with pytest.raises(ValidationError), billing.db.write() as s:
        routing.set_route(s, audit.CLI, "gpt-4o-mini", "no-such-upstream")


def test_route_changes_are_audited_once_per_real_change(billing: Billing) -> None:
    make_upstream(billing)
    with billing.db.write() as s:
        routing.set_route(s, audit.CLI, "gpt-4o-mini", "openai")
        routing.set_route(s, audit.CLI, "gpt-4o-mini", "openai")  # nothing changes
        routing.set_route(
            s, audit.CLI, "gpt-4o-mini", "openai", max_output=2_000, default_output_cap=100
        )
    with billing.db.read_session() as s:
        rows = list(s.scalars(select(AuditEntry).where(AuditEntry.action == "route.set")))
    assert len(rows) == 2
    assert rows[0].before is None
    assert json.loads(rows[1].after)["max_output"] == 2_000


def test_a_user_key_authenticates_until_revoked_or_expired(billing: Billing) -> None:
    user = billing.user("kim@example.com")
    with billing.db.write() as s:
        row, key = user_keys.create(s, audit.CLI, user.id, "laptop", limit_ucr=5_000_000)
    assert key.startswith("clk_") and len(key) > 50
    with billing.db.read_session() as s:
        holder = user_keys.authenticate(RawCursor.of_session(s), key)
        stored = s.get(UserApiKey, row.id)
        assert stored.key_hash != key and key not in stored.key_hash
    assert holder is not None and holder.user_id == user.id and holder.limit_ucr == 5_000_000
    with billing.db.read_session() as s:
        assert (
            user_keys.authenticate(
                RawCursor.of_session(s), key[:-1] + ("a" if key[-1] != "a" else "b")
            )
            is None
        )
        assert user_keys.authenticate(RawCursor.of_session(s), "sk-" + key[3:]) is None
    with billing.db.write() as s:
        user_keys.revoke_by_name(s, audit.CLI, user.id, "laptop")
    with billing.db.read_session() as s:
        assert user_keys.authenticate(RawCursor.of_session(s), key) is None
    with billing.db.write() as s:
        row, key = user_keys.create(s, audit.CLI, user.id, "laptop")  # the name is free again
        row.expires_at = utcnow() - timedelta(seconds=1)
    with billing.db.read_session() as s:
        assert user_keys.authenticate(RawCursor.of_session(s), key) is None


def test_key_names_are_unique_among_keys_not_revoked_and_owners_are_checked(
    billing: Billing,
) -> None:
    kim, lee = billing.user("kim@example.com"), billing.user("lee@example.com")
    with billing.db.write() as s:
        row, _ = user_keys.create(s, audit.CLI, kim.id, "ci")
    with pytest.raises(ValidationError), billing.db.write() as s:
        user_keys.create(s, audit.CLI, kim.id, " ci ")
    with billing.db.write() as s:
        user_keys.create(s, audit.CLI, lee.id, "ci")  # another user's name space
    with pytest.raises(ValidationError), billing.db.write() as s:
        user_keys.revoke(s, audit.Actor("lee", lee.id), row.id, owner_id=lee.id)
    with billing.db.read_session() as s:
        assert s.get(UserApiKey, row.id).revoked_at is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": ""},
        {"name": "x" * 101},
        {"name": "ok", "limit_ucr": 0},
        {"name": "ok", "expires_at": utcnow() - timedelta(days=1)},
    ],
)
def test_bad_key_requests_are_refused(billing: Billing, kwargs: dict) -> None:
    user = billing.user("kim@example.com")
    name = kwargs.pop("name")
    with pytest.raises(ValidationError), billing.db.write() as s:
        user_keys.create(s, audit.CLI, user.id, name, **kwargs)


def test_a_disabled_users_key_says_so(billing: Billing) -> None:
    user = billing.user("kim@example.com")
    with billing.db.write() as s:
        _, key = user_keys.create(s, audit.CLI, user.id, "k")
        s.get(type(user), user.id).is_disabled = True
    with billing.db.read_session() as s:
        assert user_keys.authenticate(RawCursor.of_session(s), key).user_disabled
