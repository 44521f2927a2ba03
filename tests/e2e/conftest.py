from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from services.kit.auth import mint_token
from services.kit.settings import Settings
from services.kit.stack import SERVICES, Stack
from tests.support.infra import free_port


@pytest.fixture(scope="package")
async def stack(infra, tmp_path_factory):
    """The six services as real processes (python -m services.<name>) on their own database and vhost."""
    await infra.fresh_database()
    infra.fresh_vhost()
    ports = {name: free_port() for name in SERVICES}
    passthrough = {k: v for k, v in infra.environ().items()
                   if k.startswith("AVATAR_S3") or k in ("AVATAR_REDIS_PREFIX", "AVATAR_OUTBOX_POLL_SECONDS")}
    stack = Stack(run_dir=tmp_path_factory.mktemp("stack"), s3_port=int(infra.s3_endpoint.rsplit(":", 1)[1]),
                  ports=ports, database=infra.database, vhost=infra.vhost, extra_env=passthrough)
    try:
        stack.up(timeout=120)
        yield stack
    finally:
        stack.down()


@pytest.fixture(scope="package")
def base(stack) -> dict[str, str]:
    return {name: f"http://127.0.0.1:{port}" for name, port in stack.ports.items()}


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
