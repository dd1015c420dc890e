"""A real gunicorn serving the app on 127.0.0.1, started from the committed
``deploy/gunicorn.conf.py`` (what ``make run`` serves with), for the tests
that need several workers or real sockets.

Its logs go to the test's own folder. The access log records the serving
worker's pid, so a test can check that both workers took part.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "deploy" / "gunicorn.conf.py"
_ACCESS = re.compile(r'^<(\d+)> (\d+) "(\S+) (\S+)')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gunicorn:
    """``gunicorn -c deploy/gunicorn.conf.py`` with ``workers`` (2) workers, plus ``args``.

    ``config`` is a test's ``db_config`` (database and rate-limit counters);
    ``env`` adds or overrides environment variables of the app.
    """

    def __init__(
        self,
        config: dict[str, Any],
        log_dir: Path,
        *,
        env: dict[str, str] | None = None,
        args: Sequence[str] = (),
        port: int | None = None,
        workers: int = 2,
    ) -> None:
        self.workers = workers
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        self.access_log = log_dir / f"access-{self.port}.log"
        self.env = {
            **os.environ,
            "SECRET_KEY": "gunicorn-test",
            "API_RATE_LIMIT": "1000000/minute",
            **{k: str(v) for k, v in config.items() if k.isupper() and v is not None},
            **(env or {}),
        }
        self.args = list(args)
        self.proc: subprocess.Popen | None = None

    def start(self) -> Gunicorn:
        cmd = [
            sys.executable,
            "-m",
            "gunicorn",
            "--config",
            str(CONFIG),
            "--workers",
            str(self.workers),
            "--bind",
            f"127.0.0.1:{self.port}",
            "--graceful-timeout",
            "1",
            "--no-control-socket",  # one per user by default: tests run several servers
            "--access-logfile",
            str(self.access_log),
            "--access-logformat",
            '%(p)s %(s)s "%(r)s"',
            *self.args,
            "app:create_app()",
        ]
        log = open(self.log_dir / f"gunicorn-{self.port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=log, stderr=log)
        log.close()  # the child has its own copy
        deadline = time.monotonic() + 60
        with ThreadPoolExecutor(4) as pool:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:  # e.g. the port was still taken
                    raise RuntimeError(f"gunicorn exited with {self.proc.returncode}")
                # All workers up (each loads the app itself): all have answered.
                list(pool.map(lambda _: self._probe(), range(4)))
                served = self.served_by("GET", "/api/v1/openapi.json")
                if len(set(served) & set(self.worker_pids())) >= self.workers:
                    return self
                time.sleep(0.1)
        raise RuntimeError("gunicorn did not start all its workers")

    def _probe(self) -> None:
        with contextlib.suppress(requests.RequestException):
            requests.get(
                self.url + "/api/v1/openapi.json", headers={"Connection": "close"}, timeout=1
            )

    def worker_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)  # type: ignore[union-attr]
        return [int(p) for p in out.stdout.split()]

    def _served(self) -> list[re.Match[str]]:
        """The access log's requests: pid, status, method, path."""
        if not self.access_log.exists():
            return []
        lines = self.access_log.read_text().splitlines()
        return [m for m in map(_ACCESS.match, lines) if m]

    def serving_pids(self) -> set[int]:
        """The pids that have answered at least one request (any worker, ever)."""
        return {int(m[1]) for m in self._served()}

    def served_by(self, method: str, path: str) -> Counter[int]:
        """How many ``method`` requests for ``path`` (query excluded) each worker pid served."""
        return Counter(
            int(m[1]) for m in self._served() if m[3] == method and m[4].split("?")[0] == path
        )

    def stop(self) -> None:
        """Graceful stop; after 10 s the master and its workers are killed (a
        killed master alone would leave its workers running on, orphaned,
        after the test)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                workers = self.worker_pids()
                self.proc.kill()
                for pid in workers:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                self.proc.wait()

    def __enter__(self) -> Gunicorn:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
