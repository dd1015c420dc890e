"""Gunicorn settings for Creditline: ``make run`` and the docs both use this file.

    gunicorn -c deploy/gunicorn.conf.py 'app:create_app()'

Threaded workers (``gthread``). With gunicorn's default sync workers each
worker serves one connection at a time, from its first header byte to its
last response byte: two clients trickling their headers took a two-worker
server down, and the master killed a worker whose request (a large CSV
export) ran past ``timeout``, cutting the response short. A gthread worker
serves each connection on one of its threads (a connection that sends
nothing for 5 s goes back to the worker's poller) and keeps telling the
master it is alive however long a request takes, so a slow client holds one
thread, not the worker, and a long export is not killed.

Sizing: ``workers`` processes × ``threads`` threads is how many requests are
served at once. Python runs one thread per process at a time, so processes
give CPU parallelism (about one per core) and threads cover waiting (slow
clients, the database, Stripe, and above all the gateway's streams: a stream
holds its thread from the first byte to the last, up to
``GATEWAY_STREAM_MAX_SECONDS``). So threads per worker should exceed the
streams a worker may carry at once, with room left for pages and the API:
64 by default (128 requests at once on two workers). More than a few dozen
slow clients at once
(or any exposure to the open internet) call for a reverse proxy that buffers
requests, such as nginx, in front.

Environment: ``WEB_CONCURRENCY`` (workers, default 2), ``GUNICORN_THREADS``
(default 64), ``GUNICORN_BIND`` (default 127.0.0.1:5000), ``PROMETHEUS_MULTIPROC_DIR``
(default: a fresh directory per master under the temp dir); command-line flags
override everything here.
"""

import os
import shutil
import tempfile
from typing import Any

from gunicorn.workers.gthread import ThreadWorker


class OneThreadPerConnectionWorker(ThreadWorker):
    """gunicorn's gthread worker, except that it accepts a connection only
    while one of its threads is free.

    The stock worker accepts while it holds fewer than ``worker_connections``
    connections, busy or idle in keep-alive, and queues in its thread pool
    whatever it accepted beyond its threads. A stream holds a thread until it
    ends, so in a burst one worker could take a few more streams than it had
    threads while the other worker had threads free, and those few waited,
    inside it, for a stream to end (measured: 8 of 300 streams opened at the
    same moment started after 11 s). This one stops accepting while every
    thread is busy: the surplus stays in the listen backlog, where a worker
    with a free thread takes it. ``busy`` counts the connections handed to
    the thread pool and not yet finished; both happen on the worker's main
    thread.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.busy = 0

    def set_accept_enabled(self, enabled: bool) -> None:
        super().set_accept_enabled(enabled and self.busy < self.cfg.threads)

    def enqueue_req(self, conn: Any) -> None:
        self.busy += 1
        super().enqueue_req(conn)
        if self.busy >= self.cfg.threads:
            self.set_accept_enabled(False)

    def finish_request(self, conn: Any, fs: Any) -> None:
        self.busy -= 1
        super().finish_request(conn, fs)


bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:5000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = OneThreadPerConnectionWorker
threads = int(os.environ.get("GUNICORN_THREADS", "64"))
# Idle keep-alive connections a worker may hold beyond its threads (they wait
# in its poller, not on a thread). New connections are accepted only while a
# thread is free (the worker class above).
worker_connections = threads + 8
# With gthread this bounds an unresponsive worker, not a request.
timeout = 30
graceful_timeout = 30
keepalive = 5
accesslog = "-"
# No control socket (gunicorn 27's ``gunicornc``): reloads and stops go through
# signals (systemd's ExecReload sends HUP). By default it is created in the
# service user's home, which the service cannot write (an error at every
# start), and two servers on one machine would share it.
control_socket_disable = True

# Prometheus multiprocess mode: each worker writes its metric values to files
# in PROMETHEUS_MULTIPROC_DIR and /metrics adds up every worker's. The variable
# must be set before a worker imports the app, so it is set here, in the
# master; by default a directory of this master's own (two masters on one
# machine must not share one). It is emptied when the master starts, so
# counters restart from zero with the server, as Prometheus expects.
metrics_dir = os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR",
    os.path.join(tempfile.gettempdir(), f"creditline-metrics-{os.getpid()}"),
)


def on_starting(server: object) -> None:
    shutil.rmtree(metrics_dir, ignore_errors=True)
    os.makedirs(metrics_dir, mode=0o700, exist_ok=True)


def child_exit(server: object, worker: object) -> None:
    from core.metrics import worker_exited

    worker_exited(worker.pid)  # type: ignore[attr-defined]
