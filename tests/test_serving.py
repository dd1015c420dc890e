"""The app as ``make run`` serves it: gunicorn from ``deploy/gunicorn.conf.py``
with 2 workers, over real sockets.

* Rate limits hold across the workers: the default file store and Redis
  each let exactly the limit through, however the requests are spread. The
  access log names the worker that served each request, and the tests go on
  until both workers have served some, so a per-worker count cannot pass.
* Slow clients: connections trickling their headers do not stop the server
  answering others.
"""

from __future__ import annotations

import re
import select
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import Billing, make_test_app, redis_url
from tests.gunicorn_server import Gunicorn

pytestmark = pytest.mark.slow

LOGIN_LIMIT = 5  # LOGIN_RATE_LIMIT_EMAIL's default, per minute
API_LIMIT = 10
CLOSE = {"Connection": "close"}  # a new connection per request, so any worker may take it


def _until_both_workers_served(
    server: Gunicorn, method: str, path: str, send: Callable[[], int], at_least: int
) -> Counter[int]:
    """Send requests 8 at a time until at least ``at_least`` were sent and both
    workers served some; the status codes."""
    codes: Counter[int] = Counter()
    with ThreadPoolExecutor(8) as pool:
        for _ in range(40):
            codes.update(pool.map(lambda _: send(), range(8)))
            if codes.total() >= at_least and len(server.served_by(method, path)) == 2:
                return codes
    raise AssertionError(f"one worker served every request: {server.served_by(method, path)}")


@pytest.fixture
def billing(db_config: dict[str, Any]) -> Iterator[Billing]:
    """The database the server will use, migrated, with a user."""
    app = make_test_app(db_config)
    billing = Billing(app)
    billing.user("alice@example.com")
    yield billing
    app.extensions["creditline.db"].dispose()


@pytest.fixture(params=["file", "redis"])
def server(
    request: pytest.FixtureRequest, db_config: dict[str, Any], billing: Billing, tmp_path: Path
) -> Iterator[Gunicorn]:
    env = {"API_RATE_LIMIT": f"{API_LIMIT}/minute"}
    if request.param == "redis":
        env["RATELIMIT_STORAGE_URI"] = redis_url()
        env["RATELIMIT_KEY_PREFIX"] = "test-" + uuid.uuid4().hex
    with Gunicorn(db_config, tmp_path, env=env) as server:
        yield server


def test_the_login_limit_per_email_holds_across_workers(server: Gunicorn) -> None:
    browser = requests.Session()
    page = browser.get(server.url + "/auth/login", timeout=10).text
    token = re.search(r'name="csrf-token" content="([^"]+)"', page)[1]  # type: ignore[index]
    form = {"email": "target@example.com", "password": "guess-guess-guess", "csrf_token": token}

    def attempt() -> int:
        return requests.post(
            server.url + "/auth/login",
            data=form,
            cookies=browser.cookies.get_dict(),
            headers=CLOSE,
            timeout=10,
            allow_redirects=False,
        ).status_code

    codes = _until_both_workers_served(server, "POST", "/auth/login", attempt, LOGIN_LIMIT + 7)
    assert codes[200] == LOGIN_LIMIT, codes  # the form again, "wrong email or password"
    assert codes[429] == codes.total() - LOGIN_LIMIT, codes


def test_the_api_limit_per_key_holds_across_workers(server: Gunicorn, billing: Billing) -> None:
    key = billing.api_key()

    def call() -> int:
        return requests.get(
            server.url + "/api/v1/balance?user=alice@example.com",
            headers={"Authorization": f"Bearer {key}", **CLOSE},
            timeout=10,
        ).status_code

    codes = _until_both_workers_served(server, "GET", "/api/v1/balance", call, API_LIMIT + 10)
    assert codes[200] == API_LIMIT, codes
    assert codes[429] == codes.total() - API_LIMIT, codes


class Trickler:
    """A client that sends its request headers a byte every 0.2 s, forever."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.sock.sendall(b"GET /auth/login HTTP/1.1\r\nHost: slow\r\nX-Slow: ")
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, daemon=True)
        self._thread.start()

    def _trickle(self) -> None:
        while not self._stop.wait(0.2):
            self.sock.sendall(b"a")
            self.sent += 1

    def still_open(self) -> bool:
        """Still sending, and neither answered nor closed by the server."""
        readable, _, _ = select.select([self.sock], [], [], 0)
        return self._thread.is_alive() and not readable

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


def test_clients_trickling_their_headers_do_not_stop_the_server(
    db_config: dict[str, Any], billing: Billing, tmp_path: Path
) -> None:
    """Two such clients took both sync workers; with threads they hold two of
    32 threads and everyone else is served (a 10 s client timeout is a
    generous deadline for a page the server renders in milliseconds)."""
    with Gunicorn(db_config, tmp_path) as server:
        tricklers = [Trickler(server.url) for _ in range(2)]
        try:
            while min(t.sent for t in tricklers) < 5:  # each is being read by now
                time.sleep(0.1)
            for _ in range(6):
                response = requests.get(server.url + "/auth/login", headers=CLOSE, timeout=10)
                assert response.status_code == 200
            assert all(t.still_open() for t in tricklers)
        finally:
            for trickler in tricklers:
                trickler.close()
