"""``flask --app app <command>``: the CLI half of the contract (spec §3)."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup, with_appcontext

from blueprints.extensions import database, passwords
from core import accounts, demo, migrate
from core.errors import DomainError


def register_commands(app: Flask) -> None:
    app.cli.add_command(db_group)
    app.cli.add_command(init_db)
    app.cli.add_command(create_admin)
    app.cli.add_command(create_user)
    app.cli.add_command(seed_demo)


def _fail(exc: DomainError) -> None:
    raise click.ClickException(exc.message)


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
def create_admin(email: str, password: str | None) -> None:
    try:
        with database().write() as s:
            user, created = accounts.ensure_admin(s, email, password, passwords())
    except DomainError as exc:
        _fail(exc)
    click.echo(f"{'created' if created else 'promoted'} admin {user.email}")


@click.command("create-user", help="Create a user with an empty wallet.")
@with_appcontext
@click.argument("email")
@click.option("--password", required=True)
def create_user(email: str, password: str) -> None:
    try:
        with database().write() as s:
            accounts.create_user(s, email, password, passwords())
    except DomainError as exc:
        _fail(exc)
    click.echo(f"created user {accounts.normalise_email(email)}")


@click.command("seed-demo", help="On an empty database: an admin and demo pricing.")
@click.option("--admin-email", envvar="ADMIN_EMAIL", default="admin@example.com")
@click.option("--admin-password", envvar="ADMIN_PASSWORD", default=None)
@with_appcontext
def seed_demo(admin_email: str, admin_password: str | None) -> None:
    with database().write() as s:
        result = demo.seed_if_empty(s, passwords(), admin_email, admin_password)
    if result is None:
        click.echo("database already has users; demo data not added")
        return
    click.echo(f"demo data added; admin: {result.admin_email}")
    if result.admin_password:
        click.echo(f"admin password (shown once): {result.admin_password}")
