from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import AsyncIterator, Iterator
from urllib.parse import urlsplit

import pytest

from services.kit.auth import mint_token
from services.kit.settings import Settings
from services.kit.stack import PLATFORM, SERVICES, Stack
from tests.support.infra import free_port
from tests.support.proxy import TcpProxy


@contextlib.asynccontextmanager
async def running_stack(infra, run_dir: Path, extra_env: dict[str, str] | None = None,
                        redis_prefix: str | None = None,
                        service_env: dict[str, dict[str, str]] | None = None,
                        postgres_port: int | None = None, rabbitmq_port: int | None = None,
                        postgres_server: str | None = None, redis_url: str | None = None) -> AsyncIterator[Stack]:
    """The six services as real processes (python -m services.<name>) on a database and vhost of their
    own; `redis_prefix` gives a second stack its own scheduler state, `extra_env` e.g. an OTLP endpoint,
    `service_env` settings of one service only (e.g. the S3 endpoint the models service reaches),
    `postgres_port` / `rabbitmq_port` where every service reaches PostgreSQL / RabbitMQ (e.g. a proxy the
    test can cut), `postgres_server` / `redis_url` a server of the test's own (tests/support/postgres_server.py,
    redis_server.py: one it may restart), its database created there."""
    await infra.fresh_database()
    infra.fresh_vhost()
    ports = {name: free_port() for name in PLATFORM}
    passthrough = {k: v for k, v in infra.environ().items()
                   if k.startswith("AVATAR_S3") or k in ("AVATAR_REDIS_PREFIX", "AVATAR_OUTBOX_POLL_SECONDS")}
    if redis_prefix is not None:
        passthrough["AVATAR_REDIS_PREFIX"] = redis_prefix
    if postgres_port is not None:
        passthrough["AVATAR_POSTGRES_URL"] = f"postgresql://postgres@127.0.0.1:{postgres_port}/{infra.database}"
    if postgres_server is not None:
        passthrough["AVATAR_POSTGRES_URL"] = f"{postgres_server.rstrip('/')}/{infra.database}"
    if redis_url is not None:
        passthrough["AVATAR_REDIS_URL"] = redis_url
    if rabbitmq_port is not None:
        passthrough["AVATAR_RABBITMQ_URL"] = f"amqp://guest:guest@127.0.0.1:{rabbitmq_port}/{infra.vhost}"
    stack = Stack(run_dir=run_dir, s3_port=int(infra.s3_endpoint.rsplit(":", 1)[1]), ports=ports,
                  database=infra.database, vhost=infra.vhost, extra_env={**passthrough, **(extra_env or {})},
                  service_env=service_env or {})
    try:
        stack.up(timeout=120)
        yield stack
    finally:
        stack.down()


def urls(stack: Stack) -> dict[str, str]:
    """The six services' own URLs (the gateway's is stack.gateway_url)."""
    return {name: f"http://127.0.0.1:{stack.ports[name]}" for name in SERVICES}


@pytest.fixture(scope="package")
def models_s3(infra) -> Iterator[TcpProxy]:
    """The models service's way to S3 on the shared stack: a proxy a test can cut (S3 down for the models
    service, while S3 itself, its objects and every other service's path to it stay as they are).
    Whoever cuts it restores it in a `finally` (the shared stack's other tests need their store)."""
    host, port = urlsplit(infra.s3_endpoint).hostname, urlsplit(infra.s3_endpoint).port
    proxy = TcpProxy(host, port).start()
    try:
        yield proxy
    finally:
        proxy.cut()


@pytest.fixture(scope="package")
async def stack(infra, models_s3, tmp_path_factory):
    """The six services as real processes (python -m services.<name>) on their own database and vhost;
    the models service reaches S3 through `models_s3`."""
    async with running_stack(infra, tmp_path_factory.mktemp("stack"),
                             service_env={"models": {"AVATAR_S3_ENDPOINT": models_s3.endpoint}}) as started:
        yield started


@pytest.fixture(scope="package")
def base(stack) -> dict[str, str]:
    return urls(stack)


@pytest.fixture(scope="package")
def settings() -> Settings:
    return Settings(env="local")


def bearer(settings: Settings, user: str, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(settings, user, role)}"}


def get(url: str) -> tuple[int, dict | str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read().decode()
            return response.status, (json.loads(body) if body.startswith("{") else body)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
