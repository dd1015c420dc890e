"""Password checks: the same work for unknown emails, a bounded number at once
per process, and never while the database's writer lock is held.

The spies wrap argon2-cffi's ``PasswordHasher`` (the library), not the code
under test, and call through to it.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from argon2 import PasswordHasher, extract_parameters
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from blueprints.extensions import database
from core.models import User
from core.passwords import PROFILES, Passwords
from tests.conftest import PASSWORD, USING_PG, AuthActions, Billing, make_test_app


@pytest.fixture
def verified_hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every encoded hash argon2 is asked to verify a password against."""
    seen: list[str] = []
    original = PasswordHasher.verify

    def spy(self: PasswordHasher, hash: str | bytes, password: str | bytes) -> bool:
        seen.append(hash if isinstance(hash, str) else hash.decode())
        return original(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", spy)
    return seen


@pytest.fixture
def default_profile_app(db_config: dict[str, Any]) -> Iterator[Flask]:
    """An app with the production hash profile (64 MiB per hash)."""
    app = make_test_app(db_config, PASSWORD_HASH_PROFILE="default")
    yield app
    app.extensions["creditline.db"].dispose()


def test_unknown_email_is_checked_against_a_hash_of_the_active_profile(
    verified_hashes: list[str],
) -> None:
    for profile in ("default", "fast"):
        verified_hashes.clear()
        assert Passwords(profile).verify(None, "any password") is False
        assert [extract_parameters(h) for h in verified_hashes] == [PROFILES[profile]]


def test_sign_in_costs_the_same_with_or_without_an_account(
    default_profile_app: Flask, verified_hashes: list[str]
) -> None:
    Billing(default_profile_app).user("known@example.com")
    auth = AuthActions(default_profile_app.test_client())
    for email in ("known@example.com", "unknown@example.com"):
        assert "Wrong email or password" in auth.login(email, "wrong password").get_data(
            as_text=True
        )
    assert len(verified_hashes) == 2
    for encoded in verified_hashes:
        assert extract_parameters(encoded) == PROFILES["default"]


class ConcurrencyProbe:
    """Wraps a PasswordHasher method and counts the calls inside it at once.

    Each call waits in here until ``bound`` calls are inside (with the bound
    in force, every batch of 6 / ``bound`` callers fills up), then a moment
    longer for anyone beyond the bound, so that calls nothing else holds back
    pile up in here and show in ``peak``. Nothing is asserted about time."""

    def __init__(self, original: Callable[..., Any], bound: int) -> None:
        self.original, self.bound = original, bound
        self.inside = self.peak = self.calls = 0
        self.changed = threading.Condition()

    def method(self) -> Callable[..., Any]:
        return lambda hasher, *args, **kw: self(hasher, *args, **kw)

    def __call__(self, hasher: PasswordHasher, *args: Any, **kw: Any) -> Any:
        with self.changed:
            self.inside += 1
            self.calls += 1
            self.peak = max(self.peak, self.inside)
            self.changed.notify_all()
            self.changed.wait_for(lambda: self.inside >= self.bound, timeout=30)
            self.changed.wait_for(lambda: self.inside > self.bound, timeout=0.2)
        try:
            return self.original(hasher, *args, **kw)
        finally:
            with self.changed:
                self.inside -= 1


def run_at_once(work: Callable[[int], Any], n: int = 6) -> list[Any]:
    """``work(0)`` ... ``work(n - 1)`` in n threads released together."""
    start, results = threading.Barrier(n), [None] * n

    def run(i: int) -> None:
        start.wait()
        results[i] = work(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.parametrize("bound", [1, 2])
def test_at_most_the_configured_number_of_hashes_run_at_once(
    monkeypatch: pytest.MonkeyPatch, bound: int
) -> None:
    passwords = Passwords("fast", concurrency=bound, wait_seconds=120)
    hashes = ConcurrencyProbe(PasswordHasher.hash, bound)
    monkeypatch.setattr(PasswordHasher, "hash", hashes.method())
    encoded = run_at_once(lambda i: passwords.hash(f"password {i}"))
    assert (hashes.calls, hashes.peak) == (6, bound)

    verifies = ConcurrencyProbe(PasswordHasher.verify, bound)
    monkeypatch.setattr(PasswordHasher, "verify", verifies.method())
    checked = run_at_once(lambda i: passwords.verify(encoded[i], f"password {i}"))
    assert checked == [True] * 6
    assert (verifies.calls, verifies.peak) == (6, bound)


def test_a_full_queue_answers_busy_and_the_api_is_unaffected(
    db_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_test_app(db_config, PASSWORD_HASH_WAIT_SECONDS=0)
    try:
        billing = Billing(app)
        billing.user("alice@example.com", 100_000_000)
        key = billing.api_key()
        entered, release = threading.Event(), threading.Event()
        original = PasswordHasher.hash

        def slow_hash(self: PasswordHasher, password: str | bytes, **kw: Any) -> str:
            entered.set()
            release.wait(timeout=30)
            return original(self, password, **kw)

        monkeypatch.setattr(PasswordHasher, "hash", slow_hash)
        holder = threading.Thread(target=app.extensions["creditline.passwords"].hash, args=("x",))
        holder.start()
        assert entered.wait(timeout=30)  # the only hashing slot is taken
        try:
            client = app.test_client()
            response = AuthActions(client).login("alice@example.com")
            assert response.status_code == 503
            assert response.headers["Retry-After"] == "5"
            assert "Please try again in a moment" in response.get_data(as_text=True)

            response = AuthActions(client).register("new@example.com")
            assert response.status_code == 503
            assert "Please try again in a moment" in response.get_data(as_text=True)

            usage = {
                "event_id": "e1",
                "user": "alice@example.com",
                "model": "gpt-4o-mini",
                "input_tokens": 10,
                "output_tokens": 10,
            }
            api = client.post(
                "/api/v1/usage", json=usage, headers={"Authorization": f"Bearer {key}"}
            )
            assert api.status_code == 201  # the API never waits for a password hash
        finally:
            release.set()
            holder.join()
        with app.app_context(), database().read_session() as s:
            assert s.scalar(select(User).where(User.email == "new@example.com")) is None
    finally:
        app.extensions["creditline.db"].dispose()


@pytest.mark.skipif(USING_PG, reason="the writer lock is SQLite's")
def test_no_password_is_hashed_while_the_writer_lock_is_held(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hash inside a write transaction would stall every usage debit for its
    whole duration. Each hash and verification probes, without waiting,
    whether a write could begin now."""
    db_file = app.config["DATABASE_URL"].removeprefix("sqlite:///")
    locked_during: list[str] = []

    def writes_blocked() -> bool:
        """Is a writer inside: our writer lock (flock) or SQLite's own taken?"""
        fd = os.open(db_file + ".writelock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # also releases the probe's own lock
        other = sqlite3.connect(db_file, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
        except sqlite3.OperationalError:
            return True
        finally:
            other.close()
        return False

    def probe(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def spy(self: PasswordHasher, *args: Any, **kw: Any) -> Any:
            if writes_blocked():
                locked_during.append(name)
            return original(self, *args, **kw)

        return spy

    monkeypatch.setattr(PasswordHasher, "hash", probe("hash", PasswordHasher.hash))
    monkeypatch.setattr(PasswordHasher, "verify", probe("verify", PasswordHasher.verify))
    auth = AuthActions(client)
    assert auth.register("pat@example.com").status_code == 302
    auth.logout()
    assert auth.login("pat@example.com").status_code == 302
    assert auth.login("pat@example.com", "wrong password").status_code == 200
    assert auth.login("nobody@example.com").status_code == 200
    assert auth.change_password(PASSWORD, "a brand new passphrase").status_code == 302
    assert locked_during == []
