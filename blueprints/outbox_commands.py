"""``flask --app app <command>`` for settings, email and webhooks:
``set-setting`` and ``deliver-outbox``."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from blueprints.commands import fails_cleanly
from blueprints.extensions import database, secret_box
from core import audit, setting_values
from core.outbox_worker import OutboxDeliverer


def register_outbox_commands(app: Flask) -> None:
    app.cli.add_command(set_setting)
    app.cli.add_command(deliver_outbox)


@click.command(
    "set-setting",
    help=(
        "Change an admin setting: "
        + ", ".join(setting_values.PARSERS)
        + ". Credits as credits (12.5), top-up options as 5,10,25."
    ),
)
@click.argument("name")
@click.argument("value")
@click.option("--reason", required=True, help="Why; kept in the audit log.")
@with_appcontext
@fails_cleanly
def set_setting(name: str, value: str, reason: str) -> None:
    with database().write() as s:
        setting_values.set_from_text(s, audit.CLI, name, value, reason, secret_box())
    shown = "(set)" if name == "webhook_secret" and value else repr(value)
    click.echo(f"{name} = {shown}")


@click.command("deliver-outbox", help="Deliver the due emails and webhook events once.")
@with_appcontext
@fails_cleanly
def deliver_outbox() -> None:
    deliverer: OutboxDeliverer = current_app.extensions["creditline.outbox"]
    result = deliverer.drain_once()
    click.echo(
        f"sent {result.sent}, retrying {result.retrying}, failed {result.failed}, "
        f"skipped {result.skipped}"
    )
