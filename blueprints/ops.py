"""Operators' endpoints: ``/healthz`` for load balancers and ``/metrics`` for
Prometheus, plus the request-latency and gateway-status metrics.

Neither endpoint uses the session or a cookie. ``/metrics`` asks for
``Authorization: Bearer <METRICS_TOKEN>`` when that setting is given.
"""

from __future__ import annotations

import hmac
import time

from flask import Blueprint, Flask, Response, current_app, g, request

from blueprints.extensions import database
from core import health, metrics

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    if health.database_reachable(database()):
        return Response("ok\n", 200, mimetype="text/plain")
    return Response("database unreachable\n", 503, mimetype="text/plain")


@bp.get("/metrics")
def prometheus_metrics() -> Response:
    token = current_app.config.get("METRICS_TOKEN")
    if token:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return Response(
                "unauthorized\n",
                401,
                mimetype="text/plain",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
    body, content_type = metrics.exposition()
    return Response(body, 200, content_type=content_type)


def _area() -> str:
    """A small fixed label set: the blueprint that served the request."""
    endpoint = request.endpoint or ""
    return endpoint.split(".", 1)[0] if "." in endpoint else "other"


def _started() -> None:
    g.metrics_started = time.perf_counter()


def _finished(response: Response) -> Response:
    started = g.pop("metrics_started", None)
    if started is not None:
        area = _area()
        metrics.REQUEST_SECONDS.labels(area).observe(time.perf_counter() - started)
        if area == "gateway":
            metrics.GATEWAY_REQUESTS.labels(str(response.status_code)).inc()
    return response


def init_app(app: Flask) -> None:
    app.before_request(_started)
    app.after_request(_finished)
    app.register_blueprint(bp)
