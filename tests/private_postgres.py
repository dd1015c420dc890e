"""A PostgreSQL server of a test's own (initdb in a temp dir), for tests that
restart the database: the machine's shared server is never restarted."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.gunicorn_server import free_port

BIN = Path("/usr/lib/postgresql/15/bin")


class PrivatePostgres:
    def __init__(self) -> None:
        if not (BIN / "initdb").exists() or not (BIN / "pg_ctl").exists():
            pytest.skip(f"no PostgreSQL server binaries in {BIN} (initdb, pg_ctl)")
        self.prefix: list[str] = []
        owner = None
        if os.geteuid() == 0:  # initdb refuses root: run the server as postgres
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root and there is no postgres user to run initdb")
            self.prefix = ["runuser", "-u", "postgres", "--"]
        # Its own directory under /tmp: pytest's tmp_path (mode 0700, root's)
        # cannot be entered by the postgres user.
        directory = self.root = Path(tempfile.mkdtemp(prefix="creditline-pg-"))
        self.dir = directory / "pgdata"
        self.sockets = directory / "pgsock"
        self.sockets.mkdir(parents=True)
        if owner is not None:
            for path in (directory, self.sockets):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        self.port = free_port()
        self.user = "postgres" if owner is not None else pwd.getpwuid(os.geteuid()).pw_name
        self.url = f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/postgres"
        self.log = directory / "postgres.log"

    def _run(self, *args: str) -> None:
        subprocess.run([*self.prefix, *args], check=True, capture_output=True)

    def start(self) -> PrivatePostgres:
        self._run(str(BIN / "initdb"), "-D", str(self.dir), "-A", "trust", "-U", self.user)
        self._ctl("start")
        return self

    def _ctl(self, action: str) -> None:
        options = f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1"
        self._run(
            str(BIN / "pg_ctl"), "-D", str(self.dir), "-o", options, "-l", str(self.log),
            "-w", "-m", "fast", action,
        )  # fmt: skip

    def restart(self) -> None:
        self._ctl("restart")

    def stop(self) -> None:
        if self.dir.exists():
            subprocess.run(
                [*self.prefix, str(BIN / "pg_ctl"), "-D", str(self.dir), "-m", "immediate", "stop"],
                capture_output=True,
            )
        shutil.rmtree(self.root, ignore_errors=True)
