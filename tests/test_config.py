"""Configuration layers: defaults -> instance/config.py -> environment -> test overrides."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from app import create_app


def _app(tmp_path: Path, test_config=None):
    return create_app(test_config, instance_path=str(tmp_path / "instance"))


def test_defaults_without_anything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("SECRET_KEY", raising=False)
    app = _app(tmp_path)
    assert app.config["DATABASE_URL"] == f"sqlite:///{tmp_path / 'instance' / 'creditline.db'}"
    assert app.config["SQLITE_SYNCHRONOUS"] == "FULL"
    counters = tmp_path / "instance" / "ratelimits.sqlite"
    assert app.config["RATELIMIT_STORAGE_URI"] == f"sqlite:///{counters}"
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert app.config["SESSION_COOKIE_SECURE"] is False


def test_secret_key_generated_once_and_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SECRET_KEY", raising=False)
    first = _app(tmp_path).config["SECRET_KEY"]
    second = _app(tmp_path).config["SECRET_KEY"]
    assert first == second and len(first) == 64
    key_file = tmp_path / "instance" / "secret_key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600


def test_layers_override_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    instance = tmp_path / "instance"
    instance.mkdir()
    (instance / "config.py").write_text(
        "SECRET_KEY = 'from-instance'\n"
        "SQLITE_SYNCHRONOUS = 'NORMAL'\n"
        "STRIPE_SECRET_KEY = 'sk_instance'\n"
        "STRIPE_API_BASE = 'http://instance'\n"
    )
    monkeypatch.setenv("SECRET_KEY", "from-env")
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_env")
    monkeypatch.setenv("TRUSTED_PROXIES", "1")
    monkeypatch.delenv("STRIPE_API_BASE", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    app = _app(tmp_path, {"STRIPE_SECRET_KEY": "sk_test_override"})
    assert app.config["SQLITE_SYNCHRONOUS"] == "NORMAL"  # instance beats defaults
    assert app.config["STRIPE_API_BASE"] == "http://instance"
    assert app.config["SECRET_KEY"] == "from-env"  # environment beats instance
    assert app.config["TRUSTED_PROXIES"] == 1  # coerced to int
    assert app.config["STRIPE_SECRET_KEY"] == "sk_test_override"  # tests beat all


def test_https_makes_cookies_secure_unless_set(tmp_path: Path) -> None:
    app = _app(tmp_path, {"SECRET_KEY": "k", "PREFERRED_URL_SCHEME": "https"})
    assert app.config["SESSION_COOKIE_SECURE"] is True
    app = _app(
        tmp_path,
        {"SECRET_KEY": "k", "PREFERRED_URL_SCHEME": "https", "SESSION_COOKIE_SECURE": False},
    )
    assert app.config["SESSION_COOKIE_SECURE"] is False
