"""The bare pass-through proxy the gateway is measured against (bench/gateway.py).

Flask + one pooled httpx client, nothing else: no keys, no holds, no
database. Forwards ``POST /v1/<path>`` to ``UPSTREAM_URL`` and relays the
answer (streamed as it arrives). Served by gunicorn with the same gthread
settings as Creditline.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
from flask import Flask, Response, request

UPSTREAM = os.environ.get("UPSTREAM_URL", "http://127.0.0.1:9/v1")
client = httpx.Client(limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100))
app = Flask(__name__)


@app.get("/")
def index() -> str:
    return "ok"


@app.post("/v1/<path:path>")
def forward(path: str) -> Response:
    upstream = client.send(
        client.build_request(
            "POST",
            f"{UPSTREAM}/{path}",
            content=request.get_data(),
            headers={"Content-Type": "application/json", "Authorization": "Bearer bench"},
            timeout=httpx.Timeout(60.0),
        ),
        stream=True,
    )

    def relay() -> Iterator[bytes]:
        try:
            yield from upstream.iter_raw()
        finally:
            upstream.close()

    return Response(
        relay(), status=upstream.status_code, content_type=upstream.headers["content-type"]
    )
