"""A PostgreSQL cluster of a test's own: initdb'd in a temporary directory, on a free loopback port, trust
authentication, so a test can restart it (`pg_ctl restart -m fast`, or stopped for a few seconds and started
again) or terminate its connections without disturbing the shared server on 5432 other tests use.

initdb and the server refuse to run as root: when the tests run as root, the cluster belongs to the
`postgres` OS user and every pg_ctl call runs as that user (runuser)."""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import asyncpg

from tests.support.infra import free_port

BIN_DIRS = (Path("/usr/lib/postgresql/15/bin"), *sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True))
OS_USER = "postgres"  # the owner of the cluster when the tests run as root


def _bin_dir() -> Path:
    for directory in BIN_DIRS:
        if (directory / "initdb").exists() and (directory / "pg_ctl").exists():
            return directory
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    raise RuntimeError("no PostgreSQL server binaries (initdb, pg_ctl) found")


class PostgresServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.bin = _bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="avatar-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._as_root = os.geteuid() == 0

    @property
    def base(self) -> str:
        """The server's URL without a database (tests/e2e/conftest.py running_stack's `postgres_server`)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}"

    def url(self, database: str = "postgres") -> str:
        return f"{self.base}/{database}"

    def _run(self, *argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        command = [str(self.bin / argv[0]), *argv[1:]]
        if self._as_root:
            command = ["runuser", "-u", OS_USER, "--", *command]
        return subprocess.run(command, check=check, capture_output=True, text=True, timeout=timeout)

    def start(self) -> "PostgresServer":
        if self._as_root:
            account = pwd.getpwnam(OS_USER)
            os.chown(self.root, account.pw_uid, account.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
        options = {"listen_addresses": "'127.0.0.1'", "port": str(self.port), "unix_socket_directories": f"'{self.root}'",
                   "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off", "max_connections": "300",
                   "shared_buffers": "64MB"}
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in options.items())
        self._pg_ctl("start")
        return self

    def _pg_ctl(self, action: str, *extra: str) -> None:
        result = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", action, *extra,
                           check=False, timeout=90)
        if result.returncode != 0:
            raise RuntimeError(f"pg_ctl {action} failed: {result.stdout}{result.stderr}\n{self.tail()}")
        if action in ("start", "restart"):
            self.wait_ready()

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            ready = subprocess.run([str(self.bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port),
                                    "-U", "postgres", "-t", "2"], capture_output=True)
            if ready.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL on {self.port} does not answer:\n{self.tail()}")
            time.sleep(0.1)

    def restart(self) -> None:
        """`pg_ctl restart -m fast`: every session is cut, the server comes back at once."""
        self._pg_ctl("restart", "-m", "fast")

    def stop(self) -> None:
        """`pg_ctl stop -m fast`: every session is cut and no connection is accepted until start()."""
        self._pg_ctl("stop", "-m", "fast")

    def resume(self) -> None:
        self._pg_ctl("start")

    async def terminate_backends(self, database: str) -> int:
        """pg_terminate_backend on every connection to `database` (what a failover does to clients)."""
        return await terminate_backends(self.url(), database)

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def close(self) -> None:
        """Stop the server (immediately) and remove its directory."""
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "30", "stop", "-m", "immediate", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "PostgresServer":
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *_) -> None:
        self.close()


async def terminate_backends(url: str, database: str | None = None) -> int:
    """pg_terminate_backend, as the server at `url`, on every other connection to `database` (default: the
    one `url` names): what a failover does to clients. How many it ended."""
    conn = await asyncpg.connect(url, timeout=5)
    try:
        return await conn.fetchval("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                                   " WHERE datname = coalesce($1, current_database()) AND pid <> pg_backend_pid()",
                                   database)
    finally:
        await conn.close()
