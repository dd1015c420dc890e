"""Keys remembered by a process (core.recent_keys) are checked again where
they act: a key revoked, expired or whose user was disabled after its first
use is refused from the next call on, in any process, and nothing is charged."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from core import audit, user_keys
from core.accounts import find_user
from core.clock import utcnow
from core.gateway.models import UserApiKey
from core.models import User
from core.pricing import MICRO as CR
from core.recent_keys import RecentKeys
from tests.conftest import make_test_app
from tests.gateway_setup import MESSAGES, World, make_world, post

OK = json.dumps({"model": "gpt-4o-mini", "messages": MESSAGES}).encode()


@pytest.fixture
def world(db_config: dict[str, Any]) -> Iterator[World]:
    yield from make_world(db_config)


def test_remembered_keys_are_bounded_and_forgotten_by_key_id() -> None:
    keys: RecentKeys[str] = RecentKeys(size=3)
    keys.remember("secret-a", 1, "a")
    keys.remember("secret-a2", 1, "a")
    keys.remember("secret-b", 2, "b")
    assert (keys.get("secret-a"), keys.get("secret-b"), keys.get("nope")) == ("a", "b", None)
    keys.forget(1)
    assert (keys.get("secret-a"), keys.get("secret-a2"), keys.get("secret-b")) == (None, None, "b")
    for n in range(5):
        keys.remember(f"s{n}", 10 + n, "x")
    assert len(keys) <= 3


def _refused_then_refused_at_the_door(world: World, key: str, status: int, code: str) -> None:
    for _ in range(2):  # first by the hold (remembered key), then at the door
        refused = post(world, OK, key)
        assert (refused.status_code, refused.json()["error"]["code"]) == (status, code)


def test_a_remembered_user_key_revoked_expired_or_disabled_is_refused(world: World) -> None:
    assert post(world, OK).status_code == 200  # kim's "laptop" key is now remembered
    calls = world.upstream.request_count
    charged = world.balance()
    with world.billing.db.write() as s:
        kim = find_user(s, "kim@example.com")
        assert kim is not None
        user_keys.revoke_by_name(s, audit.CLI, kim.id, "laptop")
        _, expiring = user_keys.create(s, audit.CLI, kim.id, "ci")
        _, other = user_keys.create(s, audit.CLI, kim.id, "phone")
    _refused_then_refused_at_the_door(world, world.key, 401, "unauthorized")

    assert post(world, OK, expiring).status_code == 200
    calls = world.upstream.request_count
    charged = world.balance()
    with world.billing.db.write() as s:
        s.execute(
            update(UserApiKey)
            .where(UserApiKey.name == "ci")
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    _refused_then_refused_at_the_door(world, expiring, 401, "unauthorized")

    assert post(world, OK, other).status_code == 200
    calls = world.upstream.request_count
    charged = world.balance()
    with world.billing.db.write() as s:
        s.execute(update(User).where(User.email == "kim@example.com").values(is_disabled=True))
    _refused_then_refused_at_the_door(world, other, 403, "user_disabled")

    assert world.upstream.request_count == calls  # no refused call reached the upstream
    assert world.balance() == charged
    assert all(hold.status != "active" for hold in world.holds())
    assert world.billing.problems() == []


def test_a_remembered_key_is_refused_after_another_process_revoked_it(
    world: World, db_config: dict[str, Any]
) -> None:
    """Another app (another worker) revokes the key: its memory is not this one's."""
    assert post(world, OK).status_code == 200
    second = make_test_app(db_config)
    with second.extensions["creditline.db"].write() as s:
        kim = find_user(s, "kim@example.com")
        assert kim is not None
        user_keys.revoke_by_name(s, audit.CLI, kim.id, "laptop")
    second.extensions["creditline.db"].dispose()
    assert post(world, OK).status_code == 401
    assert world.balance() == 100 * CR - world.events()[0].cost_ucr
