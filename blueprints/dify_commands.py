"""``flask --app app add-dify-app``: register one of the organisation's Dify apps
for chat (the admin page is ``/admin/dify-apps``). Same rules as
``blueprints.commands``: parse, one domain call, ``fails_cleanly``."""

from __future__ import annotations

import os

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from blueprints.commands import fails_cleanly
from blueprints.extensions import database
from core import audit, dify_apps
from core.errors import ValidationError


def register_dify_commands(app: Flask) -> None:
    app.cli.add_command(add_dify_app)


@click.command(
    "add-dify-app", help="Add a Dify chat, agent or chatflow app (base URL ends in /v1)."
)
@click.argument("slug")
@click.argument("base_url")
@click.option("--key-env", required=True, help="Environment variable holding the app's API key.")
@click.option("--billing-model", required=True, help="The priced model its usage is charged at.")
@click.option("--name", default=None, help="What users see (default: the slug).")
@click.option("--max-input", type=int, default=None, help="Input tokens held per message (8000).")
@click.option("--max-output", type=int, default=None, help="Output tokens held per message (2000).")
@click.option("--disable", is_flag=True, help="Register it, but do not offer it to users yet.")
@with_appcontext
@fails_cleanly
def add_dify_app(
    slug: str,
    base_url: str,
    key_env: str,
    billing_model: str,
    name: str | None,
    max_input: int | None,
    max_output: int | None,
    disable: bool,
) -> None:
    key = os.environ.get(key_env, "")
    if not key.strip():
        raise ValidationError(f"The environment variable {key_env} is empty or not set.")
    box = current_app.extensions["creditline.secret_box"]
    with database().write() as s:
        row = dify_apps.create_app(
            s,
            audit.CLI,
            box,
            slug=slug,
            base_url=base_url,
            api_key=key,
            billing_model=billing_model,
            name=name,
            max_input_tokens=max_input,
            max_output_tokens=max_output,
            enabled=not disable,
        )
    state = "disabled" if disable else "enabled"
    click.echo(
        f"dify app {row.slug!r} ({row.name}) at {row.base_url}, billed as {billing_model}, "
        f"holding {row.max_input_tokens} in / {row.max_output_tokens} out per message; "
        f"{state} (key stored encrypted)"
    )
