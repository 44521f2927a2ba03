"""Real infrastructure for tests: env-given servers, else testcontainers when Docker answers, else the
local loopback servers; an S3 server from PyPI (moto) for MinIO's role. Each test run gets its own
database, RabbitMQ vhost, Redis key prefix and S3 server, so runs never see each other's data."""
from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from services.kit import broker_users
from services.kit.db import ensure_database
from services.kit.s3server import S3Server as StandInS3
from services.kit.settings import Settings
from services.kit.stack import free_port, port_open  # noqa: F401  (re-exported for the fixtures)

S3_ACCESS_KEY = "avatar-test"
S3_SECRET_KEY = "avatar-test-secret"


def docker_answers() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _with_path(url: str, path: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=path))


def rabbitmqctl(*args: str, input: str | None = None) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60, input=input, text=True)


@dataclass
class Infra:
    run_id: str
    postgres_base: str
    rabbitmq_base: str
    redis_url: str
    s3_endpoint: str
    database: str = ""
    vhost: str = ""
    _databases: list[str] = field(default_factory=list)
    _vhosts: list[str] = field(default_factory=list)
    _users: list[str] = field(default_factory=list)
    _counter: int = 0

    @property
    def postgres_url(self) -> str:
        return _with_path(self.postgres_base, f"/{self.database}")

    @property
    def rabbitmq_url(self) -> str:
        return _with_path(self.rabbitmq_base, f"/{self.vhost}")

    @property
    def redis_prefix(self) -> str:
        return f"avatar-test-{self.run_id}:"

    def settings(self, **overrides) -> Settings:
        values = dict(
            env="local", postgres_url=self.postgres_url, rabbitmq_url=self.rabbitmq_url, redis_url=self.redis_url,
            redis_prefix=self.redis_prefix, s3_endpoint=self.s3_endpoint, s3_access_key=S3_ACCESS_KEY,
            s3_secret_key=S3_SECRET_KEY, outbox_poll_seconds=0.5,
        )
        values.update(overrides)
        return Settings(**values)

    def environ(self, **overrides: str) -> dict[str, str]:
        """AVATAR_* variables for a service process started by a test."""
        settings = self.settings()
        env = {f"AVATAR_{key.upper()}": str(value) for key, value in settings.model_dump().items()
               if value is not None and key != "service"}
        env.update(overrides)
        return env

    async def fresh_database(self) -> str:
        """A new empty database for one test (services' schemas start from nothing)."""
        self._counter += 1
        name = f"avatar_test_{self.run_id}_{self._counter}"
        await ensure_database(_with_path(self.postgres_base, f"/{name}"))
        self._databases.append(name)
        self.database = name
        return self.postgres_url

    def fresh_vhost(self) -> str:
        self._counter += 1
        name = f"avatar-test-{self.run_id}-{self._counter}"
        rabbitmqctl("add_vhost", name)
        rabbitmqctl("set_permissions", "-p", name, urlsplit(self.rabbitmq_base).username or "guest", ".*", ".*", ".*")
        self._vhosts.append(name)
        self.vhost = name
        return self.rabbitmq_url

    @property
    def user_prefix(self) -> str:
        """This run's broker users are `<prefix><service>` and `<prefix>ext-<name>` (users are per node,
        not per vhost: runs sharing a broker must not share them)."""
        return f"avatar-t{self.run_id}-"

    def broker_users(self, services: tuple[str, ...] = (), outside: tuple[str, ...] = ()) -> dict[str, str]:
        """The real per-user path: each service's and each outside publisher's own RabbitMQ user, with the
        permissions deploy/rabbitmq gives them, in the current vhost (one `import_definitions`);
        returns name -> its AMQP URL (outside publishers as `ext-<name>`)."""
        passwords = {name: secrets.token_hex(12) for name in (*services, *(f"ext-{n}" for n in outside))}
        names = {name: f"{self.user_prefix}{name}" for name in passwords}
        defs = broker_users.users(self.vhost, {names[n]: broker_users.password_hash(p) for n, p in passwords.items()},
                                  services=services, outside=outside, prefix=self.user_prefix)
        rabbitmqctl("import_definitions", input=json.dumps(defs))  # from stdin
        self._users += [user for user in names.values() if user not in self._users]
        base = urlsplit(self.rabbitmq_base)
        return {name: urlunsplit(base._replace(netloc=f"{names[name]}:{password}@{base.hostname}:{base.port or 5672}",
                                               path=f"/{self.vhost}"))
                for name, password in passwords.items()}

    async def cleanup(self) -> None:
        admin = await asyncpg.connect(_with_path(self.postgres_base, "/postgres"))
        try:
            for name in self._databases:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
        for name in self._vhosts:
            try:
                rabbitmqctl("delete_vhost", name)
            except subprocess.CalledProcessError:
                pass
        for user in self._users:
            try:
                rabbitmqctl("delete_user", user)
            except subprocess.CalledProcessError:
                pass


class S3Server(StandInS3):
    """The S3 stand-in (services/kit/s3server.py) on a free loopback port, spoken to via minio."""

    def start(self) -> "S3Server":
        os.environ.setdefault("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY)
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY)
        super().start()
        return self


def make_infra(s3_endpoint: str) -> Infra:
    run_id = uuid.uuid4().hex[:8]
    postgres = os.environ.get("AVATAR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    rabbitmq = os.environ.get("AVATAR_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
    redis = os.environ.get("AVATAR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    return Infra(run_id=run_id, postgres_base=postgres, rabbitmq_base=rabbitmq, redis_url=redis,
                 s3_endpoint=s3_endpoint)


async def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05, message: str = "condition"):
    """Poll an (async or sync) predicate until it returns a truthy value."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(interval)
