"""Creditline's app factory: ``flask --app app run`` or ``gunicorn 'app:create_app()'``."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask
from jinja2 import FileSystemBytecodeCache
from werkzeug.middleware.proxy_fix import ProxyFix

from core import config as cfg
from core import signature_failures
from core.analytics import ClosedDays
from core.db import Database
from core.dify import DifyChat
from core.gateway.service import Gateway, GatewaySettings
from core.gateway.upstream_client import Timeouts, UpstreamClient
from core.mailer import MailServer
from core.outbox_worker import OutboxDeliverer, OutboxThread
from core.passwords import Passwords
from core.pricebook import PriceBookCache
from core.recent_keys import RecentKeys
from core.secret_box import SecretBox, load_or_create_encryption_key
from core.stripe_gateway import StripeGateway
from core.usage_one_statement import UserWallets


def create_app(
    test_config: dict[str, Any] | None = None, instance_path: str | None = None
) -> Flask:
    app = Flask(__name__, instance_path=instance_path, instance_relative_config=True)
    _load_config(app, test_config)
    # Compiled templates are kept on disk (Jinja's default: a directory of the
    # system's temp dir that only this user can read), so a new worker renders
    # its first page without compiling the templates again (37 ms for the
    # analytics page). A changed template's checksum makes it compile anew.
    app.jinja_env.bytecode_cache = FileSystemBytecodeCache()

    app.extensions["creditline.db"] = Database(
        app.config["DATABASE_URL"],
        sqlite_synchronous=app.config["SQLITE_SYNCHRONOUS"],
        busy_timeout_ms=app.config["SQLITE_BUSY_TIMEOUT_MS"],
        schema=app.config["DATABASE_SCHEMA"],
    )
    app.extensions["creditline.passwords"] = Passwords(
        app.config["PASSWORD_HASH_PROFILE"],
        concurrency=app.config["PASSWORD_HASH_CONCURRENCY"],
        wait_seconds=app.config["PASSWORD_HASH_WAIT_SECONDS"],
    )
    app.extensions["creditline.prices"] = PriceBookCache()
    app.extensions["creditline.recent_keys"] = RecentKeys()  # integration keys
    app.extensions["creditline.user_wallets"] = UserWallets()  # for the usage API
    app.extensions["creditline.recent_holders"] = RecentKeys()  # users' keys (/v1)
    app.extensions["creditline.closed_days"] = ClosedDays(app.extensions["creditline.db"])
    app.extensions["creditline.signature_failures"] = signature_failures.Recorder(
        app.extensions["creditline.db"]
    )
    app.extensions["creditline.stripe"] = StripeGateway(
        app.config["STRIPE_SECRET_KEY"],
        api_base=app.config["STRIPE_API_BASE"],
        http_client=app.config["STRIPE_HTTP_CLIENT"],
    )

    # One key for every secret at rest: upstream secrets, Dify keys, the webhook secret.
    box = SecretBox(
        app.config["ENCRYPTION_KEY"] or load_or_create_encryption_key(app.instance_path)
    )
    app.extensions["creditline.secret_box"] = box
    gw = app.extensions["creditline.gateway"] = _gateway(app, box)
    app.extensions["creditline.dify_chat"] = DifyChat(gw.db, gw.prices, box, gw.client, gw.settings)
    _outbox(app, box)

    if app.config["TRUSTED_PROXIES"]:
        n = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]

    _init_extensions(app)
    _register_blueprints(app)
    return app


def _load_config(app: Flask, test_config: dict[str, Any] | None) -> None:
    """defaults -> instance/config.py -> environment -> test overrides."""
    app.config.from_mapping(cfg.DEFAULTS)
    app.config.from_pyfile("config.py", silent=True)
    app.config.from_mapping(cfg.from_environment(os.environ))
    if test_config:
        app.config.from_mapping(test_config)

    os.makedirs(app.instance_path, exist_ok=True)
    if not app.config["DATABASE_URL"]:
        app.config["DATABASE_URL"] = cfg.default_database_url(app.instance_path)
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = cfg.load_or_create_secret_key(app.instance_path)
    # Secure cookies whenever the site is served over HTTPS, unless set explicitly.
    https = app.config["PREFERRED_URL_SCHEME"] == "https"
    for key in ("SESSION_COOKIE_SECURE", "REMEMBER_COOKIE_SECURE"):
        if app.config[key] is None:
            app.config[key] = https


def _gateway(app: Flask, box: SecretBox) -> Gateway:
    """The metering gateway: a pooled upstream client, its settings."""
    c = app.config
    if c["GATEWAY_ABORT_POLICY"] not in ("drain", "cancel"):
        raise ValueError("GATEWAY_ABORT_POLICY must be 'drain' or 'cancel'")
    client = UpstreamClient(
        Timeouts(connect=c["GATEWAY_CONNECT_TIMEOUT"], first_byte=c["GATEWAY_FIRST_BYTE_TIMEOUT"])
    )
    settings = GatewaySettings(
        abort_policy=c["GATEWAY_ABORT_POLICY"],
        drain_seconds=c["GATEWAY_DRAIN_SECONDS"],
        stream_max_seconds=c["GATEWAY_STREAM_MAX_SECONDS"],
        max_concurrent_per_user=c["GATEWAY_MAX_CONCURRENT_PER_USER"],
        ping_seconds=c["GATEWAY_PING_SECONDS"],
    )
    return Gateway(
        app.extensions["creditline.db"], app.extensions["creditline.prices"], box, client, settings
    )


def _outbox(app: Flask, box: SecretBox) -> None:
    """The outbox deliverer; with OUTBOX_WORKER, a background thread that starts
    with the first request and is woken after a committed write that added
    messages."""
    c = app.config
    mail = MailServer.from_url(c["MAIL_URL"], c["MAIL_FROM"] or "") if c["MAIL_URL"] else None
    db = app.extensions["creditline.db"]
    deliverer = OutboxDeliverer(db, box, mail)
    app.extensions["creditline.outbox"] = deliverer
    if not c["OUTBOX_WORKER"]:
        return
    thread = OutboxThread(deliverer, c["OUTBOX_POLL_SECONDS"])
    app.extensions["creditline.outbox_thread"] = thread
    db.on_write_committed(thread.after_commit)
    app.before_request(thread.start)


def _init_extensions(app: Flask) -> None:
    from blueprints import (
        cookie_session,
        db_session,
        errors,
        input_guard,
        rate_limits,
        security_headers,
        template_filters,
    )
    from blueprints.auth import sessions as sign_in_sessions
    from blueprints.extensions import csrf

    csrf.init_app(app)
    rate_limits.init_app(app)
    cookie_session.init_app(app)
    sign_in_sessions.init_app(app)
    db_session.init_app(app)
    errors.init_app(app)
    security_headers.init_app(app)
    input_guard.init_app(app)
    template_filters.init_app(app)


def _register_blueprints(app: Flask) -> None:
    from blueprints import ops
    from blueprints.admin import bp as admin_bp
    from blueprints.api import bp as api_bp
    from blueprints.auth import bp as auth_bp
    from blueprints.chat import bp as chat_bp
    from blueprints.commands import register_commands
    from blueprints.dify_commands import register_dify_commands
    from blueprints.extensions import csrf
    from blueprints.gateway import bp as gateway_bp
    from blueprints.gateway_commands import register_gateway_commands
    from blueprints.main import bp as main_bp
    from blueprints.outbox_commands import register_outbox_commands
    from blueprints.pricing import bp as pricing_bp
    from blueprints.webhooks import bp as webhooks_bp

    app.register_blueprint(auth_bp)
    app.register_blueprint(main_bp)
    app.register_blueprint(pricing_bp)
    app.register_blueprint(chat_bp)
    app.register_blueprint(admin_bp)
    # The API authenticates with bearer keys, not cookies: CSRF does not apply.
    csrf.exempt(api_bp)
    app.register_blueprint(api_bp)
    # The gateway too: users' own bearer keys.
    csrf.exempt(gateway_bp)
    app.register_blueprint(gateway_bp)
    # Stripe signs its webhooks; there is no browser session to protect.
    csrf.exempt(webhooks_bp)
    app.register_blueprint(webhooks_bp)
    # Health and metrics: no session, no form, nothing for CSRF to protect.
    csrf.exempt(ops.bp)
    ops.init_app(app)
    register_commands(app)
    register_gateway_commands(app)
    register_dify_commands(app)
    register_outbox_commands(app)
