from __future__ import annotations

from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select

from blueprints.extensions import database
from core.models import User
from tests.conftest import AuthActions


def _user(app: Flask, email: str) -> User | None:
    with app.app_context(), database().read_session() as s:
        return s.scalar(select(User).where(User.email == email))


def test_create_user_then_log_in(app: Flask, runner: FlaskCliRunner, auth: AuthActions) -> None:
    result = runner.invoke(args=["create-user", "Cli@Example.com", "--password", "pw-123456789"])
    assert result.exit_code == 0, result.output
    assert "created user cli@example.com" in result.output
    user = _user(app, "cli@example.com")
    assert user is not None and user.role == "user"
    assert auth.login("cli@example.com", "pw-123456789").headers["Location"] == "/"


def test_create_user_rejects_duplicates_and_weak_passwords(runner: FlaskCliRunner) -> None:
    assert (
        runner.invoke(args=["create-user", "a@example.com", "--password", "pw-123456789"]).exit_code
        == 0
    )
    dup = runner.invoke(args=["create-user", "A@example.com", "--password", "pw-123456789"])
    assert dup.exit_code == 1 and "already exists" in dup.output
    weak = runner.invoke(args=["create-user", "b@example.com", "--password", "short"])
    assert weak.exit_code == 1 and "at least 8" in weak.output
    bad = runner.invoke(args=["create-user", "not-an-email", "--password", "pw-123456789"])
    assert bad.exit_code == 1 and "valid email" in bad.output


def test_create_admin_creates_and_promotes(app: Flask, runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["create-admin", "boss@example.com", "--password", "pw-123456789"])
    assert result.exit_code == 0 and "created admin" in result.output
    assert _user(app, "boss@example.com").role == "admin"

    runner.invoke(args=["create-user", "staff@example.com", "--password", "pw-123456789"])
    result = runner.invoke(args=["create-admin", "staff@example.com"])
    assert result.exit_code == 0 and "promoted admin staff@example.com" in result.output
    assert _user(app, "staff@example.com").role == "admin"


def test_create_admin_needs_password_for_new_user(runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["create-admin", "new@example.com"])
    assert result.exit_code == 1
    assert "password is required" in result.output


def test_db_upgrade_is_idempotent(runner: FlaskCliRunner) -> None:
    for args in (["db", "upgrade"], ["init-db"], ["db", "current"]):
        result = runner.invoke(args=args)
        assert result.exit_code == 0, result.output
        assert "0001" in result.output or "head" in result.output or result.output.strip()


def test_seed_demo_prints_a_working_admin_once(
    app: Flask, runner: FlaskCliRunner, auth: AuthActions, client
) -> None:
    result = runner.invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    password = result.output.split("admin password (shown once): ")[1].splitlines()[0].strip()
    assert auth.login("admin@example.com", password).headers["Location"] == "/"
    assert client.get("/admin/").status_code == 200

    key = result.output.split("demo integration key (shown once): ")[1].strip()
    event = {
        "event_id": "demo-1",
        "user": "alice@example.com",
        "model": "gpt-4o-mini",
        "input_tokens": 1000,
        "output_tokens": 500,
    }
    response = client.post("/api/v1/usage", json=event, headers={"Authorization": f"Bearer {key}"})
    assert response.get_json()["balance"] == "9995.5"

    again = runner.invoke(args=["seed-demo"])
    assert "already has users" in again.output
    assert "password" not in again.output


def test_seed_demo_takes_admin_password_from_environment(
    runner: FlaskCliRunner, auth: AuthActions
) -> None:
    result = runner.invoke(args=["seed-demo"], env={"ADMIN_PASSWORD": "chosen-password-1"})
    assert "admin password" not in result.output
    assert auth.login("admin@example.com", "chosen-password-1").headers["Location"] == "/"
