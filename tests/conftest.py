from __future__ import annotations

import os

import pytest

from tests.support.infra import Infra, S3Server, docker_answers, make_infra, port_open
from tests.support.services import purge_queues

# tests read spans through exporters they add to the process's provider (and the e2e stacks' services
# inherit this): record every span. Without it services/kit/telemetry.py samples nothing when no OTLP
# endpoint is configured (tests/unit/kit/test_tracing_default.py checks that default).
os.environ.setdefault("OTEL_TRACES_SAMPLER", "parentbased_always_on")


@pytest.fixture(scope="session")
def s3_server():
    server = S3Server().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
async def infra(s3_server) -> Infra:
    containers = []
    given = any(os.environ.get(f"AVATAR_TEST_{k}_URL") for k in ("POSTGRES", "RABBITMQ", "REDIS"))
    local_up = all(port_open(port) for port in (5432, 5672, 6379))
    if not given and not local_up and docker_answers():
        from testcontainers.postgres import PostgresContainer
        from testcontainers.rabbitmq import RabbitMqContainer
        from testcontainers.redis import RedisContainer

        postgres, rabbit, redis = PostgresContainer("postgres:16"), RabbitMqContainer("rabbitmq:3.13"), RedisContainer("redis:7")
        containers = [c.start() for c in (postgres, rabbit, redis)]
        os.environ["AVATAR_TEST_POSTGRES_URL"] = postgres.get_connection_url(driver=None)
        os.environ["AVATAR_TEST_RABBITMQ_URL"] = (f"amqp://guest:guest@{rabbit.get_container_host_ip()}:"
                                                  f"{rabbit.get_exposed_port(5672)}/")
        os.environ["AVATAR_TEST_REDIS_URL"] = (f"redis://{redis.get_container_host_ip()}:"
                                               f"{redis.get_exposed_port(6379)}/0")
    infra = make_infra(s3_server.endpoint)
    await infra.fresh_database()
    infra.fresh_vhost()
    yield infra
    await infra.cleanup()
    for container in containers:
        container.stop()


@pytest.fixture
async def fresh(infra: Infra) -> Infra:
    """A new empty database and a purged broker vhost for one test."""
    await infra.fresh_database()
    await purge_queues(infra.rabbitmq_url)
    return infra
