"""Configuration layers: defaults, then instance/config.py, then environment.

The app factory applies test overrides last. Only names listed in
``ENV_KEYS`` are read from the environment so a stray variable cannot change
behaviour by accident.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEFAULTS: dict[str, Any] = {
    "SECRET_KEY": None,  # generated into instance/secret_key on first run
    "DATABASE_URL": None,  # None -> sqlite file instance/creditline.db
    "DATABASE_SCHEMA": None,  # PostgreSQL search_path (tests use one per test)
    "SQLITE_SYNCHRONOUS": "FULL",
    "SQLITE_BUSY_TIMEOUT_MS": 5000,
    "STRIPE_SECRET_KEY": None,
    "STRIPE_WEBHOOK_SECRET": None,
    "STRIPE_API_BASE": None,
    "STRIPE_HTTP_CLIENT": None,  # a stripe.HTTPClient; tests inject one
    "STRIPE_CHECKOUT_ORIGIN": "https://checkout.stripe.com",  # allowed by CSP form-action
    # None -> sqlite:///instance/ratelimits.sqlite, shared by the workers of
    # one machine; redis://… across servers; memory:// counts per process.
    "RATELIMIT_STORAGE_URI": None,
    "RATELIMIT_KEY_PREFIX": "",  # several apps on one Redis
    "LOGIN_RATE_LIMIT_IP": "20/minute",
    "LOGIN_RATE_LIMIT_EMAIL": "5/minute",
    "REGISTER_RATE_LIMIT": "5/hour",  # new accounts per client IP
    "FORGOT_RATE_LIMIT": "5/hour",  # "forgot password" requests per client IP
    "API_RATE_LIMIT": "6000/minute",  # per integration key
    "PREFERRED_URL_SCHEME": "http",
    "TRUSTED_PROXIES": 0,  # number of reverse proxies to trust for X-Forwarded-*
    "PASSWORD_HASH_PROFILE": "default",  # "fast" only for the test suite
    "PASSWORD_HASH_CONCURRENCY": 1,  # argon2 hashes at once per process (each uses 4 lanes)
    "PASSWORD_HASH_WAIT_SECONDS": 10,  # queued longer than this: "busy, try again"
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_SECURE": None,  # None -> True when PREFERRED_URL_SCHEME is https
    "REMEMBER_COOKIE_SECURE": None,
    "REMEMBER_COOKIE_HTTPONLY": True,
    "RATELIMIT_HEADERS_ENABLED": True,
    "REMEMBER_COOKIE_SAMESITE": "Lax",
    "WTF_CSRF_TIME_LIMIT": None,  # token lives as long as the session
    "MAX_CONTENT_LENGTH": 2 * 1024 * 1024,
    "BALANCE_POLL_SECONDS": 5,  # how often open pages refresh the balance
    "CSV_EXPORT_MAX_ROWS": 1_000_000,  # a larger usage export is refused: narrow the dates
    # The metering gateway (/v1).
    "ENCRYPTION_KEY": None,  # Fernet key(s) for stored secrets; None -> instance/encryption_key
    "GATEWAY_ABORT_POLICY": "drain",  # client gone mid-stream: "drain" or "cancel"
    "GATEWAY_DRAIN_SECONDS": 120,
    "GATEWAY_STREAM_MAX_SECONDS": 600,
    "GATEWAY_MAX_BODY_BYTES": 20 * 1024 * 1024,
    "GATEWAY_MAX_CONCURRENT_PER_USER": 8,
    "GATEWAY_RATE_LIMIT": "600/minute",  # per user key
    "GATEWAY_PING_SECONDS": 15,  # SSE comment while the upstream is silent
    "GATEWAY_CONNECT_TIMEOUT": 10,
    "GATEWAY_FIRST_BYTE_TIMEOUT": 300,
    # Email and webhooks (core.outbox_worker).
    "MAIL_URL": None,  # smtp://user:pass@host:port (STARTTLS when offered) or smtps://…
    "MAIL_FROM": None,  # the From address of every email
    "OUTBOX_WORKER": True,  # a background thread of the app delivers the outbox
    "OUTBOX_POLL_SECONDS": 10,
    "METRICS_TOKEN": None,  # set: /metrics wants "Authorization: Bearer <token>"
}

# Variables read from the environment, with the type to coerce them to.
ENV_KEYS: dict[str, Callable[[str], Any]] = {
    "SECRET_KEY": str,
    "DATABASE_URL": str,
    "DATABASE_SCHEMA": str,
    "SQLITE_SYNCHRONOUS": str,
    "STRIPE_SECRET_KEY": str,
    "STRIPE_WEBHOOK_SECRET": str,
    "STRIPE_API_BASE": str,
    "RATELIMIT_STORAGE_URI": str,
    "RATELIMIT_KEY_PREFIX": str,
    "API_RATE_LIMIT": str,
    "REGISTER_RATE_LIMIT": str,
    "FORGOT_RATE_LIMIT": str,
    "PASSWORD_HASH_CONCURRENCY": int,
    "PREFERRED_URL_SCHEME": str,
    "TRUSTED_PROXIES": int,
    "CSV_EXPORT_MAX_ROWS": int,
    "ENCRYPTION_KEY": str,
    "MAIL_URL": str,
    "MAIL_FROM": str,
    "OUTBOX_WORKER": lambda raw: raw.strip().lower() in ("1", "true", "yes", "on"),
    "OUTBOX_POLL_SECONDS": int,
    "GATEWAY_ABORT_POLICY": str,
    "GATEWAY_DRAIN_SECONDS": float,
    "GATEWAY_STREAM_MAX_SECONDS": float,
    "GATEWAY_MAX_BODY_BYTES": int,
    "GATEWAY_MAX_CONCURRENT_PER_USER": int,
    "GATEWAY_RATE_LIMIT": str,
    "GATEWAY_PING_SECONDS": float,
    "METRICS_TOKEN": str,
}


def from_environment(environ: os._Environ[str] | dict[str, str]) -> dict[str, Any]:
    """The subset of ``ENV_KEYS`` present (and non-empty) in ``environ``."""
    found: dict[str, Any] = {}
    for key, kind in ENV_KEYS.items():
        raw = environ.get(key)
        if raw:
            found[key] = kind(raw)
    return found


def default_database_url(instance_path: str) -> str:
    return "sqlite:///" + str(Path(instance_path) / "creditline.db")


def default_ratelimit_storage_uri(instance_path: str) -> str:
    """The rate-limit counters' file, beside the instance's other files."""
    return "sqlite:///" + str(Path(instance_path) / "ratelimits.sqlite")


def load_or_create_secret_key(instance_path: str) -> str:
    """Read instance/secret_key, creating it (mode 0600) on first run.

    A generated key survives restarts, so sessions do too, and no key is ever
    hard-coded in the source.
    """
    path = Path(instance_path) / "secret_key"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key
