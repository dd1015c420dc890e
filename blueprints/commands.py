"""``flask --app app <command>``: the CLI half of the contract (spec §3).

Commands parse their arguments with the core parsers and call one domain
function. A refusal is a ``DomainError`` (core.errors; bad amounts and
reasons included) and ``fails_cleanly`` is the one place that turns it into
click's ``Error: <message>`` and exit status 1, without a traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import click
from flask import Flask
from flask.cli import AppGroup, with_appcontext

from blueprints.extensions import database, passwords
from core import accounts, audit, backup, catalog, demo, integration_keys, ledger, migrate, pricing
from core.errors import DomainError

P = ParamSpec("P")
R = TypeVar("R")


def register_commands(app: Flask) -> None:
    app.cli.add_command(db_group)
    app.cli.add_command(init_db)
    app.cli.add_command(create_admin)
    app.cli.add_command(create_user)
    app.cli.add_command(seed_demo)
    app.cli.add_command(set_rate)
    app.cli.add_command(set_model_price)
    app.cli.add_command(grant_credits)
    app.cli.add_command(check_ledger)
    app.cli.add_command(create_api_key)
    app.cli.add_command(backup_command)


def fails_cleanly(command: Callable[P, R]) -> Callable[P, R]:
    """Run ``command``; a DomainError becomes a ClickException with its message."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except DomainError as exc:
            raise click.ClickException(exc.message) from None

    return run


@click.group("db", cls=AppGroup, help="Database migrations (Alembic).")
def db_group() -> None:
    pass


@db_group.command("upgrade", help="Migrate the database to the latest schema.")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    migrate.upgrade(database(), revision)
    click.echo(f"database at revision {migrate.current_revision(database())}")


@db_group.command("downgrade", help="Migrate the database down to REVISION.")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    migrate.downgrade(database(), revision)
    click.echo(f"database at revision {migrate.current_revision(database())}")


@db_group.command("current", help="Print the database's schema revision.")
def db_current() -> None:
    click.echo(migrate.current_revision(database()) or "empty")


@click.command("init-db", help="Create or migrate the database (same as db upgrade).")
@with_appcontext
def init_db() -> None:
    migrate.upgrade(database())
    click.echo(f"database at revision {migrate.current_revision(database())}")


@click.command("create-admin", help="Create an admin, or promote an existing user.")
@with_appcontext
@click.argument("email")
@click.option("--password", help="Required when the user does not exist yet.")
@fails_cleanly
def create_admin(email: str, password: str | None) -> None:
    with database().write() as s:
        user, created = accounts.ensure_admin(s, email, password, passwords())
    click.echo(f"{'created' if created else 'promoted'} admin {user.email}")


@click.command("create-user", help="Create a user with an empty wallet.")
@with_appcontext
@click.argument("email")
@click.option("--password", required=True)
@fails_cleanly
def create_user(email: str, password: str) -> None:
    with database().write() as s:
        accounts.create_user(s, email, password, passwords())
    click.echo(f"created user {accounts.normalise_email(email)}")


@click.command("seed-demo", help="On an empty database: an admin and demo pricing.")
@click.option("--admin-email", envvar="ADMIN_EMAIL", default="admin@example.com")
@click.option("--admin-password", envvar="ADMIN_PASSWORD", default=None)
@with_appcontext
@fails_cleanly
def seed_demo(admin_email: str, admin_password: str | None) -> None:
    with database().write() as s:
        result = demo.seed_if_empty(s, passwords(), admin_email, admin_password)
    if result is None:
        click.echo("database already has users; demo data not added")
        return
    click.echo(f"demo data added; admin: {result.admin_email}")
    if result.admin_password:
        click.echo(f"admin password (shown once): {result.admin_password}")
    click.echo(f"demo user: {result.user_email} password: {result.user_password}")
    click.echo(f"demo integration key (shown once): {result.api_key}")


# Negative numbers ("-5") must reach the parser as arguments, not as options.
NUMBER_ARGS = {"ignore_unknown_options": True}


@click.command(
    "set-rate",
    help="Set how many credits one USD buys (history kept).",
    context_settings=NUMBER_ARGS,
)
@click.argument("credits_per_usd")
@click.option("--reason", required=True, help="Why; kept in the rate history.")
@with_appcontext
@fails_cleanly
def set_rate(credits_per_usd: str, reason: str) -> None:
    rate = pricing.parse_rate(credits_per_usd)
    with database().write() as s:
        change = catalog.set_rate(s, audit.CLI, rate, reason)
    click.echo(f"rate {change.old_credits_per_usd:,} -> {change.credits_per_usd:,} credits per USD")


@click.command("set-model-price", help="Create or update a model's price (USD per 1M tokens).")
@click.argument("model")
@click.option("--input", "input_usd", required=True, help="USD per 1M input tokens, e.g. 0.15")
@click.option("--output", "output_usd", required=True, help="USD per 1M output tokens")
@click.option("--disable", is_flag=True, help="Keep the model but refuse its usage.")
@click.option("--display-name", default=None)
@click.option("--reason", default="set from the command line", show_default=True)
@with_appcontext
@fails_cleanly
def set_model_price(
    model: str,
    input_usd: str,
    output_usd: str,
    disable: bool,
    display_name: str | None,
    reason: str,
) -> None:
    prices = (pricing.parse_usd_per_m(input_usd), pricing.parse_usd_per_m(output_usd))
    with database().write() as s:
        row = catalog.set_model_price(
            s,
            audit.CLI,
            model,
            input_uusd_per_m=prices[0],
            output_uusd_per_m=prices[1],
            enabled=not disable,
            reason=reason,
            display_name=display_name,
        )
    state = "enabled" if row.enabled else "disabled"
    click.echo(
        f"{row.name}: ${pricing.format_usd_per_m(row.input_price_uusd_per_m)} in / "
        f"${pricing.format_usd_per_m(row.output_price_uusd_per_m)} out per 1M tokens, {state}"
    )


@click.command(
    "grant-credits",
    help="Admin adjustment of a balance (may be negative).",
    context_settings=NUMBER_ARGS,
)
@click.argument("email")
@click.argument("credits")
@click.option("--reason", required=True)
@with_appcontext
@fails_cleanly
def grant_credits(email: str, credits: str, reason: str) -> None:
    amount = pricing.parse_credits(credits, allow_negative=True)
    with database().write() as s:
        posting = ledger.adjust(s, audit.CLI, email, amount, reason)
    click.echo(
        f"{accounts.normalise_email(email)}: {pricing.format_credits(amount)} credits, "
        f"balance {pricing.format_credits(posting.balance_ucr)}"
    )


@click.command("check-ledger", help="Verify balance = sum(ledger) for every wallet.")
@with_appcontext
def check_ledger() -> None:
    with database().read_session() as s:
        problems = ledger.check_ledger(s)
    if not problems:
        click.echo("ledger ok")
        return
    for p in problems:
        click.echo(f"{p.what}: {p.key}: expected {p.expected}, found {p.found}")
    raise SystemExit(1)


@click.command("create-api-key", help="Create an integration key; it is printed once.")
@click.argument("name")
@with_appcontext
@fails_cleanly
def create_api_key(name: str) -> None:
    with database().write() as s:
        row, key = integration_keys.create(s, audit.CLI, name)
    click.echo(f"integration key {row.prefix}… for {row.name!r} (shown once, store it now):")
    click.echo(key)


@click.command("backup", help="Copy the live SQLite database to PATH (online backup API).")
@click.argument("path", type=click.Path(dir_okay=False))
@with_appcontext
@fails_cleanly
def backup_command(path: str) -> None:
    copy = backup.backup_sqlite(database(), path)
    click.echo(f"backup written to {copy} ({copy.stat().st_size} bytes, integrity ok)")
