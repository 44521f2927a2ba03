"""The gateway in-process (lifespan and all) on a fresh database, as its own non-owner database role."""
from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import pytest

from services.gateway.main import create_app
from services.gateway.settings import GatewaySettings
from tests.support.services import running_service

GATEWAY_ROLE = "avatar_gateway"


def as_role(url: str, role: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port or 5432}"))


def gateway_settings(infra, **overrides) -> GatewaySettings:
    base = infra.settings().model_dump()
    base.update(postgres_admin_url=infra.postgres_url, postgres_url=as_role(infra.postgres_url, GATEWAY_ROLE),
                rate_limits_enabled=False)
    base.update(overrides)
    return GatewaySettings(**base)


@pytest.fixture
async def gateway(fresh):
    """A running gateway (httpx client over ASGI: `gateway.client`), upstreams at their default ports."""
    async with running_service(create_app, gateway_settings(fresh)) as running:
        yield running
