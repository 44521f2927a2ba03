import schemathesis
import pytest
from hypothesis import settings as hsettings, HealthCheck
from services.builder.main import create_app as create_builder
from services.library.main import create_app as create_library
from tests.support.services import auth
from tests.support.infra import make_infra

import asyncio, asyncpg
from services.kit.db import ensure_database

def _settings():
    import os
    from services.kit.settings import Settings
    return Settings(env="local", postgres_url="postgresql://postgres@127.0.0.1:5432/avatar_fuzz_x",
                    rabbitmq_url="amqp://guest:guest@127.0.0.1:5672/", outbox_poll_seconds=0.5)

S = _settings()
which = __import__("os").environ.get("FUZZ", "builder")
APP = create_builder(S) if which == "builder" else create_library(S)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)

@schema.parametrize()
@hsettings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api(case):
    case.headers = {**(case.headers or {}), **auth(S, "admin")}
    response = case.call()
    assert response.status_code < 500 or (response.status_code == 503 and case.path.endswith("/components")), (case.method, case.formatted_path, response.status_code, response.text[:500])
