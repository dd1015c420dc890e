"""Shared fixtures.

Every test gets its own database, built by the real Alembic migrations:
a fresh SQLite file (WAL needs a file), or, when ``DATABASE_URL`` points at
PostgreSQL, a fresh schema in that database that is dropped afterwards.

One way per need: users are built by ``Billing.user``, an admin is signed in by
the ``admin`` fixture, a form is submitted by ``post_form``, and a credit in
micro-credits is ``core.pricing.MICRO``. What several test modules share lives
here or in a helper module that is not a test module (``api_client.py``,
``stripe_fake.py``, ...): a test module never imports another test module, and
a run refuses to start if one does (``pytest_configure`` below, ``module_imports.py``).
"""

from __future__ import annotations

import os
import re
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import create_engine, text
from werkzeug.serving import make_server
from werkzeug.test import TestResponse

from app import create_app
from core import accounts, audit, catalog, integration_keys, ledger, migrate, settings, usage_debits
from core.models import IntegrationKey, User
from tests.api_client import Api
from tests.module_imports import imports_of_test_modules
from tests.stripe_fake import WEBHOOK_SECRET, FakeStripe

PG_URL = os.environ.get("DATABASE_URL", "")
USING_PG = PG_URL.startswith("postgresql")
PASSWORD = "correct horse battery"


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to run while a test module imports another test module: what
    modules share belongs in a conftest or a helper module."""
    if found := imports_of_test_modules():
        raise pytest.UsageError(
            "test modules import other test modules; move what they share to "
            "tests/conftest.py or a helper module:\n  " + "\n  ".join(found)
        )


def redis_url() -> str:
    """Redis at 127.0.0.1:6379 (database 15), or skip the test."""
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        pytest.skip("no Redis at 127.0.0.1:6379")
    return "redis://127.0.0.1:6379/15"


@contextmanager
def fresh_database(directory: Path) -> Iterator[dict[str, Any]]:
    """Config keys for a new empty database: a SQLite file in ``directory``, or
    a new schema in the PostgreSQL database of ``DATABASE_URL`` (dropped after).
    The rate-limit counters get their own file in ``directory`` too."""
    counters = {"RATELIMIT_STORAGE_URI": f"sqlite:///{directory / 'ratelimits.sqlite'}"}
    if not USING_PG:
        yield {"DATABASE_URL": f"sqlite:///{directory / 'creditline.db'}", **counters}
        return
    schema = "t_" + uuid.uuid4().hex[:16]
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield {"DATABASE_URL": PG_URL, "DATABASE_SCHEMA": schema, **counters}
    finally:
        with admin.connect() as conn:
            # A connection left open in a transaction would make this wait
            # forever; fail the test run loudly instead.
            conn.execute(text("SET lock_timeout = '15s'"))
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def db_config(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Config keys that point an app at this test's own empty database."""
    with fresh_database(tmp_path) as config:
        yield config


def make_test_app(db_config: dict[str, Any], **overrides: Any) -> Flask:
    config = {
        "TESTING": True,
        "SECRET_KEY": "test-secret-key",
        "PASSWORD_HASH_PROFILE": "fast",
        "SERVER_NAME": None,
        "OUTBOX_WORKER": False,  # tests drain the outbox themselves, or turn it on
        **db_config,
        **overrides,
    }
    app = create_app(config)
    migrate.upgrade(app.extensions["creditline.db"])
    return app


@pytest.fixture
def app(db_config: dict[str, Any]) -> Iterator[Flask]:
    app = make_test_app(db_config)
    yield app
    app.extensions["creditline.db"].dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def csrf_token(client: FlaskClient, path: str = "/auth/login") -> str:
    """The CSRF token a real browser would read from a page of this session."""
    page = client.get(path).get_data(as_text=True)
    match = _CSRF_META.search(page)
    assert match, f"no csrf meta tag on {path}"
    return match.group(1)


def post_form(
    client: FlaskClient, url: str, /, *, csrf_page: str | None = None, **fields: Any
) -> TestResponse:
    """Submit a form as a browser would: POST ``fields`` to ``url`` with the CSRF
    token read from ``csrf_page`` (default: ``url`` without its query string)."""
    token = csrf_token(client, csrf_page or url.split("?")[0])
    return client.post(url, data={**fields, "csrf_token": token})


class AuthActions:
    """Drive the real auth pages, CSRF token included."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def register(self, email: str, password: str = PASSWORD, confirm: str | None = None) -> Any:
        data = {"email": email, "password": password, "confirm": confirm or password}
        return post_form(self.client, "/auth/register", **data)

    def login(self, email: str, password: str = PASSWORD, next: str | None = None) -> Any:
        url = "/auth/login" + (f"?next={next}" if next is not None else "")
        return post_form(self.client, url, email=email, password=password)

    def logout(self) -> Any:
        return post_form(self.client, "/auth/logout")

    def change_password(self, current: str, new: str) -> Any:
        data = {"current": current, "new": new, "confirm": new}
        return post_form(self.client, "/settings/password", csrf_page="/settings", **data)


@pytest.fixture
def auth(client: FlaskClient) -> AuthActions:
    return AuthActions(client)


class Billing:
    """A priced world for ledger tests: an integration key, models, funded users."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.db = app.extensions["creditline.db"]
        self.prices = app.extensions["creditline.prices"]
        with self.db.write() as s:
            key = IntegrationKey(name="tests", prefix="cl_test", key_hash="0" * 64)
            s.add(key)
            s.flush()
            self.key_id = key.id
        self.set_price("gpt-4o-mini", 150_000, 600_000)

    def set_price(
        self, name: str, input_price: int, output_price: int, enabled: bool = True
    ) -> None:
        with self.db.write() as s:
            catalog.set_model_price(
                s,
                audit.CLI,
                name,
                input_uusd_per_m=input_price,
                output_uusd_per_m=output_price,
                enabled=enabled,
                reason="test",
            )

    def set_rate(self, rate: int) -> None:
        with self.db.write() as s:
            catalog.set_rate(s, audit.CLI, rate, "test")

    def set(self, **changes: Any) -> None:
        with self.db.write() as s:
            settings.update(s, audit.CLI, "test", **changes)

    def user(self, email: str, credits_ucr: int = 0, role: str = "user") -> User:
        """The one way tests create a user: through ``core``, funded by the ledger."""
        with self.db.write() as s:
            user = accounts.create_user(
                s, email, PASSWORD, self.app.extensions["creditline.passwords"], role=role
            )
        if credits_ucr:
            with self.db.write() as s:
                ledger.adjust(s, audit.CLI, email, credits_ucr, "test funding")
        return user

    def debit(
        self,
        event_id: str,
        user: str,
        input_tokens: int = 1000,
        output_tokens: int = 500,
        model: str = "gpt-4o-mini",
        **kw: Any,
    ):
        report = usage_debits.UsageReport(event_id, user, model, input_tokens, output_tokens, **kw)
        return usage_debits.debit_usage(self.db, self.prices, self.key_id, report)

    def api_key(self, name: str = "integration") -> str:
        """A real integration key (created as the CLI would), for API tests."""
        with self.db.write() as s:
            _, key = integration_keys.create(s, audit.CLI, name)
        return key

    def balance(self, email: str) -> int:
        with self.db.read_session() as s:
            return accounts.find_user(s, email).wallet.balance_ucr

    def problems(self) -> list[ledger.LedgerProblem]:
        with self.db.read_session() as s:
            return ledger.check_ledger(s)


@pytest.fixture
def billing(app: Flask) -> Billing:
    return Billing(app)


@pytest.fixture
def api(client: FlaskClient, billing: Billing) -> Api:
    """The JSON API, called with a real integration key of ``billing``."""
    return Api(client, billing.api_key())


def sign_in_admin(auth: AuthActions, billing: Billing, email: str, credits_ucr: int = 0) -> None:
    """Create ``email`` as an admin and sign in through the real login page."""
    billing.user(email, credits_ucr, role="admin")
    auth.login(email)


@pytest.fixture
def admin(client: FlaskClient, auth: AuthActions, billing: Billing) -> Billing:
    """boss@example.com, an admin signed in on ``client``; returns ``billing``."""
    sign_in_admin(auth, billing, "boss@example.com")
    return billing


EXEMPT_PREFIXES = ("/api/", "/v1/", "/webhooks/stripe")
STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}


def state_changing_routes(app: Flask) -> list[tuple[str, str]]:
    """Every (method, URL) that changes state and authenticates by session
    cookie (so needs a CSRF token): all but the bearer API and the webhook."""
    adapter = app.url_map.bind("localhost")
    found = []
    for rule in app.url_map.iter_rules():
        url = adapter.build(rule.endpoint, {arg: 1 for arg in rule.arguments})
        if url.startswith(EXEMPT_PREFIXES):
            continue
        found += [(m, url) for m in sorted(rule.methods & STATE_CHANGING)]
    return found


# --- a shop: the app with Stripe keys, talking to tests/stripe_fake.py -------------


@pytest.fixture
def fake_stripe() -> FakeStripe:
    return FakeStripe()


@pytest.fixture
def shop(db_config: dict[str, Any], fake_stripe: FakeStripe) -> Iterator[Flask]:
    app = make_test_app(
        db_config,
        STRIPE_SECRET_KEY="sk_test_creditline",
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        STRIPE_HTTP_CLIENT=fake_stripe,
        SERVER_NAME="creditline.test",
    )
    yield app
    app.extensions["creditline.db"].dispose()


@pytest.fixture
def buyer(shop: Flask) -> tuple[FlaskClient, Billing]:
    """alice@example.com, signed in to the shop, and the shop's Billing."""
    billing = Billing(shop)
    billing.user("alice@example.com")
    client = shop.test_client()
    AuthActions(client).login("alice@example.com")
    return client, billing


def checkout(client: FlaskClient, amount: Any = 25) -> Any:
    """Press "Buy" on the pricing page."""
    return post_form(client, "/pricing/checkout", csrf_page="/pricing", amount_usd=amount)


def wait_until_blocked(
    engine: Any, what: str = "B never blocked on A's uncommitted insert"
) -> None:
    """PostgreSQL: return once some session of this database waits on a row or
    index lock (so a race test knows its second transaction really collided)."""
    with engine.connect() as probe:
        for _ in range(1000):
            waiting = probe.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
            ).scalar()
            probe.rollback()
            if waiting:
                return
            threading.Event().wait(0.01)
    raise AssertionError(what)


class LiveServer:
    def __init__(self, app: Any) -> None:
        self.app = app
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> LiveServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)


@pytest.fixture
def live_server(db_config: dict[str, Any]) -> Iterator[LiveServer]:
    """The app served over real HTTP by a threaded WSGI server on 127.0.0.1."""
    app = make_test_app(db_config, BALANCE_POLL_SECONDS=1)
    server = LiveServer(app).start()
    yield server
    server.stop()
    app.extensions["creditline.db"].dispose()
