"""``flask --app app <command>`` for the metering gateway (spec §6): upstreams,
routes, users' keys, and the sweep of expired holds. Same rules as
``blueprints.commands``: parse, one domain call, ``fails_cleanly``."""

from __future__ import annotations

import os
from datetime import datetime

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from blueprints.commands import fails_cleanly
from blueprints.extensions import database
from core import audit, pricing, user_keys
from core.accounts import find_user
from core.clock import utcnow
from core.errors import UnknownUser, ValidationError
from core.gateway import routing
from core.hold_expiry import expire_overdue
from core.secret_box import SecretBox


def register_gateway_commands(app: Flask) -> None:
    for command in (create_upstream, set_route, create_user_key, revoke_user_key):
        app.cli.add_command(command)
    app.cli.add_command(release_expired_holds)


def _box() -> SecretBox:
    return current_app.extensions["creditline.secret_box"]


@click.command("create-upstream", help="Add an OpenAI-compatible upstream (base URL ends in /v1).")
@click.argument("name")
@click.argument("base_url")
@click.option("--secret-env", required=True, help="Environment variable holding its API key.")
@with_appcontext
@fails_cleanly
def create_upstream(name: str, base_url: str, secret_env: str) -> None:
    secret = os.environ.get(secret_env, "")
    if not secret.strip():
        raise ValidationError(f"The environment variable {secret_env} is empty or not set.")
    with database().write() as s:
        row = routing.create_upstream(s, audit.CLI, _box(), name, base_url, secret)
    click.echo(f"upstream {row.name!r} at {row.base_url} (secret stored encrypted)")


@click.command("set-route", help="Route a priced model to an upstream (create or update).")
@click.argument("model")
@click.option("--upstream", "upstream_name", required=True)
@click.option("--upstream-model", default=None, help="The model name the upstream knows.")
@click.option("--context-window", type=int, default=None)
@click.option("--max-output", type=int, default=None)
@click.option("--default-output-cap", type=int, default=None)
@click.option("--overhead", type=int, default=None)
@click.option("--disable", is_flag=True, help="Keep the route but refuse calls.")
@with_appcontext
@fails_cleanly
def set_route(
    model: str,
    upstream_name: str,
    upstream_model: str | None,
    context_window: int | None,
    max_output: int | None,
    default_output_cap: int | None,
    overhead: int | None,
    disable: bool,
) -> None:
    with database().write() as s:
        row = routing.set_route(
            s,
            audit.CLI,
            model,
            upstream_name,
            upstream_model=upstream_model,
            context_window=context_window,
            max_output=max_output,
            default_output_cap=default_output_cap,
            overhead=overhead,
            enabled=not disable,
        )
    state = "disabled" if disable else "enabled"
    click.echo(
        f"route {model} -> {upstream_name}:{row.upstream_model} ({state}; context "
        f"{row.context_window:,}, max output {row.max_output:,}, default cap "
        f"{row.default_output_cap:,}, overhead {row.overhead})"
    )


def _user_id(email: str) -> int:
    with database().read_session() as s:
        user = find_user(s, email)
        if user is None:
            raise UnknownUser(f"No user with email {email!r}.")
        return user.id


def _expiry(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        raise ValidationError("--expires must be a date, YYYY-MM-DD.") from None


@click.command("create-user-key", help="Create a user's API key for /v1; it is printed once.")
@click.argument("email")
@click.argument("name")
@click.option("--limit", "limit_credits", default=None, help="Credit limit of the key.")
@click.option("--expires", default=None, help="The key stops working on this day (UTC).")
@with_appcontext
@fails_cleanly
def create_user_key(email: str, name: str, limit_credits: str | None, expires: str | None) -> None:
    limit = pricing.parse_credits(limit_credits) if limit_credits else None
    user_id = _user_id(email)
    with database().write() as s:
        row, key = user_keys.create(
            s, audit.CLI, user_id, name, limit_ucr=limit, expires_at=_expiry(expires)
        )
    click.echo(f"user key {row.prefix}… {row.name!r} for {email} (shown once, store it now):")
    click.echo(key)


@click.command("revoke-user-key", help="Revoke a user's API key by its name.")
@click.argument("email")
@click.argument("name")
@with_appcontext
@fails_cleanly
def revoke_user_key(email: str, name: str) -> None:
    user_id = _user_id(email)
    with database().write() as s:
        row = user_keys.revoke_by_name(s, audit.CLI, user_id, name)
    click.echo(f"revoked {row.prefix}… {row.name!r} of {email}")


@click.command("release-expired-holds", help="Release every hold past its expiry (no charge).")
@with_appcontext
def release_expired_holds() -> None:
    with database().raw_write() as cur:
        expired = expire_overdue(cur, utcnow())
    click.echo(f"released {len(expired)} expired hold(s)")
